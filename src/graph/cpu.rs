//! Runs a graph with the CPU reference.

use super::{Graph, Op, ValueId};
use crate::error::{Error, Result};
use crate::ops::conv::Epilogue;
use crate::ops::tensor_ops::reshape_shape;
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
    let graph = graph.map(|t| Ok(store(t.clone())))?;
    let inputs: Vec<Tensor> = inputs.iter().cloned().map(store).collect();
    run_stored(&graph, &inputs, keep, &store)
}

/// Runs the graph, passing every op's output through `store`.
fn run_stored(
    graph: &Graph<Tensor>,
    inputs: &[Tensor],
    keep: &[ValueId],
    store: &dyn Fn(Tensor) -> Tensor,
) -> Result<(Tensor, Vec<Tensor>)> {
    let shapes: Vec<&[usize]> = inputs.iter().map(Tensor::shape).collect();
    graph.shapes(&shapes)?;
    let last = last_uses(graph, keep)?;
    let mut values: Vec<Option<Tensor>> = vec![None; graph.nodes().len()];
    for (i, node) in graph.nodes().iter().enumerate() {
        let ins: Vec<&Tensor> = node
            .inputs
            .iter()
            .map(|&v| {
                values[v]
                    .as_ref()
                    .ok_or_else(|| Error::Invalid(format!("value {v} was freed early")))
            })
            .collect::<Result<_>>()?;
        let out = eval(&node.op, &ins, inputs)?;
        values[i] = Some(store(out));
        for &v in &node.inputs {
            if last[v] == i {
                values[v] = None;
            }
        }
    }
    let missing = |v: ValueId| Error::Invalid(format!("value {v} was never computed"));
    // Kept values are cloned (one may be the output too); the output is moved out.
    let kept = keep
        .iter()
        .map(|&v| values[v].clone().ok_or_else(|| missing(v)))
        .collect::<Result<_>>()?;
    let out = graph.output()?;
    Ok((values[out].take().ok_or_else(|| missing(out))?, kept))
}

fn eval(op: &Op<Tensor>, ins: &[&Tensor], inputs: &[Tensor]) -> Result<Tensor> {
    let x = || ins[0];
    match op {
        Op::Input(i) => Ok(inputs[*i].clone()),
        Op::Constant(t) => Ok(t.clone()),
        Op::Conv {
            spec,
            weight,
            bias,
            affine,
            residual,
        } => {
            let ep = Epilogue {
                bias: bias.as_ref(),
                affine: affine.as_ref().map(|(s, t)| (s, t)),
                residual: if *residual { Some(ins[1]) } else { None },
            };
            r::conv::conv2d(x(), weight, &ep, spec)
        }
        Op::Affine { spec, scale, shift } => {
            r::elementwise::channel_affine(x(), scale, shift, spec)
        }
        Op::Unary(s) => Ok(r::elementwise::unary(x(), s)),
        Op::Binary(s) => r::elementwise::binary(ins[0], ins[1], s),
        Op::Blend(s) => r::elementwise::blend(ins[0], ins[1], ins[2], s),
        Op::MaxPool(s) => r::pool::max_pool(x(), s),
        Op::AvgPool(s) => r::pool::avg_pool(x(), s),
        Op::Mean(s) => r::pool::spatial_mean(x(), s),
        Op::Linear { spec, weight, bias } => r::linear::linear(x(), weight, bias.as_ref(), spec),
        Op::Softmax(s) => r::linear::softmax(x(), s),
        Op::Concat(s) => r::tensor_ops::concat(ins, s),
        Op::Reshape(tail) => x().clone().reshape(&reshape_shape(x().shape(), tail)?),
        Op::Subtraction(s) => r::san::subtraction2(ins[0], ins[1], s),
        Op::Aggregation { spec, scale_shift } => r::san::aggregation(
            ins[0],
            ins[1],
            scale_shift.as_ref().map(|(s, t)| (s, t)),
            spec,
        ),
        Op::PatchGather { spec, scale_shift } => {
            r::san::patch_gather(x(), scale_shift.as_ref().map(|(s, t)| (s, t)), spec)
        }
        Op::TripletPool(s) => r::triplet::triplet_pool(x(), s),
        Op::TripletGates { spec, weight, bias } => {
            r::triplet::triplet_gates(x(), weight, bias, spec)
        }
        Op::TripletCombine { spec, residual } => {
            r::triplet::triplet_combine(ins[0], ins[1], residual.then(|| ins[2]), spec)
        }
        Op::CoordPool(s) => r::coord::coord_pool(x(), s),
        Op::CoordGates { spec, weight, bias } => r::coord::coord_gates(x(), weight, bias, spec),
        Op::CoordApply(s) => r::coord::coord_apply(ins[0], ins[1], s),
    }
}
