//! Convolution and BatchNorm on the CPU, as plain loops over the formulas of MODULES.md §1.

use super::activate;
use crate::error::{shape_err, Result};
use crate::ops::conv::{BatchNorm, Conv2d, Epilogue};
use crate::tensor::Tensor;

/// `y[n,o,h,w] = b[o] + Σ_i Σ_a Σ_b W[o,i,a,b] · x[n, g·Cin/G + i, h·sh − ph + a·dh, w·sw − pw + b·dw]`
/// (zero outside the image), then the epilogue. The sum is accumulated in f64 so the oracle
/// carries less rounding than the kernels it checks.
pub fn conv2d(x: &Tensor, w: &Tensor, ep: &Epilogue<Tensor>, spec: &Conv2d) -> Result<Tensor> {
    let d = spec.check(x, w, ep)?;
    let (n, cin, h, wd, cout, cin_g, cout_g) = (d.n, d.cin, d.h, d.w, d.cout, d.cin_g, d.cout_g);
    let (kh, kw, ho, wo) = (d.kh, d.kw, d.ho, d.wo);
    let (xd, wdat) = (x.data(), w.data());
    let mut y = Tensor::zeros(&d.out_shape());
    let mut flat = 0;
    for b in 0..n {
        for o in 0..cout {
            let group = o / cout_g;
            for oh in 0..ho {
                for ow in 0..wo {
                    let mut acc = 0.0f64;
                    for i in 0..cin_g {
                        let c = group * cin_g + i;
                        for a in 0..kh {
                            let ih = (oh * spec.stride.0 + a * spec.dilation.0) as isize
                                - spec.padding.0 as isize;
                            if ih < 0 || ih >= h as isize {
                                continue;
                            }
                            for bb in 0..kw {
                                let iw = (ow * spec.stride.1 + bb * spec.dilation.1) as isize
                                    - spec.padding.1 as isize;
                                if iw < 0 || iw >= wd as isize {
                                    continue;
                                }
                                let xv = xd[((b * cin + c) * h + ih as usize) * wd + iw as usize];
                                let wv = wdat[((o * cin_g + i) * kh + a) * kw + bb];
                                acc += xv as f64 * wv as f64;
                            }
                        }
                    }
                    y.data_mut()[flat] = epilogue(acc as f32, o, flat, ep, spec);
                    flat += 1;
                }
            }
        }
    }
    Ok(y)
}

/// `v = conv + bias[o]; v = v·scale[o] + shift[o]; v = act(v); v = post_act(v + residual)`.
fn epilogue(conv: f32, o: usize, flat: usize, ep: &Epilogue<Tensor>, spec: &Conv2d) -> f32 {
    let mut v = conv;
    if let Some(bias) = ep.bias {
        v += bias.data()[o];
    }
    if let Some((scale, shift)) = ep.affine {
        v = v * scale.data()[o] + shift.data()[o];
    }
    v = activate(spec.act, v);
    if let Some(res) = ep.residual {
        v = activate(spec.post_act, v + res.data()[flat]);
    }
    v
}

/// Inference BatchNorm straight from its definition on `[N, C, ...]`:
/// `y = (x − running_mean) / sqrt(running_var + eps) · weight + bias` per channel, in f32 the
/// way PyTorch evaluates it.
pub fn batchnorm(x: &Tensor, bn: &BatchNorm) -> Result<Tensor> {
    let c = bn.channels();
    if x.shape().len() < 2 || x.shape()[1] != c {
        return Err(shape_err(
            "batchnorm",
            format!(
                "expects [N, {c}, ...] for {c} channels, got {:?}",
                x.shape()
            ),
        ));
    }
    let inner: usize = x.shape()[2..].iter().product();
    let eps = bn.eps() as f32;
    let (g, b) = (bn.weight().data(), bn.bias().data());
    let (m, v) = (bn.running_mean().data(), bn.running_var().data());
    Ok(Tensor::from_fn(x.shape(), |i| {
        let ch = (i / inner) % c;
        (x.data()[i] - m[ch]) / (v[ch] + eps).sqrt() * g[ch] + b[ch]
    }))
}
