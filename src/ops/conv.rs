//! 2-D convolution (PyTorch `Conv2d`: cross-correlation, zero padding, weights
//! `[Cout, Cin/groups, kh, kw]`) with a fused epilogue, and BatchNorm folding (MODULES.md §1).

use super::Activation;
pub use super::Shaped;
use crate::error::{shape_err, Error, Result};
use crate::tensor::{nchw, Tensor};

const OP: &str = "conv2d";

/// The eps of every BatchNorm layer in the four code bases (MODULES.md §1).
pub const BN_EPS: f64 = 1e-5;

/// Geometry and activations of a convolution. Which epilogue operands exist (bias,
/// scale/shift, residual) is given by the [`Epilogue`] passed beside it. Per output value:
/// `v = conv + bias[o]; v = v·scale[o] + shift[o]; v = act(v); v = post_act(v + residual)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Conv2d {
    /// (sh, sw)
    pub stride: (usize, usize),
    /// (ph, pw), zeros on both sides
    pub padding: (usize, usize),
    /// (dh, dw)
    pub dilation: (usize, usize),
    pub groups: usize,
    /// Applied after bias and scale/shift.
    pub act: Activation,
    /// Applied after the residual add; must stay `None` without a residual.
    pub post_act: Activation,
}

impl Default for Conv2d {
    fn default() -> Self {
        Self::new(1, 0)
    }
}

impl Conv2d {
    /// Square stride and padding, dilation 1, one group, no activations.
    pub fn new(stride: usize, padding: usize) -> Self {
        Self {
            stride: (stride, stride),
            padding: (padding, padding),
            dilation: (1, 1),
            groups: 1,
            act: Activation::None,
            post_act: Activation::None,
        }
    }

    pub fn with_dilation(mut self, d: usize) -> Self {
        self.dilation = (d, d);
        self
    }

    pub fn with_groups(mut self, groups: usize) -> Self {
        self.groups = groups;
        self
    }

    pub fn with_act(mut self, act: Activation) -> Self {
        self.act = act;
        self
    }

    pub fn with_post_act(mut self, act: Activation) -> Self {
        self.post_act = act;
        self
    }

    fn check_params(&self) -> Result<()> {
        let (s, d) = (self.stride, self.dilation);
        if s.0 == 0 || s.1 == 0 || d.0 == 0 || d.1 == 0 || self.groups == 0 {
            return Err(shape_err(
                OP,
                format!(
                    "stride {s:?}, dilation {d:?} and groups {} must all be at least 1",
                    self.groups
                ),
            ));
        }
        Ok(())
    }

    /// `[N, Cout, Ho, Wo]` with `Ho = floor((H + 2ph − dh(kh − 1) − 1) / sh) + 1` (same for W).
    pub fn output_shape(&self, input: &[usize], weight: &[usize]) -> Result<Vec<usize>> {
        Ok(self.dims(input, weight)?.out_shape().to_vec())
    }

    /// The conv's named dimensions, after checking input and weight against each other and
    /// the geometry: the one shape rule the reference, the launchers and the kernel params use.
    pub fn dims(&self, input: &[usize], weight: &[usize]) -> Result<ConvDims> {
        self.check_params()?;
        let [n, cin, h, w] = nchw(OP, input)?;
        let [cout, cin_g, kh, kw] = match weight {
            [a, b, c, d] => [*a, *b, *c, *d],
            _ => {
                return Err(shape_err(
                    OP,
                    format!("weight must be [Cout, Cin/groups, kh, kw], got {weight:?}"),
                ))
            }
        };
        let g = self.groups;
        if input.contains(&0) || weight.contains(&0) {
            return Err(shape_err(
                OP,
                format!("empty input {input:?} or weight {weight:?}"),
            ));
        }
        if cin % g != 0 || cout % g != 0 {
            return Err(shape_err(
                OP,
                format!(
                    "groups {g} must divide both Cin and Cout: input {input:?}, weight {weight:?}"
                ),
            ));
        }
        if cin / g != cin_g {
            return Err(shape_err(
                OP,
                format!(
                    "weight {weight:?} has {cin_g} input channels per group but input {input:?} \
                     with groups {g} has {}",
                    cin / g
                ),
            ));
        }
        let ho = out_extent(h, kh, self.stride.0, self.padding.0, self.dilation.0);
        let wo = out_extent(w, kw, self.stride.1, self.padding.1, self.dilation.1);
        match (ho, wo) {
            (Some(ho), Some(wo)) => Ok(ConvDims {
                n,
                cin,
                h,
                w,
                cout,
                cin_g,
                cout_g: cout / g,
                kh,
                kw,
                ho,
                wo,
            }),
            _ => Err(shape_err(
                OP,
                format!(
                    "empty output: kernel {kh}×{kw} with dilation {:?} does not fit input {input:?} \
                     padded by {:?}",
                    self.dilation, self.padding
                ),
            )),
        }
    }

    /// Checks the epilogue operands against the output shape `out` (from `output_shape`).
    pub fn check_epilogue(&self, out: &[usize], ep: &EpilogueShapes) -> Result<()> {
        let cout = out.get(1).copied().unwrap_or(0);
        let per_channel = |name: &str, s: Option<&[usize]>| match s {
            Some(s) if s != [cout] => Err(shape_err(
                OP,
                format!("{name} must be [{cout}] for output {out:?}, got {s:?}"),
            )),
            _ => Ok(()),
        };
        per_channel("bias", ep.bias)?;
        per_channel("scale", ep.affine.map(|a| a.0))?;
        per_channel("shift", ep.affine.map(|a| a.1))?;
        match ep.residual {
            Some(r) if r != out => Err(shape_err(
                OP,
                format!("residual must have the output shape {out:?}, got {r:?}"),
            )),
            None if self.post_act != Activation::None => Err(shape_err(
                OP,
                format!(
                    "post_act {:?} applies after a residual add, but no residual was given \
                     (output {out:?})",
                    self.post_act
                ),
            )),
            _ => Ok(()),
        }
    }

    /// The conv's dimensions after checking input, weight and every epilogue operand.
    pub fn check<T: Shaped>(&self, x: &T, w: &T, ep: &Epilogue<T>) -> Result<ConvDims> {
        let dims = self.dims(x.dims(), w.dims())?;
        self.check_epilogue(&dims.out_shape(), &ep.shapes())?;
        Ok(dims)
    }
}

/// A conv's dimensions (`Conv2d::dims`): input `[n, cin, h, w]`, weight `[cout, cin_g, kh, kw]`
/// with `cout_g` output channels per group, output `[n, cout, ho, wo]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ConvDims {
    pub n: usize,
    pub cin: usize,
    pub h: usize,
    pub w: usize,
    pub cout: usize,
    pub cin_g: usize,
    pub cout_g: usize,
    pub kh: usize,
    pub kw: usize,
    pub ho: usize,
    pub wo: usize,
}

impl ConvDims {
    pub fn out_shape(&self) -> [usize; 4] {
        [self.n, self.cout, self.ho, self.wo]
    }

    /// N·Ho·Wo output pixels, or an error naming the output when that overflows.
    pub fn pixels(&self) -> Result<usize> {
        self.n
            .checked_mul(self.ho)
            .and_then(|v| v.checked_mul(self.wo))
            .ok_or_else(|| {
                shape_err(
                    OP,
                    format!("output {:?} has too many pixels", self.out_shape()),
                )
            })
    }
}

/// `floor((size + 2p − d(k − 1) − 1) / s) + 1`, or `None` when no window fits.
fn out_extent(size: usize, k: usize, s: usize, p: usize, d: usize) -> Option<usize> {
    let span = d.saturating_mul(k - 1).saturating_add(1);
    let padded = size.saturating_add(p.saturating_mul(2));
    padded.checked_sub(span).map(|room| room / s + 1)
}

/// The optional operands of the fused epilogue (`T` = `Tensor` on the host, `GpuTensor` on
/// the device): `bias[Cout]`, a per-channel `(scale[Cout], shift[Cout])` (a BatchNorm that is
/// not folded), and a residual of the output shape.
#[derive(Debug)]
pub struct Epilogue<'a, T> {
    pub bias: Option<&'a T>,
    pub affine: Option<(&'a T, &'a T)>,
    pub residual: Option<&'a T>,
}

impl<T> Clone for Epilogue<'_, T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T> Copy for Epilogue<'_, T> {}

impl<T> Default for Epilogue<'_, T> {
    fn default() -> Self {
        Self {
            bias: None,
            affine: None,
            residual: None,
        }
    }
}

impl<'a, T> Epilogue<'a, T> {
    pub fn with_bias(bias: &'a T) -> Self {
        Self {
            bias: Some(bias),
            ..Self::default()
        }
    }
}

impl<T: Shaped> Epilogue<'_, T> {
    pub fn shapes(&self) -> EpilogueShapes<'_> {
        EpilogueShapes {
            bias: self.bias.map(|t| t.dims()),
            affine: self.affine.map(|(s, t)| (s.dims(), t.dims())),
            residual: self.residual.map(|t| t.dims()),
        }
    }
}

/// The shapes of an [`Epilogue`]'s operands.
#[derive(Clone, Copy, Debug, Default)]
pub struct EpilogueShapes<'a> {
    pub bias: Option<&'a [usize]>,
    pub affine: Option<(&'a [usize], &'a [usize])>,
    pub residual: Option<&'a [usize]>,
}

/// An inference-mode BatchNorm: `y = (x − running_mean) / sqrt(running_var + eps) · weight + bias`
/// per channel. Built through [`BatchNorm::new`], which checks that the four tensors are `[C]`.
#[derive(Clone, Debug, PartialEq)]
pub struct BatchNorm {
    weight: Tensor,
    bias: Tensor,
    running_mean: Tensor,
    running_var: Tensor,
    eps: f64,
}

impl BatchNorm {
    /// gamma, beta, running mean and variance, all `[C]`; eps = 1e-5.
    pub fn new(
        weight: Tensor,
        bias: Tensor,
        running_mean: Tensor,
        running_var: Tensor,
    ) -> Result<Self> {
        Self::with_eps(weight, bias, running_mean, running_var, BN_EPS)
    }

    pub fn with_eps(
        weight: Tensor,
        bias: Tensor,
        running_mean: Tensor,
        running_var: Tensor,
        eps: f64,
    ) -> Result<Self> {
        let c = weight.numel();
        let shapes = [&weight, &bias, &running_mean, &running_var].map(|t| t.shape().to_vec());
        if shapes.iter().any(|s| s.as_slice() != [c]) {
            return Err(shape_err(
                "batchnorm",
                format!(
                    "weight, bias, running_mean and running_var must all be [C], got {:?}, {:?}, \
                     {:?}, {:?}",
                    shapes[0], shapes[1], shapes[2], shapes[3]
                ),
            ));
        }
        let positive = |v: f32| v as f64 + eps > 0.0;
        if let Some(v) = running_var.data().iter().find(|&&v| !positive(v)) {
            return Err(Error::Invalid(format!(
                "batchnorm: running_var + eps must be positive, got running_var {v} with eps {eps}"
            )));
        }
        Ok(Self {
            weight,
            bias,
            running_mean,
            running_var,
            eps,
        })
    }

    pub fn channels(&self) -> usize {
        self.weight.numel()
    }

    pub fn weight(&self) -> &Tensor {
        &self.weight
    }

    pub fn bias(&self) -> &Tensor {
        &self.bias
    }

    pub fn running_mean(&self) -> &Tensor {
        &self.running_mean
    }

    pub fn running_var(&self) -> &Tensor {
        &self.running_var
    }

    pub fn eps(&self) -> f64 {
        self.eps
    }

    /// `s[c] = γ[c] / sqrt(σ²[c] + ε)` in f64.
    fn scale64(&self) -> Vec<f64> {
        let gamma = self.weight.data();
        let var = self.running_var.data();
        (0..self.channels())
            .map(|c| gamma[c] as f64 / (var[c] as f64 + self.eps).sqrt())
            .collect()
    }

    /// `(scale, shift)` with `y = x·scale + shift`: for a BN that cannot fold into a conv
    /// (the standalone `channel_affine` kernel or a conv epilogue).
    pub fn scale_shift(&self) -> (Tensor, Tensor) {
        let s = self.scale64();
        let (beta, mean) = (self.bias.data(), self.running_mean.data());
        let c = self.channels();
        let scale = Tensor::from_fn(&[c], |o| s[o] as f32);
        let shift = Tensor::from_fn(&[c], |o| (beta[o] as f64 - mean[o] as f64 * s[o]) as f32);
        (scale, shift)
    }
}

/// Folds `bn` into the conv before it (MODULES.md §1): `W'[o,…] = s[o]·W[o,…]`,
/// `b'[o] = (b[o] − μ[o])·s[o] + β[o]` with `b = 0` when absent. Holds for dense, grouped and
/// depthwise convs since the scale is per output channel. Computed in f64, rounded to f32.
pub fn fold_batchnorm(
    conv_weight: &Tensor,
    conv_bias: Option<&Tensor>,
    bn: &BatchNorm,
) -> Result<(Tensor, Tensor)> {
    let op = "fold_batchnorm";
    let cout = match conv_weight.shape() {
        [cout, _, _, _] => *cout,
        s => {
            return Err(shape_err(
                op,
                format!("conv weight must be [Cout, Cin/groups, kh, kw], got {s:?}"),
            ))
        }
    };
    if bn.channels() != cout {
        return Err(shape_err(
            op,
            format!(
                "BatchNorm has {} channels but conv weight {:?} has {cout} outputs",
                bn.channels(),
                conv_weight.shape()
            ),
        ));
    }
    if let Some(b) = conv_bias.filter(|b| b.shape() != [cout]) {
        return Err(shape_err(
            op,
            format!(
                "conv bias must be [{cout}] for weight {:?}, got {:?}",
                conv_weight.shape(),
                b.shape()
            ),
        ));
    }
    let s = bn.scale64();
    let per_out = conv_weight.numel() / cout;
    let w = conv_weight.data();
    let weight = Tensor::from_fn(conv_weight.shape(), |i| {
        (w[i] as f64 * s[i / per_out]) as f32
    });
    let (beta, mean) = (bn.bias.data(), bn.running_mean.data());
    let bias = Tensor::from_fn(&[cout], |o| {
        let b = conv_bias.map_or(0.0, |b| b.data()[o] as f64);
        ((b - mean[o] as f64) * s[o] + beta[o] as f64) as f32
    });
    Ok((weight, bias))
}
