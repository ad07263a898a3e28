//! Launchers of the SAN primitives (MODULES.md §9.2, §9.3).

use super::tensor_ops::{concat_computing, Computed, Slot};
use super::{expect_shape, u32_param};
use crate::error::Result;
use crate::gpu::{GpuTensor, Kernel, Recorder};
use crate::ops::san::{
    aggregation_shape, check_epilogue, patch_gather_shape, reflect_pad_shape, subtraction_shape,
    unfold_shape, Aggregation, PatchGather, ReflectPad, Subtraction, Unfold, Window,
};
use crate::ops::tensor_ops::Concat;
use crate::{bindings, kernel, wgsl_struct};

wgsl_struct! {
    /// x1 at each position minus x2 over its `kernel`² window (`centre` = ((k-1)/2)·dilation);
    /// image n's `image` results written from n · `out_image` + `out_offset`.
    pub struct SubtractionParams {
        total: u32,
        height: u32,
        width: u32,
        out_width: u32,
        out_plane: u32,
        kernel: u32,
        stride: u32,
        dilation: u32,
        pad: u32,
        centre: u32,
        mode: u32,
        act: u32,
        image: u32,
        out_image: u32,
        out_offset: u32,
    }
}

wgsl_struct! {
    /// Window sums of x weighted by wt, `weight_groups` (Cw) channels of weights; `affine` 0:
    /// scale and shift are placeholder bindings.
    pub struct AggregationParams {
        total: u32,
        channels: u32,
        weight_groups: u32,
        height: u32,
        width: u32,
        out_width: u32,
        out_plane: u32,
        kernel: u32,
        stride: u32,
        dilation: u32,
        pad: u32,
        mode: u32,
        act: u32,
        affine: u32,
    }
}

wgsl_struct! {
    pub struct ReflectPadParams { total: u32, height: u32, width: u32, pad: u32 }
}

wgsl_struct! {
    /// `positions` = Lh · Lw windows, `out_width` = Lw.
    pub struct UnfoldParams { total: u32, height: u32, width: u32, kernel: u32, stride: u32, out_width: u32, positions: u32 }
}

wgsl_struct! {
    /// `out_channels` = C · k · k; `affine` 0: scale and shift are placeholder bindings;
    /// image n's `image` results written from n · `out_image` + `out_offset`.
    pub struct PatchGatherParams {
        total: u32,
        height: u32,
        width: u32,
        kernel: u32,
        out_channels: u32,
        act: u32,
        affine: u32,
        image: u32,
        out_image: u32,
        out_offset: u32,
    }
}

pub static SUBTRACTION: Kernel = kernel!(
    "san_subtraction", "san_subtraction.wgsl";
    SubtractionParams;
    bindings![read x1, read x2, write y]
);
pub static AGGREGATION: Kernel = kernel!(
    "san_aggregation", "san_aggregation.wgsl";
    AggregationParams;
    bindings![read x, read wt, read scale, read shift, write y]
);
pub static REFLECT_PAD: Kernel = kernel!(
    "san_reflect_pad", "san_reflect_pad.wgsl";
    ReflectPadParams;
    bindings![read x, write y]
);
pub static UNFOLD: Kernel =
    kernel!("san_unfold", "san_unfold.wgsl"; UnfoldParams; bindings![read x, write y]);
pub static PATCH_GATHER: Kernel = kernel!(
    "san_patch_gather", "san_patch_gather.wgsl";
    PatchGatherParams;
    bindings![read x, read scale, read shift, write y]
);
pub const KERNELS: &[&Kernel] = &[
    &SUBTRACTION,
    &AGGREGATION,
    &REFLECT_PAD,
    &UNFOLD,
    &PATCH_GATHER,
];

/// Scale/shift bindings of an epilogue; without them `placeholder` is bound (and not read),
/// since every binding a shader declares must be bound.
fn epilogue_bindings<'a>(
    scale_shift: Option<(&'a GpuTensor, &'a GpuTensor)>,
    placeholder: &'a GpuTensor,
) -> (&'a GpuTensor, &'a GpuTensor) {
    scale_shift.unwrap_or((placeholder, placeholder))
}

fn shapes<'a>(
    scale_shift: Option<(&'a GpuTensor, &'a GpuTensor)>,
) -> Option<(&'a [usize], &'a [usize])> {
    scale_shift.map(|(s, t)| (s.shape(), t.shape()))
}

/// `Subtraction2(x1, x2)` into `out [N, C, k², Ho·Wo]`.
pub fn subtraction2(
    rec: &mut Recorder,
    x1: &GpuTensor,
    x2: &GpuTensor,
    out: &GpuTensor,
    spec: &Subtraction,
) -> Result<()> {
    let shape = subtraction_shape(spec, x1.shape(), x2.shape())?;
    expect_shape("subtraction", out, &shape)?;
    rec.batched(&[x1, x2], out, |rec, ins, out| {
        let whole = Slot::whole(out);
        record_subtraction(rec, ins[0], ins[1], out, whole, spec)
    })
}

/// `Concat(inputs)` along `concat.axis` (the channels), whose input `index` is
/// `Subtraction2(x1, x2)`: the subtraction writes each image straight into its slot of
/// `out`, so the relation is never written apart and copied. The other inputs are copied.
#[allow(clippy::too_many_arguments)]
pub fn concat_with_subtraction(
    rec: &mut Recorder,
    x1: &GpuTensor,
    x2: &GpuTensor,
    spec: &Subtraction,
    inputs: &[&GpuTensor],
    index: usize,
    out: &GpuTensor,
    concat: &Concat,
) -> Result<()> {
    let record = |rec: &mut Recorder, ops: &[&GpuTensor], out: &GpuTensor, slot: Slot| {
        record_subtraction(rec, ops[0], ops[1], out, slot, spec)
    };
    let computed = Computed {
        op: "subtraction",
        index,
        shape: subtraction_shape(spec, x1.shape(), x2.shape())?.to_vec(),
        operands: &[x1, x2],
        record: &record,
    };
    concat_computing(rec, inputs, out, concat, Some(computed))
}

/// One dispatch of `Subtraction2(x1, x2)`, every image into its `slot` of `out` (shapes
/// checked by the caller).
pub fn record_subtraction(
    rec: &mut Recorder,
    x1: &GpuTensor,
    x2: &GpuTensor,
    out: &GpuTensor,
    slot: Slot,
    spec: &Subtraction,
) -> Result<()> {
    let op = "subtraction";
    let shape = subtraction_shape(spec, x1.shape(), x2.shape())?;
    let (h, w) = (x1.shape()[2], x1.shape()[3]);
    let win: Window = spec.window;
    let (_, wo) = win.output_size(op, h, w)?;
    let total = shape.iter().product::<usize>();
    let u = |v: usize| u32_param(op, v);
    let p = SubtractionParams {
        total: u(total)?,
        height: u(h)?,
        width: u(w)?,
        out_width: u(wo)?,
        out_plane: u(shape[3])?,
        kernel: u(win.kernel)?,
        stride: u(win.stride)?,
        dilation: u(win.dilation)?,
        pad: u(win.padding)?,
        centre: u(win.centre())?,
        mode: win.pad_mode.code(),
        act: spec.act.code(),
        image: u(total / shape[0].max(1))?,
        out_image: u(slot.image)?,
        out_offset: u(slot.offset)?,
    };
    let grid = rec.grid(total as u64)?;
    rec.dispatch(&SUBTRACTION, &[], &p, &[x1, x2, out], grid)
}

/// `Subtraction(x) = Subtraction2(x, x)`.
pub fn subtraction(
    rec: &mut Recorder,
    x: &GpuTensor,
    out: &GpuTensor,
    spec: &Subtraction,
) -> Result<()> {
    subtraction2(rec, x, x, out, spec)
}

/// `Aggregation(x, wt)` into `out [N, C, Ho, Wo]`, with the epilogue's `(scale, shift)` over
/// the C channels when `spec.epilogue.affine`.
pub fn aggregation(
    rec: &mut Recorder,
    x: &GpuTensor,
    wt: &GpuTensor,
    scale_shift: Option<(&GpuTensor, &GpuTensor)>,
    out: &GpuTensor,
    spec: &Aggregation,
) -> Result<()> {
    let op = "aggregation";
    let shape = aggregation_shape(spec, x.shape(), wt.shape())?;
    check_epilogue(op, &spec.epilogue, shape[1], shapes(scale_shift))?;
    expect_shape(op, out, &shape)?;
    let (c, h, w) = (x.shape()[1], x.shape()[2], x.shape()[3]);
    let (cw, win) = (wt.shape()[1], spec.window);
    rec.batched(&[x, wt], out, |rec, ins, out| {
        let u = |v: usize| u32_param(op, v);
        let p = AggregationParams {
            total: u(out.numel())?,
            channels: u(c)?,
            weight_groups: u(cw)?,
            height: u(h)?,
            width: u(w)?,
            out_width: u(shape[3])?,
            out_plane: u(shape[2] * shape[3])?,
            kernel: u(win.kernel)?,
            stride: u(win.stride)?,
            dilation: u(win.dilation)?,
            pad: u(win.padding)?,
            mode: win.pad_mode.code(),
            act: spec.epilogue.act.code(),
            affine: u32::from(spec.epilogue.affine),
        };
        let (scale, shift) = epilogue_bindings(scale_shift, ins[1]);
        let grid = rec.grid(out.numel() as u64)?;
        rec.dispatch(
            &AGGREGATION,
            &[],
            &p,
            &[ins[0], ins[1], scale, shift, out],
            grid,
        )
    })
}

/// `ReflectionPad2d(pad)` into `out [N, C, H+2p, W+2p]`.
pub fn reflection_pad(
    rec: &mut Recorder,
    x: &GpuTensor,
    out: &GpuTensor,
    spec: &ReflectPad,
) -> Result<()> {
    let op = "reflection_pad";
    let shape = reflect_pad_shape(spec, x.shape())?;
    expect_shape(op, out, &shape)?;
    let (h, w) = (x.shape()[2], x.shape()[3]);
    rec.batched(&[x], out, |rec, ins, out| {
        let u = |v: usize| u32_param(op, v);
        let p = ReflectPadParams {
            total: u(out.numel())?,
            height: u(h)?,
            width: u(w)?,
            pad: u(spec.pad)?,
        };
        let grid = rec.grid(out.numel() as u64)?;
        rec.dispatch(&REFLECT_PAD, &[], &p, &[ins[0], out], grid)
    })
}

/// `nn.Unfold(k, stride)` into `out [N, C·k², L]`.
pub fn unfold(rec: &mut Recorder, x: &GpuTensor, out: &GpuTensor, spec: &Unfold) -> Result<()> {
    let op = "unfold";
    let (shape, _, lw) = unfold_shape(spec, x.shape())?;
    expect_shape(op, out, &shape)?;
    let (h, w) = (x.shape()[2], x.shape()[3]);
    rec.batched(&[x], out, |rec, ins, out| {
        let u = |v: usize| u32_param(op, v);
        let p = UnfoldParams {
            total: u(out.numel())?,
            height: u(h)?,
            width: u(w)?,
            kernel: u(spec.kernel)?,
            stride: u(spec.stride)?,
            out_width: u(lw)?,
            positions: u(shape[2])?,
        };
        let grid = rec.grid(out.numel() as u64)?;
        rec.dispatch(&UNFOLD, &[], &p, &[ins[0], out], grid)
    })
}

/// The patchwise gather into `out [N, C·k², 1, H·W]`, with the epilogue's `(scale, shift)` over
/// the C·k² channels when `spec.epilogue.affine`.
pub fn patch_gather(
    rec: &mut Recorder,
    x: &GpuTensor,
    scale_shift: Option<(&GpuTensor, &GpuTensor)>,
    out: &GpuTensor,
    spec: &PatchGather,
) -> Result<()> {
    let shape = patch_gather_shape(spec, x.shape())?;
    expect_shape("patch_gather", out, &shape)?;
    rec.batched(&[x], out, |rec, ins, out| {
        record_patch_gather(rec, ins[0], scale_shift, out, Slot::whole(out), spec)
    })
}

/// `Concat(inputs)` along `concat.axis` (the channels), whose input `index` is
/// `patch_gather(x)`: each image's patches are written straight into their slot of `out`, not
/// apart and then copied. The other inputs are copied.
#[allow(clippy::too_many_arguments)]
pub fn concat_with_patch_gather(
    rec: &mut Recorder,
    x: &GpuTensor,
    scale_shift: Option<(&GpuTensor, &GpuTensor)>,
    spec: &PatchGather,
    inputs: &[&GpuTensor],
    index: usize,
    out: &GpuTensor,
    concat: &Concat,
) -> Result<()> {
    let record = |rec: &mut Recorder, ops: &[&GpuTensor], out: &GpuTensor, slot: Slot| {
        record_patch_gather(rec, ops[0], scale_shift, out, slot, spec)
    };
    let computed = Computed {
        op: "patch_gather",
        index,
        shape: patch_gather_shape(spec, x.shape())?.to_vec(),
        operands: &[x],
        record: &record,
    };
    concat_computing(rec, inputs, out, concat, Some(computed))
}

/// One dispatch of `patch_gather(x)`, every image into its `slot` of `out`.
fn record_patch_gather(
    rec: &mut Recorder,
    x: &GpuTensor,
    scale_shift: Option<(&GpuTensor, &GpuTensor)>,
    out: &GpuTensor,
    slot: Slot,
    spec: &PatchGather,
) -> Result<()> {
    let op = "patch_gather";
    let shape = patch_gather_shape(spec, x.shape())?;
    check_epilogue(op, &spec.epilogue, shape[1], shapes(scale_shift))?;
    let (h, w) = (x.shape()[2], x.shape()[3]);
    let total = shape.iter().product::<usize>();
    let u = |v: usize| u32_param(op, v);
    let p = PatchGatherParams {
        total: u(total)?,
        height: u(h)?,
        width: u(w)?,
        kernel: u(spec.kernel)?,
        out_channels: u(shape[1])?,
        act: spec.epilogue.act.code(),
        affine: u32::from(spec.epilogue.affine),
        image: u(total / shape[0].max(1))?,
        out_image: u(slot.image)?,
        out_offset: u(slot.offset)?,
    };
    let (scale, shift) = epilogue_bindings(scale_shift, x);
    let grid = rec.grid(total as u64)?;
    rec.dispatch(&PATCH_GATHER, &[], &p, &[x, scale, shift, out], grid)
}
