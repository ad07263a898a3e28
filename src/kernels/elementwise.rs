use super::{expect_shape, u32_param, u32x4 as vec4};
use crate::error::Result;
use crate::gpu::{GpuTensor, Kernel, Recorder};
use crate::ops::elementwise::{
    broadcast_shape, broadcast_strides, channel_affine_channels, pad4, Binary, Blend,
    ChannelAffine, Unary,
};
use crate::{bindings, kernel, wgsl_struct};

wgsl_struct! {
    /// y = act(x * scale + shift)
    pub struct UnaryParams { total: u32, act: u32, scale: f32, shift: f32 }
}

wgsl_struct! {
    /// y = act(a op b), with broadcasting strides over 4-D `out_dims`.
    pub struct BinaryParams {
        total: u32,
        act: u32,
        op: u32,
        _pad: u32,
        out_dims: [u32; 4],
        a_strides: [u32; 4],
        b_strides: [u32; 4],
    }
}

wgsl_struct! {
    /// y = k * (x * w + r * (1 - w)), with w broadcast over 4-D `dims`.
    pub struct BlendParams {
        total: u32,
        k: f32,
        _pad0: u32,
        _pad1: u32,
        dims: [u32; 4],
        w_strides: [u32; 4],
    }
}

wgsl_struct! {
    /// y = act(x * scale[c] + shift[c]) over `inner` elements per channel plane.
    pub struct ChannelAffineParams { total: u32, inner: u32, channels: u32, act: u32 }
}

pub static UNARY: Kernel = kernel!("unary", "unary.wgsl"; UnaryParams; bindings![read x, write y]);
pub static BINARY: Kernel =
    kernel!("binary", "binary.wgsl"; BinaryParams; bindings![read a, read b, write y]);
pub static BLEND: Kernel =
    kernel!("blend", "blend.wgsl"; BlendParams; bindings![read x, read w, read r, write y]);
pub static CHANNEL_AFFINE: Kernel = kernel!(
    "channel_affine", "channel_affine.wgsl";
    ChannelAffineParams;
    bindings![read x, read scale, read shift, write y]
);
pub const KERNELS: &[&Kernel] = &[&UNARY, &BINARY, &BLEND, &CHANNEL_AFFINE];

pub fn unary(rec: &mut Recorder, x: &GpuTensor, out: &GpuTensor, spec: &Unary) -> Result<()> {
    expect_shape("unary", out, x.shape())?;
    rec.batched(&[x], out, |rec, ins, out| {
        let total = u32_param("unary", out.numel())?;
        let params = UnaryParams {
            total,
            act: spec.act.code(),
            scale: spec.scale,
            shift: spec.shift,
        };
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
        let params = BinaryParams {
            total: u32_param(op, out.numel())?,
            act: spec.act.code(),
            op: spec.op.code(),
            out_dims: vec4(op, dims)?,
            a_strides: vec4(op, broadcast_strides(ins[0].shape(), &dims))?,
            b_strides: vec4(op, broadcast_strides(ins[1].shape(), &dims))?,
            ..Default::default()
        };
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
    expect_shape(op, out, &spec.out_shape(x.shape(), w.shape(), r.shape())?)?;
    rec.batched(&[x, w, r], out, |rec, ins, out| {
        let dims = pad4(out.shape());
        let params = BlendParams {
            total: u32_param(op, out.numel())?,
            k: spec.k,
            dims: vec4(op, dims)?,
            w_strides: vec4(op, broadcast_strides(ins[1].shape(), &dims))?,
            ..Default::default()
        };
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
        let params = ChannelAffineParams {
            total: u32_param(op, out.numel())?,
            inner: u32_param(op, inner)?,
            channels: u32_param(op, c)?,
            act: spec.act.code(),
        };
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
