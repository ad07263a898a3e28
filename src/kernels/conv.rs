//! The direct convolution kernel with its fused epilogue (`shaders/conv2d.wgsl`).

use super::{expect_shape, u32_param};
use crate::error::Result;
use crate::gpu::{GpuTensor, Kernel, Recorder};
use crate::kernel;
use crate::ops::conv::{Conv2d, Epilogue};

pub static CONV2D: Kernel = kernel!("conv2d", "conv2d.wgsl");
pub const KERNELS: &[&Kernel] = &[&CONV2D];

const OP: &str = "conv2d";

/// Output channels one invocation computes (`OT` in the shader, at most its `MAX_OT` = 8):
/// as many as the group has, so depthwise convs waste no lanes.
fn channels_per_invocation(cout_g: usize) -> usize {
    match cout_g {
        0 | 1 => 1,
        2 | 3 => 2,
        4..=7 => 4,
        _ => 8,
    }
}

/// Records `out = epilogue(conv(x, w))`; `out` must have the shape `spec.output_shape` gives.
/// The batch is split when a tensor exceeds one storage binding.
pub fn conv2d(
    rec: &mut Recorder,
    x: &GpuTensor,
    w: &GpuTensor,
    ep: &Epilogue<GpuTensor>,
    out: &GpuTensor,
    spec: &Conv2d,
) -> Result<()> {
    let shape = spec.check(x, w, ep)?;
    expect_shape(OP, out, &shape)?;
    let ot = channels_per_invocation(shape[1] / spec.groups);
    let constants = [
        ("OT", ot as f64),
        ("HAS_BIAS", flag(ep.bias.is_some())),
        ("HAS_AFFINE", flag(ep.affine.is_some())),
        ("HAS_RESIDUAL", flag(ep.residual.is_some())),
        ("ACT", spec.act.code() as f64),
        ("POST_ACT", spec.post_act.code() as f64),
    ];
    let mut inputs = vec![x];
    inputs.extend(ep.residual);
    rec.batched(&inputs, out, |rec, ins, out| {
        let params = params(ins[0].shape(), w.shape(), out.shape(), spec, ot)?;
        let grid = rec.grid(params[0] as u64)?;
        // Absent operands bind the (read-only) weights; the shader never reads them.
        let bias = ep.bias.unwrap_or(w);
        let (scale, shift) = ep.affine.unwrap_or((w, w));
        let residual = ins.get(1).copied().unwrap_or(w);
        let buffers = [ins[0], w, bias, scale, shift, residual, out];
        rec.dispatch(&CONV2D, &constants, &params, &buffers, grid)
    })
}

fn flag(on: bool) -> f64 {
    if on {
        1.0
    } else {
        0.0
    }
}

/// The shader's `Params`, in its field order.
fn params(
    input: &[usize],
    weight: &[usize],
    out: &[usize],
    spec: &Conv2d,
    ot: usize,
) -> Result<Vec<u32>> {
    let (n, cin, h, w) = (input[0], input[1], input[2], input[3]);
    let (cout, cin_g, kh, kw) = (weight[0], weight[1], weight[2], weight[3]);
    let (ho, wo) = (out[2], out[3]);
    let groups = spec.groups;
    let cout_g = cout / groups;
    let tiles = cout_g.div_ceil(ot);
    let total = n
        .checked_mul(groups * tiles)
        .and_then(|v| v.checked_mul(ho * wo))
        .unwrap_or(usize::MAX);
    [
        total,
        ho * wo,
        wo,
        tiles,
        groups,
        cin_g,
        cout_g,
        cout,
        cin,
        h,
        w,
        kh,
        kw,
        spec.stride.0,
        spec.stride.1,
        spec.padding.0,
        spec.padding.1,
        spec.dilation.0,
        spec.dilation.1,
        0,
    ]
    .into_iter()
    .map(|v| u32_param(OP, v))
    .collect()
}
