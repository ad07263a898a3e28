//! Linear and softmax as plain loops.

use super::activate;
use crate::error::Result;
use crate::ops::linear::{linear_dims, softmax_view, Linear, Softmax};
use crate::tensor::Tensor;

pub fn linear(x: &Tensor, w: &Tensor, b: Option<&Tensor>, spec: &Linear) -> Result<Tensor> {
    let d = linear_dims(x.shape(), w.shape(), b.map(|b| b.shape()))?;
    let mut out = Tensor::zeros(&d.out_shape());
    for n in 0..d.n {
        for o in 0..d.o {
            let mut sum = b.map_or(0.0, |b| b.data()[o]);
            for f in 0..d.f {
                sum += x.data()[n * d.f + f] * w.data()[o * d.f + f];
            }
            out.data_mut()[n * d.o + o] = activate(spec.act, sum);
        }
    }
    Ok(out)
}

pub fn softmax(x: &Tensor, spec: &Softmax) -> Result<Tensor> {
    let [outer, len, inner] = softmax_view(spec, x.shape())?;
    let mut out = Tensor::zeros(x.shape());
    for o in 0..outer {
        for i in 0..inner {
            let idx = |l: usize| (o * len + l) * inner + i;
            let max = (0..len)
                .map(|l| x.data()[idx(l)])
                .fold(f32::NEG_INFINITY, f32::max);
            let sum: f32 = (0..len).map(|l| (x.data()[idx(l)] - max).exp()).sum();
            for l in 0..len {
                out.data_mut()[idx(l)] = (x.data()[idx(l)] - max).exp() / sum;
            }
        }
    }
    Ok(out)
}
