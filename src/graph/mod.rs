//! A model as a graph of ops, run by the CPU reference or by the GPU kernels.
//!
//! `Graph<T>` is generic over where the weights live: `Tensor` on the host (built by the
//! model code, run by `cpu::run`), `GpuTensor` after `gpu::GpuGraph::new` uploads them once.

pub mod cpu;
pub mod gpu;

use crate::error::{shape_err, Error, Result};
use crate::ops::conv::{Conv2d, Shaped};
use crate::ops::elementwise::{broadcast_shape, Binary, Blend, ChannelAffine, Unary};
use crate::ops::linear::{linear_dims, Linear, Softmax};
use crate::ops::pool::{AvgPool2d, MaxPool2d, SpatialMean};
use crate::ops::san::{
    aggregation_shape, patch_gather_shape, subtraction_shape, Aggregation, PatchGather, Subtraction,
};
use crate::ops::tensor_ops::{concat_shape, split_shapes, Concat, Split};
use crate::ops::triplet::{Gate, TripletGates};
use crate::ops::Activation;
use crate::tensor::numel;

/// Index of a node, and of the value it produces.
pub type ValueId = usize;

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
    /// `[x]`: part `index` of a split.
    SplitPart { spec: Split, index: usize },
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
    /// `[x]`, or `[x, residual]`: `act(TA(x) + residual)`.
    Triplet {
        gates: TripletGates<T>,
        act: Activation,
        residual: bool,
    },
}

#[derive(Clone, Debug)]
pub struct Node<T> {
    pub op: Op<T>,
    pub inputs: Vec<ValueId>,
}

#[derive(Clone, Debug)]
pub struct Graph<T> {
    nodes: Vec<Node<T>>,
    inputs: usize,
    output: Option<ValueId>,
}

impl<T> Default for Graph<T> {
    fn default() -> Self {
        Self {
            nodes: Vec::new(),
            inputs: 0,
            output: None,
        }
    }
}

impl<T> Graph<T> {
    pub fn input(&mut self) -> ValueId {
        self.inputs += 1;
        self.push(Op::Input(self.inputs - 1), vec![])
    }

    pub fn push(&mut self, op: Op<T>, inputs: Vec<ValueId>) -> ValueId {
        self.nodes.push(Node { op, inputs });
        self.nodes.len() - 1
    }

    pub fn set_output(&mut self, v: ValueId) {
        self.output = Some(v);
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
                    Op::SplitPart { spec, index } => Op::SplitPart {
                        spec: spec.clone(),
                        index: *index,
                    },
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
                    Op::Triplet {
                        gates,
                        act,
                        residual,
                    } => {
                        let mut gate = |g: &Gate<T>| -> Result<Gate<U>> {
                            Ok(Gate {
                                weight: f(&g.weight)?,
                                bias: f(&g.bias)?,
                            })
                        };
                        let gates = TripletGates {
                            hw: gates.hw.as_ref().map(&mut gate).transpose()?,
                            cw: gate(&gates.cw)?,
                            hc: gate(&gates.hc)?,
                        };
                        Op::Triplet {
                            gates,
                            act: *act,
                            residual: *residual,
                        }
                    }
                };
                Ok(Node {
                    op,
                    inputs: n.inputs.clone(),
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Graph {
            nodes,
            inputs: self.inputs,
            output: self.output,
        })
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
        Op::Affine { .. } | Op::Unary(_) | Op::Softmax(_) | Op::Blend(_) | Op::Triplet { .. } => {
            x().to_vec()
        }
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
        Op::SplitPart { spec, index } => split_shapes(spec, x())?
            .get(*index)
            .ok_or_else(|| shape_err("split", format!("no part {index} in {:?}", spec.sizes)))?
            .to_vec(),
        Op::Reshape(tail) => {
            let n = *x()
                .first()
                .ok_or_else(|| shape_err("reshape", "input has no batch dimension"))?;
            let shape: Vec<usize> = std::iter::once(n).chain(tail.iter().copied()).collect();
            if numel(&shape) != numel(x()) {
                return Err(shape_err(
                    "reshape",
                    format!("cannot view {:?} as {shape:?}", x()),
                ));
            }
            shape
        }
        Op::Subtraction(s) => subtraction_shape(s, ins[0], ins[1])?.to_vec(),
        Op::Aggregation { spec, .. } => aggregation_shape(spec, ins[0], ins[1])?.to_vec(),
        Op::PatchGather { spec, .. } => patch_gather_shape(spec, x())?.to_vec(),
    })
}
