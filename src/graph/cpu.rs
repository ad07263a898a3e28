//! Runs a graph with the CPU reference.

use super::{conv_operands, Graph, Op, Operands, ValueId};
use crate::error::{Error, Result};
use crate::precision::Precision;
use crate::reference as r;
use crate::tensor::Tensor;

/// The position after which each value is no longer read (the output and the `keep` values
/// live to the end).
pub(crate) fn last_uses<T>(graph: &Graph<T>, keep: &[ValueId]) -> Result<Vec<usize>> {
    let mut last: Vec<usize> = (0..graph.nodes().len()).collect();
    for (i, node) in graph.nodes().iter().enumerate() {
        for &v in &node.inputs {
            last[v] = i;
        }
    }
    last[graph.output()?] = usize::MAX;
    for &v in keep {
        *last
            .get_mut(v)
            .ok_or_else(|| Error::Invalid(format!("no value {v} to keep")))? = usize::MAX;
    }
    Ok(last)
}

pub fn run(graph: &Graph<Tensor>, inputs: &[Tensor]) -> Result<Tensor> {
    Ok(run_keeping(graph, inputs, &[])?.0)
}

/// Runs the graph and also returns the values `keep` (e.g. attention maps), in that order.
pub fn run_keeping(
    graph: &Graph<Tensor>,
    inputs: &[Tensor],
    keep: &[ValueId],
) -> Result<(Tensor, Vec<Tensor>)> {
    run_keeping_at(graph, inputs, keep, Precision::F32)
}

/// `run` with every weight, input and op output rounded as the GPU stores them at
/// `precision`: the reference for the GPU's f16 path (arithmetic stays f32 on both).
pub fn run_at(graph: &Graph<Tensor>, inputs: &[Tensor], precision: Precision) -> Result<Tensor> {
    Ok(run_keeping_at(graph, inputs, &[], precision)?.0)
}

/// `run_keeping` at `precision` (see `run_at`).
pub fn run_keeping_at(
    graph: &Graph<Tensor>,
    inputs: &[Tensor],
    keep: &[ValueId],
    precision: Precision,
) -> Result<(Tensor, Vec<Tensor>)> {
    if precision == Precision::F32 {
        return run_stored(graph, inputs, keep, &|t| t);
    }
    let store = |mut t: Tensor| {
        t.data_mut()
            .iter_mut()
            .for_each(|v| *v = precision.round(*v));
        t
    };
    let graph = graph.map_constants(|t| Ok(store(t.clone())))?;
    let inputs: Vec<Tensor> = inputs.iter().cloned().map(store).collect();
    run_stored(&graph, &inputs, keep, &store)
}

/// The most bytes the CPU reference's live tensors may take at once. In wasm32 they share a
/// 4 GiB address space with the module and its weights, and a larger run would abort in the
/// allocator instead of failing; natively the host's allocator decides, and no plan is made.
#[cfg(target_arch = "wasm32")]
const TENSOR_BUDGET: Option<u64> = Some(2 << 30);
#[cfg(not(target_arch = "wasm32"))]
const TENSOR_BUDGET: Option<u64> = None;

/// An error unless the inputs' shapes fit `graph` and, given a `budget`, its values on them,
/// each freed after its last reader as `run_stored` frees them, fit in that many bytes.
fn check_memory(
    graph: &Graph<Tensor>,
    input_shapes: &[&[usize]],
    keep: &[ValueId],
    budget: Option<u64>,
) -> Result<()> {
    let shapes = graph.shapes(input_shapes)?;
    let Some(budget) = budget else {
        return Ok(());
    };
    let peak =
        super::plan::plan(graph, &shapes, keep, Precision::F32, &Default::default())?.peak_bytes();
    if peak > budget {
        return Err(Error::Limit {
            what: format!("running the CPU reference on the input(s) {input_shapes:?}"),
            needed: peak,
            limit: budget,
            unit: "bytes",
        });
    }
    Ok(())
}

/// Runs the graph, passing every op's output through `store`.
fn run_stored(
    graph: &Graph<Tensor>,
    inputs: &[Tensor],
    keep: &[ValueId],
    store: &dyn Fn(Tensor) -> Tensor,
) -> Result<(Tensor, Vec<Tensor>)> {
    let shapes: Vec<&[usize]> = inputs.iter().map(Tensor::shape).collect();
    check_memory(graph, &shapes, keep, TENSOR_BUDGET)?;
    let last = last_uses(graph, keep)?;
    let mut values: Vec<Option<Tensor>> = vec![None; graph.nodes().len()];
    for (i, node) in graph.nodes().iter().enumerate() {
        if let Op::Constant(_) = node.op {
            continue;
        }
        let ins: Vec<&Tensor> = node
            .inputs
            .iter()
            .map(|&v| value(graph, &values, v))
            .collect::<Result<_>>()?;
        let out = eval(&node.op, &ins, inputs)?;
        values[i] = Some(store(out));
        for &v in &node.inputs {
            if last[v] == i {
                values[v] = None;
            }
        }
    }
    // Kept values are cloned (one may be the output too); the output is moved out.
    let kept = keep
        .iter()
        .map(|&v| value(graph, &values, v).cloned())
        .collect::<Result<_>>()?;
    let out = graph.output()?;
    let output = match values[out].take() {
        Some(t) => t,
        None => value(graph, &values, out)?.clone(),
    };
    Ok((output, kept))
}

/// Value `v`: a constant of the graph (never copied into `values`), or a computed one.
fn value<'a>(
    graph: &'a Graph<Tensor>,
    values: &'a [Option<Tensor>],
    v: ValueId,
) -> Result<&'a Tensor> {
    if let Some(Op::Constant(c)) = graph.nodes().get(v).map(|n| n.op) {
        return graph
            .constants()
            .get(c)
            .ok_or_else(|| Error::Invalid(format!("constant {c} is missing")));
    }
    values
        .get(v)
        .and_then(Option::as_ref)
        .ok_or_else(|| Error::Invalid(format!("value {v} was freed early or never computed")))
}

fn eval(op: &Op, ins: &[&Tensor], inputs: &[Tensor]) -> Result<Tensor> {
    let x = || ins[0];
    let mut o = Operands::after_x(ins);
    match *op {
        Op::Input(i) => Ok(inputs[i].clone()),
        Op::Constant(_) => Err(Error::Invalid("a constant is read, not evaluated".into())),
        Op::Conv {
            spec,
            bias,
            residual,
        } => {
            let (weight, ep) = conv_operands(ins, bias, residual)?;
            r::conv::conv2d(x(), weight, &ep, &spec)
        }
        Op::Affine(spec) => r::elementwise::channel_affine(x(), o.take()?, o.take()?, &spec),
        Op::Unary(s) => Ok(r::elementwise::unary(x(), &s)),
        Op::Binary(s) => r::elementwise::binary(ins[0], ins[1], &s),
        Op::Blend(s) => r::elementwise::blend(ins[0], ins[1], ins[2], &s),
        Op::MaxPool(s) => r::pool::max_pool(x(), &s),
        Op::AvgPool(s) => r::pool::avg_pool(x(), &s),
        Op::Mean(s) => r::pool::spatial_mean(x(), &s),
        Op::Linear { spec, bias } => {
            let weight = *o.take()?;
            r::linear::linear(x(), weight, o.take_if(bias)?.copied(), &spec)
        }
        Op::Softmax(s) => r::linear::softmax(x(), &s),
        Op::Concat(s) => r::tensor_ops::concat(ins, &s),
        Op::Reshape(s) => x().clone().reshape(&s.out_shape(x().shape())?),
        Op::Subtraction(s) => r::san::subtraction2(ins[0], ins[1], &s),
        Op::Aggregation(spec) => {
            let w = *o.take()?;
            let scale_shift = o.take_pair_if(spec.epilogue.affine)?.map(|(s, t)| (*s, *t));
            r::san::aggregation(x(), w, scale_shift, &spec)
        }
        Op::PatchGather(spec) => {
            let scale_shift = o.take_pair_if(spec.epilogue.affine)?.map(|(s, t)| (*s, *t));
            r::san::patch_gather(x(), scale_shift, &spec)
        }
        Op::TripletPool(s) => r::triplet::triplet_pool(x(), &s),
        Op::TripletGates(spec) => r::triplet::triplet_gates(x(), o.take()?, o.take()?, &spec),
        Op::TripletCombine { spec, residual } => {
            r::triplet::triplet_combine(ins[0], ins[1], residual.then(|| ins[2]), &spec)
        }
        Op::CoordPool(s) => r::coord::coord_pool(x(), &s),
        Op::CoordGates(spec) => r::coord::coord_gates(x(), o.take()?, o.take()?, &spec),
        Op::CoordApply(s) => r::coord::coord_apply(ins[0], ins[1], &s),
    }
}

#[cfg(test)]
mod tests {
    /// A run whose live tensors would exceed the budget is refused before any op runs, by its
    /// input shape and bytes, as bad input; one that fits is not. (`TENSOR_BUDGET` is finite
    /// only in wasm32, so the budget is passed here.)
    #[test]
    fn a_run_past_the_tensor_budget_is_refused_by_size() {
        let shape = vec![1, 3, 32, 32];
        let graph = crate::models::build_synthetic(
            "resnet18",
            0,
            std::slice::from_ref(&shape),
            &Default::default(),
        )
        .unwrap();
        let inputs: [&[usize]; 1] = [&shape];
        super::check_memory(&graph, &inputs, &[], Some(1 << 30)).unwrap();
        let err = super::check_memory(&graph, &inputs, &[], Some(1000)).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("[[1, 3, 32, 32]]") && msg.contains("allows 1000"),
            "{msg}"
        );
        assert_eq!(err.code(), "bad-input");
    }
}
