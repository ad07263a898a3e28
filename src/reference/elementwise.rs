use crate::error::Result;
use crate::ops::elementwise::{
    broadcast_shape, channel_affine_channels, Binary, BinaryOp, Blend, ChannelAffine, Unary,
};
use crate::ops::Activation;
use crate::tensor::Tensor;

pub fn activate(act: Activation, x: f32) -> f32 {
    let relu6 = |v: f32| v.clamp(0.0, 6.0);
    match act {
        Activation::None => x,
        Activation::Relu => x.max(0.0),
        Activation::Relu6 => relu6(x),
        Activation::Sigmoid => 1.0 / (1.0 + (-x).exp()),
        Activation::HSigmoid => relu6(x + 3.0) / 6.0,
        Activation::HSwish => x * (relu6(x + 3.0) / 6.0),
    }
}

pub fn unary(x: &Tensor, spec: &Unary) -> Tensor {
    Tensor::from_fn(x.shape(), |i| {
        activate(spec.act, spec.scale * x.data()[i] + spec.shift)
    })
}

/// The value of `t` at the multi-index `idx` of the broadcast output (right-aligned).
fn broadcast_at(t: &Tensor, idx: &[usize]) -> f32 {
    let shape = t.shape();
    let skip = idx.len() - shape.len();
    let mut flat = 0;
    for (d, &size) in shape.iter().enumerate() {
        let i = idx[skip + d];
        flat = flat * size + if size == 1 { 0 } else { i };
    }
    t.data()[flat]
}

fn unravel(mut flat: usize, shape: &[usize]) -> Vec<usize> {
    let mut idx = vec![0; shape.len()];
    for d in (0..shape.len()).rev() {
        idx[d] = flat % shape[d];
        flat /= shape[d];
    }
    idx
}

pub fn binary(a: &Tensor, b: &Tensor, spec: &Binary) -> Result<Tensor> {
    let shape = broadcast_shape("binary", a.shape(), b.shape())?;
    Ok(Tensor::from_fn(&shape, |i| {
        let idx = unravel(i, &shape);
        let (x, y) = (broadcast_at(a, &idx), broadcast_at(b, &idx));
        let v = match spec.op {
            BinaryOp::Add => x + y,
            BinaryOp::Sub => x - y,
            BinaryOp::Mul => x * y,
        };
        activate(spec.act, v)
    }))
}

pub fn blend(x: &Tensor, w: &Tensor, r: &Tensor, spec: &Blend) -> Result<Tensor> {
    let shape = spec.out_shape(x.shape(), w.shape(), r.shape())?;
    Ok(Tensor::from_fn(&shape, |i| {
        let wv = broadcast_at(w, &unravel(i, &shape));
        spec.k * (x.data()[i] * wv + r.data()[i] * (1.0 - wv))
    }))
}

pub fn channel_affine(
    x: &Tensor,
    scale: &Tensor,
    shift: &Tensor,
    spec: &ChannelAffine,
) -> Result<Tensor> {
    let c = channel_affine_channels(x.shape(), scale.shape(), shift.shape())?;
    let inner: usize = x.shape()[2..].iter().product();
    Ok(Tensor::from_fn(x.shape(), |i| {
        let ch = (i / inner) % c;
        activate(spec.act, x.data()[i] * scale.data()[ch] + shift.data()[ch])
    }))
}
