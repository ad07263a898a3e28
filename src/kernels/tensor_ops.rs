//! Launchers of concat and split: one copy dispatch per input (concat) or part (split).

use super::{expect_shape, u32_param};
use crate::error::{shape_err, Result};
use crate::gpu::{GpuTensor, Kernel, Recorder};
use crate::ops::tensor_ops::{axis_view, concat_shape, split_shapes, Concat, Split};
use crate::tensor::nchw;
use crate::{bindings, kernel, wgsl_struct};

wgsl_struct! {
    /// Copies one input (`len` of the axis, `inner` elements each) into the output at `offset`.
    pub struct ConcatParams { total: u32, src_numel: u32, inner: u32, len: u32, out_len: u32, offset: u32 }
}

wgsl_struct! {
    /// Copies `len` of the input's `in_len` along the axis, from `offset`.
    pub struct SplitParams { total: u32, inner: u32, len: u32, in_len: u32, offset: u32 }
}

pub static CONCAT: Kernel =
    kernel!("concat", "concat.wgsl"; ConcatParams; bindings![read x, write y]);
pub static SPLIT: Kernel = kernel!("split", "split.wgsl"; SplitParams; bindings![read x, write y]);
pub const KERNELS: &[&Kernel] = &[&CONCAT, &SPLIT];

/// Writes the concatenation of `inputs` along `spec.axis` into `out`.
pub fn concat(
    rec: &mut Recorder,
    inputs: &[&GpuTensor],
    out: &GpuTensor,
    spec: &Concat,
) -> Result<()> {
    concat_computing(rec, inputs, out, spec, None)
}

/// Where each image of a result goes in a larger output: from `offset` of each `image`
/// elements (a concatenation's slot), or the whole output.
#[derive(Clone, Copy, Debug)]
pub struct Slot {
    pub image: usize,
    pub offset: usize,
}

impl Slot {
    pub fn whole(out: &GpuTensor) -> Self {
        let images = out.shape().first().copied().unwrap_or(1).max(1);
        Self {
            image: out.numel() / images,
            offset: 0,
        }
    }
}

/// Records a kernel on a chunk of the batch: its operands' views, the output's, and the slot
/// each image's result takes in it.
pub type RecordInto<'a> = &'a dyn Fn(&mut Recorder, &[&GpuTensor], &GpuTensor, Slot) -> Result<()>;

/// An input of a concatenation that a kernel computes straight into its slot of the output,
/// from `operands`, instead of being written apart and copied (a fusion).
pub struct Computed<'a> {
    /// What computes it (for errors).
    pub op: &'static str,
    /// Which input of the concatenation (its tensor gives only the shape; it is never read).
    pub index: usize,
    /// The shape the kernel computes, which that input must have.
    pub shape: Vec<usize>,
    pub operands: &'a [&'a GpuTensor],
    pub record: RecordInto<'a>,
}

/// `concat`, with one input (`computed`, if any) computed into its slot: the others are
/// copied. A computed input needs the channel axis (1), where each image's slot is one run.
pub fn concat_computing(
    rec: &mut Recorder,
    inputs: &[&GpuTensor],
    out: &GpuTensor,
    spec: &Concat,
    computed: Option<Computed>,
) -> Result<()> {
    let op = "concat";
    let shapes: Vec<&[usize]> = inputs.iter().map(|t| t.shape()).collect();
    let shape = concat_shape(spec, &shapes)?;
    expect_shape(op, out, &shape)?;
    let skip = computed.as_ref().map(|c| c.index);
    if let Some(c) = &computed {
        check_computed(c, inputs, spec)?;
    }
    let views = (inputs.iter())
        .map(|x| Ok(axis_view(&nchw(op, x.shape())?, spec.axis)))
        .collect::<Result<Vec<_>>>()?;
    // The copied inputs, then the computed one's operands: each is split over the batch
    // where a binding cannot hold it.
    let mut bound: Vec<&GpuTensor> = (inputs.iter().enumerate())
        .filter(|&(i, _)| Some(i) != skip)
        .map(|(_, &x)| x)
        .collect();
    let copied = bound.len();
    if let Some(c) = &computed {
        bound.extend_from_slice(c.operands);
    }
    // All inputs go through one `batched` call: a chunk's scratch output is copied back whole,
    // so every input must have written its part of it first.
    rec.batched(&bound, out, |rec, ins, out| {
        let out_view = axis_view(&nchw(op, out.shape())?, spec.axis);
        let mut copies = ins[..copied].iter();
        let mut offset = 0;
        for (i, view) in views.iter().enumerate() {
            if let (Some(c), true) = (&computed, Some(i) == skip) {
                let slot = Slot {
                    image: out_view[2] * out_view[3],
                    offset: offset * view[3],
                };
                (c.record)(rec, &ins[copied..], out, slot)?;
            } else {
                let x = copies
                    .next()
                    .ok_or_else(|| shape_err(op, "an input is missing"))?;
                copy_input(rec, x, out, view, out_view, offset)?;
            }
            offset += view[2];
        }
        Ok(())
    })
}

/// That the concatenation is along the channels, where each image's slot is one run, and
/// that its input `c.index` has the shape `c.op` computes.
fn check_computed(c: &Computed, inputs: &[&GpuTensor], spec: &Concat) -> Result<()> {
    if spec.axis != 1 {
        return Err(shape_err(
            "concat",
            "only a channel concatenation computes an input in place",
        ));
    }
    let found = inputs.get(c.index).map(|t| t.shape());
    match found == Some(c.shape.as_slice()) {
        true => Ok(()),
        false => Err(shape_err(
            c.op,
            format!(
                "input {} of the concatenation is {found:?}, the {} {:?}",
                c.index, c.op, c.shape
            ),
        )),
    }
}

/// One copy dispatch: input `x`, viewed as `view` around the axis, into `out` at `offset`.
fn copy_input(
    rec: &mut Recorder,
    x: &GpuTensor,
    out: &GpuTensor,
    view: &[usize; 4],
    out_view: [usize; 4],
    offset: usize,
) -> Result<()> {
    let op = "concat";
    let total = out_view[0] * view[1] * view[2] * view[3];
    if total == 0 {
        return Ok(());
    }
    let params = ConcatParams {
        total: u32_param(op, total)?,
        src_numel: u32_param(op, x.numel())?,
        inner: u32_param(op, view[3])?,
        len: u32_param(op, view[2])?,
        out_len: u32_param(op, out_view[2])?,
        offset: u32_param(op, offset)?,
    };
    let grid = rec.grid(total as u64)?;
    rec.dispatch(&CONCAT, &[], &params, &[x, out], grid)
}

/// Writes the consecutive parts of `x` along `spec.axis` into the preallocated `outs`.
pub fn split(rec: &mut Recorder, x: &GpuTensor, outs: &[&GpuTensor], spec: &Split) -> Result<()> {
    let op = "split";
    let shapes = split_shapes(spec, x.shape())?;
    if outs.len() != shapes.len() {
        return Err(shape_err(
            op,
            format!(
                "{} sizes need {} outputs, got {}",
                spec.sizes.len(),
                shapes.len(),
                outs.len()
            ),
        ));
    }
    for (index, out) in outs.iter().enumerate() {
        split_part(rec, x, out, spec, index)?;
    }
    Ok(())
}

/// Writes only part `index` of the split of `x` into `out` (a graph may need one part alone).
pub fn split_part(
    rec: &mut Recorder,
    x: &GpuTensor,
    out: &GpuTensor,
    spec: &Split,
    index: usize,
) -> Result<()> {
    let op = "split";
    let shapes = split_shapes(spec, x.shape())?;
    let shape = shapes
        .get(index)
        .ok_or_else(|| shape_err(op, format!("no part {index} among {} parts", shapes.len())))?;
    expect_shape(op, out, shape)?;
    let offset: usize = shapes[..index].iter().map(|s| s[spec.axis]).sum();
    rec.batched(&[x], out, |rec, ins, out| {
        let in_view = axis_view(&nchw(op, ins[0].shape())?, spec.axis);
        let view = axis_view(&nchw(op, out.shape())?, spec.axis);
        if out.numel() == 0 {
            return Ok(());
        }
        let params = SplitParams {
            total: u32_param(op, out.numel())?,
            inner: u32_param(op, view[3])?,
            len: u32_param(op, view[2])?,
            in_len: u32_param(op, in_view[2])?,
            offset: u32_param(op, offset)?,
        };
        let grid = rec.grid(out.numel() as u64)?;
        rec.dispatch(&SPLIT, &[], &params, &[ins[0], out], grid)
    })
}
