//! Pooling as plain loops over output positions, written from PyTorch's definitions.
//! Sums accumulate in f64 so the oracle's own rounding stays far below the test tolerance.

use crate::error::Result;
use crate::ops::pool::{AvgPool2d, MaxPool2d, SpatialMean};
use crate::tensor::Tensor;

/// Calls `f(n, c, oh, ow)` for every output position of `shape`, in row-major order.
fn build(
    shape: [usize; 4],
    mut f: impl FnMut(usize, usize, usize, usize) -> f32,
) -> Result<Tensor> {
    let [n, c, h, w] = shape;
    let mut data = Vec::with_capacity(n * c * h * w);
    for ni in 0..n {
        for ci in 0..c {
            for hi in 0..h {
                for wi in 0..w {
                    data.push(f(ni, ci, hi, wi));
                }
            }
        }
    }
    Tensor::new(shape.to_vec(), data)
}

/// Value of `x` at (n, c, h, w), or None outside the plane.
fn at(x: &Tensor, n: usize, c: usize, h: isize, w: isize) -> Option<f32> {
    let s = x.shape();
    let (ch, cw) = (s[2] as isize, s[3] as isize);
    if h < 0 || w < 0 || h >= ch || w >= cw {
        return None;
    }
    Some(x.data()[((n * s[1] + c) * s[2] + h as usize) * s[3] + w as usize])
}

pub fn max_pool(x: &Tensor, spec: &MaxPool2d) -> Result<Tensor> {
    let out = spec.out_shape(x.shape())?;
    let (k, s, p) = (spec.kernel, spec.stride as isize, spec.padding as isize);
    build(out, |n, c, oh, ow| {
        let mut best = f32::NEG_INFINITY;
        for a in 0..k as isize {
            for b in 0..k as isize {
                if let Some(v) = at(x, n, c, oh as isize * s - p + a, ow as isize * s - p + b) {
                    best = best.max(v);
                }
            }
        }
        best
    })
}

pub fn avg_pool(x: &Tensor, spec: &AvgPool2d) -> Result<Tensor> {
    let out = spec.out_shape(x.shape())?;
    let (k, s, p) = (spec.kernel, spec.stride as isize, spec.padding as isize);
    let (h, w) = (x.shape()[2], x.shape()[3]);
    build(out, |n, c, oh, ow| {
        let (hs, ws) = (oh as isize * s - p, ow as isize * s - p);
        let mut sum = 0.0f64;
        for a in 0..k as isize {
            for b in 0..k as isize {
                sum += at(x, n, c, hs + a, ws + b).unwrap_or(0.0) as f64;
            }
        }
        let count = spec.axis_count(hs, h) * spec.axis_count(ws, w);
        (sum / count as f64) as f32
    })
}

pub fn spatial_mean(x: &Tensor, spec: &SpatialMean) -> Result<Tensor> {
    let out = spec.out_shape(x.shape())?;
    let (h, w) = (x.shape()[2], x.shape()[3]);
    let rows = if spec.over.reduces_h() { h } else { 1 };
    let cols = if spec.over.reduces_w() { w } else { 1 };
    build(out, |n, c, oh, ow| {
        let mut sum = 0.0f64;
        for a in 0..rows {
            for b in 0..cols {
                let v = at(x, n, c, (oh + a) as isize, (ow + b) as isize).unwrap_or(0.0);
                sum += v as f64;
            }
        }
        (sum / (rows * cols) as f64) as f32
    })
}
