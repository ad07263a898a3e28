//! Builds a graph from a state dict: reads each weight by its official key, checks its shape,
//! folds BatchNorms, and tracks every value's shape as nodes are added.

use crate::error::{Context, Error, Result};
use crate::graph::{output_shape, AttentionTap, Graph, Op, ValueId};
use crate::ops::conv::{fold_batchnorm, BatchNorm, Conv2d};
use crate::ops::linear::Linear;
use crate::ops::Activation;
use crate::tensor::Tensor;
use crate::weights::{synthetic, StateDict};

/// One convolution as the official code declares it, plus the BN that follows it (if any).
#[derive(Clone, Debug)]
pub struct ConvCfg<'k> {
    /// Key prefix of the conv (`layer1.0.conv1`): `<key>.weight`, `<key>.bias`.
    pub key: &'k str,
    pub out: usize,
    pub kernel: usize,
    pub stride: usize,
    pub padding: usize,
    pub groups: usize,
    pub bias: bool,
    /// Key prefix of the BatchNorm folded into this conv.
    pub bn: Option<&'k str>,
    pub act: Activation,
}

impl<'k> ConvCfg<'k> {
    /// A k×k conv without bias, padding k/2, stride 1, one group.
    pub fn new(key: &'k str, out: usize, kernel: usize) -> Self {
        Self {
            key,
            out,
            kernel,
            stride: 1,
            padding: kernel / 2,
            groups: 1,
            bias: false,
            bn: None,
            act: Activation::None,
        }
    }

    pub fn stride(mut self, s: usize) -> Self {
        self.stride = s;
        self
    }

    pub fn groups(mut self, g: usize) -> Self {
        self.groups = g;
        self
    }

    pub fn padding(mut self, p: usize) -> Self {
        self.padding = p;
        self
    }

    pub fn bias(mut self) -> Self {
        self.bias = true;
        self
    }

    pub fn bn(mut self, key: &'k str) -> Self {
        self.bn = Some(key);
        self
    }

    pub fn act(mut self, act: Activation) -> Self {
        self.act = act;
        self
    }
}

/// Where a model's weights come from.
#[derive(Clone, Copy, Debug)]
pub enum Weights<'a> {
    Checkpoint(&'a StateDict),
    /// Deterministic stand-ins (`weights::synthetic`) for the official default configuration.
    Synthetic {
        seed: u64,
    },
}

pub struct Builder<'a> {
    weights: Weights<'a>,
    graph: Graph<Tensor>,
    shapes: Vec<Vec<usize>>,
}

impl<'a> Builder<'a> {
    /// A builder with one graph input per shape.
    pub fn new(weights: Weights<'a>, input_shapes: &[Vec<usize>]) -> (Self, Vec<ValueId>) {
        let mut b = Self {
            weights,
            graph: Graph::default(),
            shapes: Vec::new(),
        };
        let ids = input_shapes
            .iter()
            .map(|s| {
                b.shapes.push(s.clone());
                b.graph.input()
            })
            .collect();
        (b, ids)
    }

    pub fn shape(&self, v: ValueId) -> &[usize] {
        &self.shapes[v]
    }

    pub fn channels(&self, v: ValueId) -> usize {
        self.shapes[v].get(1).copied().unwrap_or(0)
    }

    /// Adds a node; `context` names the module in a shape error.
    pub fn push(&mut self, op: Op, inputs: Vec<ValueId>, context: &str) -> Result<ValueId> {
        let ins: Vec<&[usize]> = inputs.iter().map(|&v| self.shapes[v].as_slice()).collect();
        let shape =
            output_shape(&op, &ins).with_context(|| format!("{}: {context}", self.source()))?;
        self.shapes.push(shape);
        Ok(self.graph.push_named(op, inputs, context.to_string()))
    }

    /// A constant node holding `t` (a weight), named `name` (its key).
    pub fn constant(&mut self, t: Tensor, name: &str) -> ValueId {
        self.shapes.push(t.shape().to_vec());
        self.graph.constant(t, name.to_string())
    }

    /// `op` on `x` followed by constant operands, each named by `context` and its role.
    pub fn push_with(
        &mut self,
        op: Op,
        x: ValueId,
        constants: Vec<(&str, Tensor)>,
        context: &str,
    ) -> Result<ValueId> {
        let mut inputs = vec![x];
        for (role, t) in constants {
            inputs.push(self.constant(t, &format!("{context}.{role}")));
        }
        self.push(op, inputs, context)
    }

    /// Keeps the attention maps of one module readable (see `AttentionTap`).
    pub fn tap(&mut self, tap: AttentionTap) {
        self.graph.add_tap(tap);
    }

    pub fn finish(mut self, output: ValueId) -> Result<Graph<Tensor>> {
        if let Weights::Checkpoint(sd) = self.weights {
            sd.check_all_used()?;
        }
        self.graph.set_output(output);
        Ok(self.graph)
    }

    /// The checkpoint's name, for errors.
    pub fn source(&self) -> &str {
        match self.weights {
            Weights::Checkpoint(sd) => sd.source(),
            Weights::Synthetic { .. } => "synthetic weights",
        }
    }

    pub fn weight(&self, key: &str, shape: &[usize]) -> Result<Tensor> {
        match self.weights {
            Weights::Checkpoint(sd) => sd.get(key, shape).cloned(),
            Weights::Synthetic { seed } => Ok(synthetic::tensor(key, shape, seed)),
        }
    }

    /// Dimension `axis` of the weight `key`, which the architecture reads from the checkpoint
    /// (a width, a kernel size, a class count); `official` is the official default, used for
    /// synthetic weights.
    pub fn dim(&self, key: &str, axis: usize, official: usize) -> Result<usize> {
        match self.weights {
            Weights::Checkpoint(sd) => {
                let t = sd.get_any(key)?;
                t.shape().get(axis).copied().ok_or_else(|| {
                    Error::Invalid(format!(
                        "{}: key `{key}` has shape {:?}, which has no axis {axis}",
                        sd.source(),
                        t.shape()
                    ))
                })
            }
            Weights::Synthetic { .. } => Ok(official),
        }
    }

    /// Whether the checkpoint has `key` (for optional parts); `official` for synthetic weights.
    pub fn has(&self, key: &str, official: bool) -> bool {
        match self.weights {
            Weights::Checkpoint(sd) => sd.contains(key),
            Weights::Synthetic { .. } => official,
        }
    }

    /// Marks a checkpoint key as read on purpose although the computation never uses it.
    pub fn skip(&self, key: &str) -> Result<()> {
        match self.weights {
            Weights::Checkpoint(sd) => sd.skip(key),
            Weights::Synthetic { .. } => Ok(()),
        }
    }

    pub fn batchnorm(&self, prefix: &str, channels: usize) -> Result<BatchNorm> {
        let get = |name: &str| self.weight(&format!("{prefix}.{name}"), &[channels]);
        BatchNorm::new(
            get("weight")?,
            get("bias")?,
            get("running_mean")?,
            get("running_var")?,
        )
        .with_context(|| format!("{}: {prefix}", self.source()))
    }

    /// Weight and bias of a conv after folding its BN, with the shapes checked.
    pub fn conv_weights(
        &self,
        c: &ConvCfg,
        in_channels: usize,
    ) -> Result<(Tensor, Option<Tensor>)> {
        if c.groups == 0 || !in_channels.is_multiple_of(c.groups) {
            return Err(Error::Invalid(format!(
                "{}: {}: {in_channels} input channels cannot form {} groups",
                self.source(),
                c.key,
                c.groups
            )));
        }
        let w = self.weight(
            &format!("{}.weight", c.key),
            &[c.out, in_channels / c.groups, c.kernel, c.kernel],
        )?;
        let b = if c.bias {
            Some(self.weight(&format!("{}.bias", c.key), &[c.out])?)
        } else {
            None
        };
        match c.bn {
            Some(bn) => {
                let (w, b) = fold_batchnorm(&w, b.as_ref(), &self.batchnorm(bn, c.out)?)?;
                Ok((w, Some(b)))
            }
            None => Ok((w, b)),
        }
    }

    pub fn conv(&mut self, x: ValueId, c: &ConvCfg) -> Result<ValueId> {
        self.conv_with(x, c, None, Activation::None)
    }

    /// A conv whose epilogue adds `residual` and then applies `post_act`.
    pub fn conv_with(
        &mut self,
        x: ValueId,
        c: &ConvCfg,
        residual: Option<ValueId>,
        post_act: Activation,
    ) -> Result<ValueId> {
        let (weight, bias) = self.conv_weights(c, self.channels(x))?;
        let mut spec = Conv2d::new(c.stride, c.padding)
            .with_groups(c.groups)
            .with_act(c.act);
        spec.post_act = post_act;
        self.push_conv(x, weight, bias, residual, spec, c.key)
    }

    /// A conv node: x, its weight and bias as constants, and the residual.
    fn push_conv(
        &mut self,
        x: ValueId,
        weight: Tensor,
        bias: Option<Tensor>,
        residual: Option<ValueId>,
        spec: Conv2d,
        key: &str,
    ) -> Result<ValueId> {
        let op = Op::Conv {
            spec,
            bias: bias.is_some(),
            residual: residual.is_some(),
        };
        let mut inputs = vec![x, self.constant(weight, &format!("{key}.weight"))];
        inputs.extend(bias.map(|b| self.constant(b, &format!("{key}.bias"))));
        inputs.extend(residual);
        self.push(op, inputs, key)
    }

    /// `Linear` at `key` on `[N, F]`; the number of outputs comes from the weight.
    pub fn linear(&mut self, x: ValueId, key: &str, act: Activation) -> Result<ValueId> {
        let f = self.shape(x)[1..].iter().product();
        let out = self.dim(&format!("{key}.weight"), 0, 1000)?;
        let weight = self.weight(&format!("{key}.weight"), &[out, f])?;
        let bias = self.weight(&format!("{key}.bias"), &[out])?;
        let op = Op::Linear {
            spec: Linear { act },
            bias: true,
        };
        self.push_with(op, x, vec![("weight", weight), ("bias", bias)], key)
    }
}

impl Builder<'_> {
    /// A conv with weights prepared by the caller (e.g. with a BN folded by hand).
    pub fn conv_raw(
        &mut self,
        x: ValueId,
        weight: Tensor,
        bias: Option<Tensor>,
        spec: Conv2d,
        ctx: &str,
    ) -> Result<ValueId> {
        self.push_conv(x, weight, bias, None, spec, ctx)
    }

    /// `act(bn(x))` for a BatchNorm that cannot fold into a conv.
    pub fn bn_act(&mut self, x: ValueId, key: &str, act: Activation) -> Result<ValueId> {
        let (scale, shift) = self.batchnorm(key, self.channels(x))?.scale_shift();
        let spec = crate::ops::elementwise::ChannelAffine { act };
        self.push_with(
            Op::Affine(spec),
            x,
            vec![("scale", scale), ("shift", shift)],
            key,
        )
    }
}
