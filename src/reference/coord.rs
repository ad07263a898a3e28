//! Coordinate Attention's own ops on the CPU, from MODULES.md §5.1 (sums in f64).

use super::activate;
use crate::error::Result;
use crate::ops::coord::{CoordApply, CoordGateSpec, CoordPool};
use crate::ops::Activation;
use crate::tensor::{nchw, Tensor};

/// `[N,C,H+W,1]`: rows `0..H` the means over W, rows `H..H+W` the means over H.
pub fn coord_pool(x: &Tensor, spec: &CoordPool) -> Result<Tensor> {
    let out = spec.out_shape(x.shape())?;
    let [n, c, h, w] = nchw("coord_pool", x.shape())?;
    let at =
        |ni: usize, ci: usize, hi: usize, wi: usize| x.data()[((ni * c + ci) * h + hi) * w + wi];
    let mut y = Tensor::zeros(&out);
    for ni in 0..n {
        for ci in 0..c {
            let row = (ni * c + ci) * (h + w);
            for hi in 0..h {
                let sum: f64 = (0..w).map(|wi| at(ni, ci, hi, wi) as f64).sum();
                y.data_mut()[row + hi] = (sum / w as f64) as f32;
            }
            for wi in 0..w {
                let sum: f64 = (0..h).map(|hi| at(ni, ci, hi, wi) as f64).sum();
                y.data_mut()[row + h + wi] = (sum / h as f64) as f32;
            }
        }
    }
    Ok(y)
}

/// Per image `a_h [C,H]` then `a_w [C,W]`: the two 1×1 convs with bias and sigmoid on the two
/// parts of `f`.
pub fn coord_gates(
    f: &Tensor,
    weight: &Tensor,
    bias: &Tensor,
    spec: &CoordGateSpec,
) -> Result<Tensor> {
    let out = spec.out_shape(f.shape(), weight.shape(), bias.shape())?;
    let [n, mip, c] = spec.dims(f.shape(), weight.shape(), bias.shape())?;
    let len = spec.h + spec.w;
    let mut y = Tensor::zeros(&out);
    for ni in 0..n {
        // (part, first row of f, first output, positions)
        for (part, from, to, count) in [(0, 0, 0, spec.h), (1, spec.h, c * spec.h, spec.w)] {
            for ci in 0..c {
                for j in 0..count {
                    let mut sum = bias.data()[part * c + ci] as f64;
                    for m in 0..mip {
                        let wv = weight.data()[(part * c + ci) * mip + m] as f64;
                        sum += wv * f.data()[(ni * mip + m) * len + from + j] as f64;
                    }
                    y.data_mut()[ni * c * len + to + ci * count + j] =
                        activate(Activation::Sigmoid, sum as f32);
                }
            }
        }
    }
    Ok(y)
}

/// `(x · a_w) · a_h`.
pub fn coord_apply(x: &Tensor, gates: &Tensor, spec: &CoordApply) -> Result<Tensor> {
    let s = spec.check(x.shape(), gates.shape())?;
    let [_, c, h, w] = s;
    let g = gates.data();
    let per = c * (h + w);
    Ok(Tensor::from_fn(&s, |i| {
        let (wi, hi, ci, ni) = (i % w, (i / w) % h, (i / (w * h)) % c, i / (w * h * c));
        let a_h = g[ni * per + ci * h + hi];
        let a_w = g[ni * per + c * h + ci * w + wi];
        (x.data()[i] * a_w) * a_h
    }))
}
