use super::{expect_shape, u32_param};
use crate::error::{shape_err, Result};
use crate::gpu::{GpuTensor, Kernel, Recorder};
use crate::kernel;
use crate::ops::elementwise::{
    broadcast_shape, broadcast_strides, channel_affine_channels, pad4, Binary, Blend,
    ChannelAffine, Unary,
};

pub static UNARY: Kernel = kernel!("unary", "unary.wgsl");
pub static BINARY: Kernel = kernel!("binary", "binary.wgsl");
pub static BLEND: Kernel = kernel!("blend", "blend.wgsl");
pub static CHANNEL_AFFINE: Kernel = kernel!("channel_affine", "channel_affine.wgsl");
pub const KERNELS: &[&Kernel] = &[&UNARY, &BINARY, &BLEND, &CHANNEL_AFFINE];

fn vec4(op: &'static str, v: [usize; 4]) -> Result<[u32; 4]> {
    Ok([
        u32_param(op, v[0])?,
        u32_param(op, v[1])?,
        u32_param(op, v[2])?,
        u32_param(op, v[3])?,
    ])
}

pub fn unary(rec: &mut Recorder, x: &GpuTensor, out: &GpuTensor, spec: &Unary) -> Result<()> {
    expect_shape("unary", out, x.shape())?;
    rec.batched(&[x], out, |rec, ins, out| {
        let total = u32_param("unary", out.numel())?;
        let params = [
            total,
            spec.act.code(),
            spec.scale.to_bits(),
            spec.shift.to_bits(),
        ];
        let grid = rec.grid(total as u64)?;
        rec.dispatch(&UNARY, &[], &params, &[ins[0], out], grid)
    })
}

pub fn binary(
    rec: &mut Recorder,
    a: &GpuTensor,
    b: &GpuTensor,
    out: &GpuTensor,
    spec: &Binary,
) -> Result<()> {
    let shape = broadcast_shape("binary", a.shape(), b.shape())?;
    expect_shape("binary", out, &shape)?;
    rec.batched(&[a, b], out, |rec, ins, out| {
        let op = "binary";
        let dims = pad4(out.shape());
        let mut params = vec![
            u32_param(op, out.numel())?,
            spec.act.code(),
            spec.op.code(),
            0,
        ];
        params.extend(vec4(op, dims)?);
        params.extend(vec4(op, broadcast_strides(ins[0].shape(), &dims))?);
        params.extend(vec4(op, broadcast_strides(ins[1].shape(), &dims))?);
        let grid = rec.grid(out.numel() as u64)?;
        rec.dispatch(&BINARY, &[], &params, &[ins[0], ins[1], out], grid)
    })
}

pub fn blend(
    rec: &mut Recorder,
    x: &GpuTensor,
    w: &GpuTensor,
    r: &GpuTensor,
    out: &GpuTensor,
    spec: &Blend,
) -> Result<()> {
    let op = "blend";
    if x.shape() != r.shape() || broadcast_shape(op, x.shape(), w.shape())? != x.shape() {
        return Err(shape_err(
            op,
            format!(
                "needs x and residual of one shape and w broadcastable to it, got {:?}, {:?}, {:?}",
                x.shape(),
                r.shape(),
                w.shape()
            ),
        ));
    }
    expect_shape(op, out, x.shape())?;
    rec.batched(&[x, w, r], out, |rec, ins, out| {
        let dims = pad4(out.shape());
        let mut params = vec![u32_param(op, out.numel())?, spec.k.to_bits(), 0, 0];
        params.extend(vec4(op, dims)?);
        params.extend(vec4(op, broadcast_strides(ins[1].shape(), &dims))?);
        let grid = rec.grid(out.numel() as u64)?;
        rec.dispatch(&BLEND, &[], &params, &[ins[0], ins[1], ins[2], out], grid)
    })
}

pub fn channel_affine(
    rec: &mut Recorder,
    x: &GpuTensor,
    scale: &GpuTensor,
    shift: &GpuTensor,
    out: &GpuTensor,
    spec: &ChannelAffine,
) -> Result<()> {
    let op = "channel_affine";
    let c = channel_affine_channels(x.shape(), scale.shape(), shift.shape())?;
    expect_shape(op, out, x.shape())?;
    let inner: usize = x.shape()[2..].iter().product();
    rec.batched(&[x], out, |rec, ins, out| {
        let params = [
            u32_param(op, out.numel())?,
            u32_param(op, inner)?,
            u32_param(op, c)?,
            spec.act.code(),
        ];
        let grid = rec.grid(out.numel() as u64)?;
        rec.dispatch(
            &CHANNEL_AFFINE,
            &[],
            &params,
            &[ins[0], scale, shift, out],
            grid,
        )
    })
}
