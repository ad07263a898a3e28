//! A model as a graph of ops, run by the CPU reference or by the GPU kernels.
//!
//! Ops are plain specs; their weights are constant nodes among their inputs. `Graph<T>` is
//! generic over where those constants live: `Tensor` on the host (built by the model code, run
//! by `cpu::run`), `GpuTensor` after `gpu::GpuGraph::new` uploads them once.

pub mod cpu;
pub mod fuse;
pub mod gpu;
pub mod plan;

use crate::error::{shape_err, Error, Result};
use crate::ops::conv::{Conv2d, Epilogue, EpilogueShapes, Shaped};
use crate::ops::coord::{CoordApply, CoordGateSpec, CoordPool};
use crate::ops::elementwise::{broadcast_shape, Binary, Blend, ChannelAffine, Unary};
use crate::ops::linear::{linear_dims, Linear, Softmax};
use crate::ops::pool::{AvgPool2d, MaxPool2d, SpatialMean};
use crate::ops::san::{
    aggregation_shape, check_epilogue, patch_gather_shape, subtraction_shape, Aggregation,
    PatchGather, Subtraction,
};
use crate::ops::tensor_ops::{concat_shape, Concat, Reshape};
use crate::ops::triplet::{TripletCombine, TripletGateSpec, TripletPool};

/// Index of a node, and of the value it produces.
pub type ValueId = usize;

/// One attention map of a tap: for image `n`, element `(r, c)` of the map is the mean over
/// `g < groups` of element `n·per_image + offset + g·rows·cols + r·cols + c` of the value's
/// data (one group: the element itself).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AttentionMap {
    /// What the map is: "hw", "cw", "hc" (Triplet Attention), "h", "w" (Coordinate
    /// Attention), "fusion" (AFF), "fusion1", "fusion2" (iAFF), "neighbourhood" (SAN).
    pub label: &'static str,
    pub value: ValueId,
    pub per_image: usize,
    pub offset: usize,
    pub rows: usize,
    pub cols: usize,
    /// Slabs averaged into the map: the channels of AFF's weights, SAN's weight groups.
    pub groups: usize,
    /// `[Ho, Wo]` when each column is a pixel of that grid and each row a tap of its k×k
    /// window (SAN's neighbourhood weights).
    pub pixels: Option<[usize; 2]>,
}

/// The attention weights of one module, kept readable after an inference (for display).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AttentionTap {
    /// The module's key prefix, e.g. `features.3.conv.4`.
    pub block: String,
    /// "triplet", "coord", "aff", "iaff" or "san".
    pub kind: &'static str,
    pub maps: Vec<AttentionMap>,
}

impl AttentionMap {
    /// A map read straight from `rows × cols` elements (one group).
    pub fn plain(
        label: &'static str,
        value: ValueId,
        per_image: usize,
        offset: usize,
        rows: usize,
        cols: usize,
    ) -> Self {
        Self {
            label,
            value,
            per_image,
            offset,
            rows,
            cols,
            groups: 1,
            pixels: None,
        }
    }

    /// The `rows × cols` map of image `n` from the value's data.
    pub fn read(&self, data: &[f32], n: usize) -> Result<Vec<f32>> {
        let len = self.rows * self.cols;
        let start = n * self.per_image + self.offset;
        let slab = data.get(start..start + len * self.groups).ok_or_else(|| {
            Error::Invalid(format!(
                "attention map {}: image {n} lies outside a value of {} elements",
                self.label,
                data.len()
            ))
        })?;
        let mut map = vec![0.0f32; len];
        for group in slab.chunks_exact(len.max(1)) {
            map.iter_mut().zip(group).for_each(|(m, v)| *m += v);
        }
        let groups = self.groups.max(1) as f32;
        map.iter_mut().for_each(|m| *m /= groups);
        Ok(map)
    }
}

/// One op: a plain spec. The comment says which values the node takes as inputs, in order;
/// weights are among them, as `Constant` nodes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Op {
    /// The i-th model input.
    Input(usize),
    /// The i-th constant of the graph: a weight, or a precomputed tensor with its own batch
    /// of 1 (SAN's position term).
    Constant(usize),
    /// `[x, weight, bias?, residual?]`
    Conv {
        spec: Conv2d,
        bias: bool,
        residual: bool,
    },
    /// `[x, scale, shift]`
    Affine(ChannelAffine),
    /// `[x]`
    Unary(Unary),
    /// `[a, b]`
    Binary(Binary),
    /// `[x, w, residual]`
    Blend(Blend),
    /// `[x]`
    MaxPool(MaxPool2d),
    /// `[x]`
    AvgPool(AvgPool2d),
    /// `[x]`
    Mean(SpatialMean),
    /// `[x, weight, bias?]` with x `[N, F]` or `[N, F, 1, 1]`
    Linear { spec: Linear, bias: bool },
    /// `[x]`
    Softmax(Softmax),
    /// `[x0, x1, ...]`
    Concat(Concat),
    /// `[x]`: the same values as `[N, tail...]` (no copy on the GPU).
    Reshape(Reshape),
    /// `[x1, x2]`
    Subtraction(Subtraction),
    /// `[x, w]`, then `[scale, shift]` when its epilogue has an affine.
    Aggregation(Aggregation),
    /// `[x]`, then `[scale, shift]` when its epilogue has an affine.
    PatchGather(PatchGather),
    /// `[x]`: Triplet Attention's six Z-pools, packed per image.
    TripletPool(TripletPool),
    /// `[pooled, weight, bias]`: TA's gate maps, packed per image; weight `[G,2,k,k]`, bias
    /// `[G]` (BN folded).
    TripletGates(TripletGateSpec),
    /// `[x, gates]`, or `[x, gates, residual]`: `act(TA(x) + residual)`.
    TripletCombine {
        spec: TripletCombine,
        residual: bool,
    },
    /// `[x]`: Coordinate Attention's directional means, `[N,C,H+W,1]`.
    CoordPool(CoordPool),
    /// `[f, weight, bias]`: CA's `a_h` and `a_w`, packed per image; weight `[2,C,mip]`, bias
    /// `[2,C]`.
    CoordGates(CoordGateSpec),
    /// `[x, gates]`: `(x · a_w) · a_h`.
    CoordApply(CoordApply),
}

/// A node's operands after x, in node order, taken one by one; optional ones only when the op
/// has them. Shape checking counts them first, so running out means a malformed graph.
pub struct Operands<'a, V> {
    rest: std::slice::Iter<'a, V>,
}

impl<'a, V> Operands<'a, V> {
    /// The operands of a node whose inputs are `ins`, x (the first) left out.
    pub fn after_x(ins: &'a [V]) -> Self {
        Self {
            rest: ins.get(1..).unwrap_or(&[]).iter(),
        }
    }

    pub fn take(&mut self) -> Result<&'a V> {
        self.rest
            .next()
            .ok_or_else(|| Error::Invalid("a node has fewer operands than its op takes".into()))
    }

    pub fn take_if(&mut self, present: bool) -> Result<Option<&'a V>> {
        present.then(|| self.take()).transpose()
    }

    pub fn take_pair_if(&mut self, present: bool) -> Result<Option<(&'a V, &'a V)>> {
        present
            .then(|| Ok((self.take()?, self.take()?)))
            .transpose()
    }
}

/// A conv node's weight and epilogue operands (after x), as its op says they are present.
pub fn conv_operands<'a, T>(
    ins: &[&'a T],
    bias: bool,
    residual: bool,
) -> Result<(&'a T, Epilogue<'a, T>)> {
    let mut o = Operands::after_x(ins);
    let weight = *o.take()?;
    let ep = Epilogue {
        bias: o.take_if(bias)?.copied(),
        affine: None,
        residual: o.take_if(residual)?.copied(),
    };
    Ok((weight, ep))
}

#[derive(Clone, Debug)]
pub struct Node {
    pub op: Op,
    pub inputs: Vec<ValueId>,
    /// Where the node comes from in the model (its key prefix, or a weight's key), for
    /// profiles and errors.
    pub name: String,
}

#[derive(Clone, Debug)]
pub struct Graph<T> {
    nodes: Vec<Node>,
    constants: Vec<T>,
    inputs: usize,
    output: Option<ValueId>,
    taps: Vec<AttentionTap>,
}

impl<T> Default for Graph<T> {
    fn default() -> Self {
        Self {
            nodes: Vec::new(),
            constants: Vec::new(),
            inputs: 0,
            output: None,
            taps: Vec::new(),
        }
    }
}

impl<T> Graph<T> {
    pub fn input(&mut self) -> ValueId {
        self.inputs += 1;
        self.push(Op::Input(self.inputs - 1), vec![])
    }

    /// A node holding `value` (a weight), named by where it comes from.
    pub fn constant(&mut self, value: T, name: String) -> ValueId {
        self.constants.push(value);
        self.push_named(Op::Constant(self.constants.len() - 1), vec![], name)
    }

    pub fn push(&mut self, op: Op, inputs: Vec<ValueId>) -> ValueId {
        self.push_named(op, inputs, String::new())
    }

    pub fn push_named(&mut self, op: Op, inputs: Vec<ValueId>, name: String) -> ValueId {
        self.nodes.push(Node { op, inputs, name });
        self.nodes.len() - 1
    }

    pub fn set_output(&mut self, v: ValueId) {
        self.output = Some(v);
    }

    pub fn add_tap(&mut self, tap: AttentionTap) {
        self.taps.push(tap);
    }

    /// The attention modules whose weights a caller may ask to read back.
    pub fn taps(&self) -> &[AttentionTap] {
        &self.taps
    }

    /// Every value the taps read, once each, in graph order (what to keep for them).
    pub fn tap_values(&self) -> Vec<ValueId> {
        let mut v: Vec<ValueId> = self
            .taps
            .iter()
            .flat_map(|t| t.maps.iter().map(|m| m.value))
            .collect();
        v.sort_unstable();
        v.dedup();
        v
    }

    pub fn nodes(&self) -> &[Node] {
        &self.nodes
    }

    pub fn input_count(&self) -> usize {
        self.inputs
    }

    pub fn output(&self) -> Result<ValueId> {
        self.output
            .ok_or_else(|| Error::Invalid("the graph has no output".into()))
    }

    /// Multiply-accumulates of one inference, given every value's shape (`shapes`).
    pub fn macs(&self, shapes: &[Vec<usize>]) -> u64 {
        self.nodes
            .iter()
            .zip(shapes)
            .map(|(n, out)| {
                let ins: Vec<&[usize]> = n.inputs.iter().map(|&v| shapes[v].as_slice()).collect();
                n.op.macs(&ins, out)
            })
            .sum()
    }

    /// Every constant of the graph (the weights), by `Op::Constant` index.
    pub fn constants(&self) -> &[T] {
        &self.constants
    }

    /// The same graph with every constant converted by `f` (e.g. uploaded to the GPU).
    pub fn map_constants<U>(&self, f: impl FnMut(&T) -> Result<U>) -> Result<Graph<U>> {
        Ok(Graph {
            nodes: self.nodes.clone(),
            constants: self.constants.iter().map(f).collect::<Result<_>>()?,
            inputs: self.inputs,
            output: self.output,
            taps: self.taps.clone(),
        })
    }
}

impl Op {
    /// A short name of the op kind, for profiles.
    pub fn kind(&self) -> &'static str {
        match self {
            Op::Input(_) => "input",
            Op::Constant(_) => "constant",
            Op::Conv { .. } => "conv2d",
            Op::Affine(_) => "channel_affine",
            Op::Unary(_) => "unary",
            Op::Binary(_) => "binary",
            Op::Blend(_) => "blend",
            Op::MaxPool(_) => "max_pool",
            Op::AvgPool(_) => "avg_pool",
            Op::Mean(_) => "mean",
            Op::Linear { .. } => "linear",
            Op::Softmax(_) => "softmax",
            Op::Concat(_) => "concat",
            Op::Reshape(_) => "reshape",
            Op::Subtraction(_) => "subtraction",
            Op::Aggregation(_) => "aggregation",
            Op::PatchGather(_) => "patch_gather",
            Op::TripletPool(_) => "triplet_pool",
            Op::TripletGates(_) => "triplet_gates",
            Op::TripletCombine { .. } => "triplet_combine",
            Op::CoordPool(_) => "coord_pool",
            Op::CoordGates(_) => "coord_gates",
            Op::CoordApply(_) => "coord_apply",
        }
    }

    /// How many inputs the node takes (`None`: any number, at least one).
    fn arity(&self) -> Option<usize> {
        let n = |present: bool| usize::from(present);
        Some(match self {
            Op::Input(_) | Op::Constant(_) => 0,
            Op::Conv { bias, residual, .. } => 2 + n(*bias) + n(*residual),
            Op::Affine(_) | Op::Blend(_) | Op::TripletGates(_) | Op::CoordGates(_) => 3,
            Op::Unary(_)
            | Op::MaxPool(_)
            | Op::AvgPool(_)
            | Op::Mean(_)
            | Op::Softmax(_)
            | Op::Reshape(_)
            | Op::TripletPool(_)
            | Op::CoordPool(_) => 1,
            Op::Binary(_) | Op::Subtraction(_) | Op::CoordApply(_) => 2,
            Op::Linear { bias, .. } => 2 + n(*bias),
            Op::Concat(_) => return None,
            Op::Aggregation(s) => 2 + 2 * n(s.epilogue.affine),
            Op::PatchGather(s) => 1 + 2 * n(s.epilogue.affine),
            Op::TripletCombine { residual, .. } => 2 + n(*residual),
        })
    }

    /// Multiply-accumulates of the op's convolutions, matrix products and aggregations for
    /// these input and output shapes (pointwise work is not counted).
    pub fn macs(&self, ins: &[&[usize]], out: &[usize]) -> u64 {
        let numel = |s: &[usize]| s.iter().product::<usize>() as u64;
        let weight = || ins.get(1).copied().unwrap_or(&[]);
        match self {
            // Each output value sums Cin/groups · kh · kw products.
            Op::Conv { .. } => numel(out) * numel(weight().get(1..).unwrap_or(&[])),
            Op::Linear { .. } => numel(out) * weight().get(1).copied().unwrap_or(0) as u64,
            Op::Aggregation(spec) => numel(out) * spec.window.taps() as u64,
            // A gate output sums 2·k² products.
            Op::TripletGates(_) => numel(out) * numel(weight().get(1..).unwrap_or(&[])),
            // An output sums mip products.
            Op::CoordGates(_) => numel(out) * weight().get(2).copied().unwrap_or(0) as u64,
            _ => 0,
        }
    }
}

impl<T: Shaped> Graph<T> {
    /// The shape of every value for these input shapes, checking every op's shape rule.
    pub fn shapes(&self, inputs: &[&[usize]]) -> Result<Vec<Vec<usize>>> {
        if inputs.len() != self.inputs {
            return Err(Error::Invalid(format!(
                "the model takes {} input(s), got {}",
                self.inputs,
                inputs.len()
            )));
        }
        let mut shapes: Vec<Vec<usize>> = Vec::with_capacity(self.nodes.len());
        for node in &self.nodes {
            let shape = match node.op {
                Op::Input(i) => inputs
                    .get(i)
                    .ok_or_else(|| Error::Invalid(format!("model input {i} is missing")))?
                    .to_vec(),
                Op::Constant(c) => self
                    .constants
                    .get(c)
                    .ok_or_else(|| Error::Invalid(format!("constant {c} is missing")))?
                    .dims()
                    .to_vec(),
                op => {
                    let ins: Vec<&[usize]> =
                        node.inputs.iter().map(|&v| shapes[v].as_slice()).collect();
                    output_shape(&op, &ins)?
                }
            };
            shapes.push(shape);
        }
        Ok(shapes)
    }
}

/// The shape a computing op produces from inputs of shapes `ins`, checking its shape rule and
/// its operand count.
pub(crate) fn output_shape(op: &Op, ins: &[&[usize]]) -> Result<Vec<usize>> {
    match op.arity() {
        Some(n) if ins.len() != n => {
            return Err(shape_err(
                op.kind(),
                format!("takes {n} operands, got {}", ins.len()),
            ))
        }
        _ if ins.is_empty() => {
            return Err(shape_err(
                op.kind(),
                "takes no operands: a leaf has no shape rule",
            ))
        }
        _ => {}
    }
    let x = ins[0];
    let mut o = Operands::after_x(ins);
    Ok(match op {
        Op::Input(_) | Op::Constant(_) => {
            return Err(Error::Invalid("a leaf has no shape rule".into()))
        }
        Op::Conv {
            spec,
            bias,
            residual,
        } => {
            let out = spec.output_shape(x, o.take()?)?;
            let epilogue = EpilogueShapes {
                bias: o.take_if(*bias)?.copied(),
                affine: None,
                residual: o.take_if(*residual)?.copied(),
            };
            spec.check_epilogue(&out, &epilogue)?;
            out
        }
        Op::Affine(_) => {
            crate::ops::elementwise::channel_affine_channels(x, o.take()?, o.take()?)?;
            x.to_vec()
        }
        Op::Unary(_) | Op::Softmax(_) => x.to_vec(),
        Op::Blend(s) => s.out_shape(x, o.take()?, o.take()?)?,
        Op::Binary(_) => broadcast_shape("binary", x, o.take()?)?,
        Op::MaxPool(s) => s.out_shape(x)?.to_vec(),
        Op::AvgPool(s) => s.out_shape(x)?.to_vec(),
        Op::Mean(s) => s.out_shape(x)?.to_vec(),
        Op::Linear { bias, .. } => {
            let weight = o.take()?;
            linear_dims(x, weight, o.take_if(*bias)?.copied())?
                .out_shape()
                .to_vec()
        }
        Op::Concat(s) => concat_shape(s, ins)?.to_vec(),
        Op::Reshape(r) => r.out_shape(x)?,
        Op::Subtraction(s) => subtraction_shape(s, x, o.take()?)?.to_vec(),
        Op::Aggregation(spec) => {
            let out = aggregation_shape(spec, x, o.take()?)?;
            let scale_shift = o.take_pair_if(spec.epilogue.affine)?.map(|(s, t)| (*s, *t));
            check_epilogue("aggregation", &spec.epilogue, out[1], scale_shift)?;
            out.to_vec()
        }
        Op::PatchGather(spec) => {
            let out = patch_gather_shape(spec, x)?;
            let scale_shift = o.take_pair_if(spec.epilogue.affine)?.map(|(s, t)| (*s, *t));
            check_epilogue("patch_gather", &spec.epilogue, out[1], scale_shift)?;
            out.to_vec()
        }
        Op::TripletPool(s) => s.out_shape(x)?.to_vec(),
        Op::TripletGates(s) => s.out_shape(x, o.take()?, o.take()?)?.to_vec(),
        Op::TripletCombine { spec, residual } => {
            let gates = o.take()?;
            spec.check(x, gates, o.take_if(*residual)?.copied())?;
            x.to_vec()
        }
        Op::CoordPool(s) => s.out_shape(x)?.to_vec(),
        Op::CoordGates(s) => s.out_shape(x, o.take()?, o.take()?)?.to_vec(),
        Op::CoordApply(s) => s.check(x, o.take()?)?.to_vec(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::Activation;

    /// Ops are plain specs: graph passes can compare, hash and copy them.
    #[test]
    fn ops_are_plain_keys() {
        fn plain<T: Copy + Eq + std::hash::Hash>(_: T) {}
        let conv = Op::Conv {
            spec: Conv2d::new(1, 0).with_act(Activation::Relu),
            bias: true,
            residual: false,
        };
        plain(conv);
        let ops: std::collections::HashSet<Op> = [conv, conv, Op::Constant(0)].into();
        assert_eq!(ops.len(), 2);
    }

    /// A node short of an operand is refused by its shape rule, which names the op and the
    /// count, before any executor indexes its operands.
    #[test]
    fn a_missing_operand_is_named() {
        let conv = Op::Conv {
            spec: Conv2d::new(1, 0),
            bias: true,
            residual: false,
        };
        let x: &[usize] = &[1, 3, 4, 4];
        let weight: &[usize] = &[8, 3, 1, 1];
        let err = output_shape(&conv, &[x, weight]).unwrap_err().to_string();
        assert!(
            err.contains("conv2d") && err.contains("takes 3 operands, got 2"),
            "{err}"
        );
        let bias: &[usize] = &[7];
        let err = output_shape(&conv, &[x, weight, bias])
            .unwrap_err()
            .to_string();
        assert!(err.contains("bias must be [8]"), "{err}");
        assert_eq!(
            output_shape(&conv, &[x, weight, &[8]]).unwrap(),
            [1, 8, 4, 4]
        );
    }
}
