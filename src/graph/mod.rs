//! A model as a graph of ops, run by the CPU reference or by the GPU kernels.
//!
//! `Graph<T>` is generic over where the weights live: `Tensor` on the host (built by the
//! model code, run by `cpu::run`), `GpuTensor` after `gpu::GpuGraph::new` uploads them once.

pub mod cpu;
pub mod gpu;
pub mod plan;

use crate::error::{shape_err, Error, Result};
use crate::ops::conv::{Conv2d, Shaped};
use crate::ops::coord::{CoordApply, CoordGateSpec, CoordPool};
use crate::ops::elementwise::{broadcast_shape, Binary, Blend, ChannelAffine, Unary};
use crate::ops::linear::{linear_dims, Linear, Softmax};
use crate::ops::pool::{AvgPool2d, MaxPool2d, SpatialMean};
use crate::ops::san::{
    aggregation_shape, patch_gather_shape, subtraction_shape, Aggregation, PatchGather, Subtraction,
};
use crate::ops::tensor_ops::{concat_shape, reshape_shape, Concat};
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

/// One op with its weights. The comment says which values the node takes as inputs.
#[derive(Clone, Debug)]
pub enum Op<T> {
    /// The i-th model input.
    Input(usize),
    /// A precomputed tensor with its own batch of 1 (SAN's position term).
    Constant(T),
    /// `[x]`, or `[x, residual]` when the spec has a residual.
    Conv {
        spec: Conv2d,
        weight: T,
        bias: Option<T>,
        affine: Option<(T, T)>,
        residual: bool,
    },
    /// `[x]`
    Affine {
        spec: ChannelAffine,
        scale: T,
        shift: T,
    },
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
    /// `[x]` with x `[N, F]` or `[N, F, 1, 1]`
    Linear {
        spec: Linear,
        weight: T,
        bias: Option<T>,
    },
    /// `[x]`
    Softmax(Softmax),
    /// `[x0, x1, ...]`
    Concat(Concat),
    /// `[x]`: the same values as `[N, tail...]` (no copy on the GPU).
    Reshape(Vec<usize>),
    /// `[x1, x2]`
    Subtraction(Subtraction),
    /// `[x, w]`
    Aggregation {
        spec: Aggregation,
        scale_shift: Option<(T, T)>,
    },
    /// `[x]`
    PatchGather {
        spec: PatchGather,
        scale_shift: Option<(T, T)>,
    },
    /// `[x]`: Triplet Attention's six Z-pools, packed per image.
    TripletPool(TripletPool),
    /// `[pooled]`: TA's gate maps, packed per image; weight `[G,2,k,k]`, bias `[G]` (BN folded).
    TripletGates {
        spec: TripletGateSpec,
        weight: T,
        bias: T,
    },
    /// `[x, gates]`, or `[x, gates, residual]`: `act(TA(x) + residual)`.
    TripletCombine {
        spec: TripletCombine,
        residual: bool,
    },
    /// `[x]`: Coordinate Attention's directional means, `[N,C,H+W,1]`.
    CoordPool(CoordPool),
    /// `[f]`: CA's `a_h` and `a_w`, packed per image; weight `[2,C,mip]`, bias `[2,C]`.
    CoordGates {
        spec: CoordGateSpec,
        weight: T,
        bias: T,
    },
    /// `[x, gates]`: `(x · a_w) · a_h`.
    CoordApply(CoordApply),
}

#[derive(Clone, Debug)]
pub struct Node<T> {
    pub op: Op<T>,
    pub inputs: Vec<ValueId>,
    /// Where the node comes from in the model (its key prefix), for profiles and errors.
    pub name: String,
}

#[derive(Clone, Debug)]
pub struct Graph<T> {
    nodes: Vec<Node<T>>,
    inputs: usize,
    output: Option<ValueId>,
    taps: Vec<AttentionTap>,
}

impl<T> Default for Graph<T> {
    fn default() -> Self {
        Self {
            nodes: Vec::new(),
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

    pub fn push(&mut self, op: Op<T>, inputs: Vec<ValueId>) -> ValueId {
        self.push_named(op, inputs, String::new())
    }

    pub fn push_named(&mut self, op: Op<T>, inputs: Vec<ValueId>, name: String) -> ValueId {
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

    pub fn nodes(&self) -> &[Node<T>] {
        &self.nodes
    }

    pub fn input_count(&self) -> usize {
        self.inputs
    }

    pub fn output(&self) -> Result<ValueId> {
        self.output
            .ok_or_else(|| Error::Invalid("the graph has no output".into()))
    }

    /// Every weight tensor of the graph.
    pub fn weights(&self) -> impl Iterator<Item = &T> {
        self.nodes.iter().flat_map(|n| {
            let mut ws: Vec<&T> = Vec::new();
            match &n.op {
                Op::Constant(t) => ws.push(t),
                Op::Conv {
                    weight,
                    bias,
                    affine,
                    ..
                } => {
                    ws.push(weight);
                    ws.extend(bias);
                    ws.extend(affine.iter().flat_map(|(a, b)| [a, b]));
                }
                Op::Affine { scale, shift, .. } => ws.extend([scale, shift]),
                Op::Linear { weight, bias, .. } => {
                    ws.push(weight);
                    ws.extend(bias);
                }
                Op::Aggregation { scale_shift, .. } | Op::PatchGather { scale_shift, .. } => {
                    ws.extend(scale_shift.iter().flat_map(|(a, b)| [a, b]))
                }
                Op::TripletGates { weight, bias, .. } | Op::CoordGates { weight, bias, .. } => {
                    ws.extend([weight, bias])
                }
                _ => {}
            }
            ws
        })
    }

    /// The same graph with every weight converted by `f` (e.g. uploaded to the GPU).
    pub fn map<U>(&self, mut f: impl FnMut(&T) -> Result<U>) -> Result<Graph<U>> {
        fn pair<T, U>(
            p: &Option<(T, T)>,
            f: &mut impl FnMut(&T) -> Result<U>,
        ) -> Result<Option<(U, U)>> {
            p.as_ref().map(|(a, b)| Ok((f(a)?, f(b)?))).transpose()
        }
        let nodes = self
            .nodes
            .iter()
            .map(|n| {
                let op = match &n.op {
                    Op::Input(i) => Op::Input(*i),
                    Op::Constant(t) => Op::Constant(f(t)?),
                    Op::Conv {
                        spec,
                        weight,
                        bias,
                        affine,
                        residual,
                    } => Op::Conv {
                        spec: *spec,
                        weight: f(weight)?,
                        bias: bias.as_ref().map(&mut f).transpose()?,
                        affine: pair(affine, &mut f)?,
                        residual: *residual,
                    },
                    Op::Affine { spec, scale, shift } => Op::Affine {
                        spec: *spec,
                        scale: f(scale)?,
                        shift: f(shift)?,
                    },
                    Op::Unary(s) => Op::Unary(*s),
                    Op::Binary(s) => Op::Binary(*s),
                    Op::Blend(s) => Op::Blend(*s),
                    Op::MaxPool(s) => Op::MaxPool(*s),
                    Op::AvgPool(s) => Op::AvgPool(*s),
                    Op::Mean(s) => Op::Mean(*s),
                    Op::Linear { spec, weight, bias } => Op::Linear {
                        spec: *spec,
                        weight: f(weight)?,
                        bias: bias.as_ref().map(&mut f).transpose()?,
                    },
                    Op::Softmax(s) => Op::Softmax(*s),
                    Op::Concat(s) => Op::Concat(*s),
                    Op::Reshape(tail) => Op::Reshape(tail.clone()),
                    Op::Subtraction(s) => Op::Subtraction(*s),
                    Op::Aggregation { spec, scale_shift } => Op::Aggregation {
                        spec: *spec,
                        scale_shift: pair(scale_shift, &mut f)?,
                    },
                    Op::PatchGather { spec, scale_shift } => Op::PatchGather {
                        spec: *spec,
                        scale_shift: pair(scale_shift, &mut f)?,
                    },
                    Op::TripletPool(s) => Op::TripletPool(*s),
                    Op::TripletGates { spec, weight, bias } => Op::TripletGates {
                        spec: *spec,
                        weight: f(weight)?,
                        bias: f(bias)?,
                    },
                    Op::TripletCombine { spec, residual } => Op::TripletCombine {
                        spec: *spec,
                        residual: *residual,
                    },
                    Op::CoordPool(s) => Op::CoordPool(*s),
                    Op::CoordGates { spec, weight, bias } => Op::CoordGates {
                        spec: *spec,
                        weight: f(weight)?,
                        bias: f(bias)?,
                    },
                    Op::CoordApply(s) => Op::CoordApply(*s),
                };
                Ok(Node {
                    op,
                    inputs: n.inputs.clone(),
                    name: n.name.clone(),
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Graph {
            nodes,
            inputs: self.inputs,
            output: self.output,
            taps: self.taps.clone(),
        })
    }
}

impl<T: Shaped> Op<T> {
    /// A short name of the op kind, for profiles.
    pub fn kind(&self) -> &'static str {
        match self {
            Op::Input(_) => "input",
            Op::Constant(_) => "constant",
            Op::Conv { .. } => "conv2d",
            Op::Affine { .. } => "channel_affine",
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
            Op::Aggregation { .. } => "aggregation",
            Op::PatchGather { .. } => "patch_gather",
            Op::TripletPool(_) => "triplet_pool",
            Op::TripletGates { .. } => "triplet_gates",
            Op::TripletCombine { .. } => "triplet_combine",
            Op::CoordPool(_) => "coord_pool",
            Op::CoordGates { .. } => "coord_gates",
            Op::CoordApply(_) => "coord_apply",
        }
    }

    /// Multiply-accumulates of the op's convolutions, matrix products and aggregations for
    /// these shapes (pointwise work is not counted).
    pub fn macs(&self, out: &[usize]) -> u64 {
        let numel = |s: &[usize]| s.iter().product::<usize>() as u64;
        match self {
            // Each output value sums Cin/groups · kh · kw products.
            Op::Conv { weight, .. } => numel(out) * numel(&weight.dims()[1..]),
            Op::Linear { weight, .. } => {
                numel(out) * weight.dims().get(1).copied().unwrap_or(0) as u64
            }
            Op::Aggregation { spec, .. } => numel(out) * spec.window.taps() as u64,
            // A gate output sums 2·k² products.
            Op::TripletGates { weight, .. } => {
                numel(out) * numel(weight.dims().get(1..).unwrap_or(&[]))
            }
            // An output sums mip products.
            Op::CoordGates { weight, .. } => {
                numel(out) * weight.dims().get(2).copied().unwrap_or(0) as u64
            }
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
            let ins: Vec<&[usize]> = node.inputs.iter().map(|&v| shapes[v].as_slice()).collect();
            shapes.push(output_shape(&node.op, &ins, inputs)?);
        }
        Ok(shapes)
    }
}

/// The shape `op` produces from inputs of shapes `ins` (`model_inputs` serve `Op::Input`).
pub(crate) fn output_shape<T: Shaped>(
    op: &Op<T>,
    ins: &[&[usize]],
    model_inputs: &[&[usize]],
) -> Result<Vec<usize>> {
    let x = || ins.first().copied().unwrap_or(&[]);
    Ok(match op {
        Op::Input(i) => model_inputs
            .get(*i)
            .ok_or_else(|| Error::Invalid(format!("model input {i} is missing")))?
            .to_vec(),
        Op::Constant(t) => t.dims().to_vec(),
        Op::Conv { spec, weight, .. } => spec.output_shape(x(), weight.dims())?,
        Op::Affine { .. } | Op::Unary(_) | Op::Softmax(_) => x().to_vec(),
        Op::Blend(s) => s.out_shape(ins[0], ins[1], ins[2])?,
        Op::Binary(_) => broadcast_shape("binary", ins[0], ins[1])?,
        Op::MaxPool(s) => s.out_shape(x())?.to_vec(),
        Op::AvgPool(s) => s.out_shape(x())?.to_vec(),
        Op::Mean(s) => s.out_shape(x())?.to_vec(),
        Op::Linear { weight, bias, .. } => {
            linear_dims(x(), weight.dims(), bias.as_ref().map(|b| b.dims()))?
                .out_shape()
                .to_vec()
        }
        Op::Concat(s) => concat_shape(s, ins)?.to_vec(),
        Op::Reshape(tail) => reshape_shape(x(), tail)?,
        Op::Subtraction(s) => subtraction_shape(s, ins[0], ins[1])?.to_vec(),
        Op::Aggregation { spec, .. } => aggregation_shape(spec, ins[0], ins[1])?.to_vec(),
        Op::PatchGather { spec, .. } => patch_gather_shape(spec, x())?.to_vec(),
        Op::TripletPool(s) => s.out_shape(x())?.to_vec(),
        Op::TripletGates { spec, weight, bias } => {
            spec.out_shape(x(), weight.dims(), bias.dims())?.to_vec()
        }
        Op::TripletCombine { spec, residual } => {
            let operand = |i: usize| {
                ins.get(i)
                    .copied()
                    .ok_or_else(|| shape_err("triplet_combine", format!("operand {i} is missing")))
            };
            let residual = if *residual { Some(operand(2)?) } else { None };
            spec.check(x(), operand(1)?, residual)?;
            x().to_vec()
        }
        Op::CoordPool(s) => s.out_shape(x())?.to_vec(),
        Op::CoordGates { spec, weight, bias } => {
            spec.out_shape(x(), weight.dims(), bias.dims())?.to_vec()
        }
        Op::CoordApply(s) => {
            let gates = ins
                .get(1)
                .ok_or_else(|| shape_err("coord_apply", "the gates operand is missing"))?;
            s.check(x(), gates)?.to_vec()
        }
    })
}
