//! Launchers of the fully connected layer and softmax.

use super::{choose_layout, expect_shape, group_grid, u32_param, Layout};
use crate::error::Result;
use crate::gpu::{Binding, GpuTensor, Kernel, Recorder, WG};
use crate::graph::Op;
use crate::ops::linear::{linear_dims, softmax_view, Linear, Softmax};
use crate::{bindings, kernel, wgsl_struct};

wgsl_struct! {
    /// `y [rows, out_features] = act(x · wᵀ + b)`; `has_bias` 0: `b` is a placeholder binding.
    pub struct LinearParams { rows: u32, features: u32, out_features: u32, act: u32, has_bias: u32 }
}

wgsl_struct! {
    /// Softmax over `len` elements `inner` apart, for `lines` = outer * inner lines.
    pub struct SoftmaxParams { lines: u32, len: u32, inner: u32 }
}

/// The bindings of `linear_io.wgsl`, which both layouts' kernels share.
const LINEAR_BINDINGS: &[Binding] = bindings![read x, read w, read b, write y];
pub static LINEAR: Kernel = kernel!(
    "linear", "linear_io.wgsl", "linear.wgsl";
    LinearParams;
    LINEAR_BINDINGS
);
pub static LINEAR_ROWS: Kernel = kernel!(
    "linear_rows", "linear_io.wgsl", "lane_sum.wgsl", "linear_rows.wgsl";
    LinearParams;
    LINEAR_BINDINGS
);
pub static SOFTMAX: Kernel =
    kernel!("softmax", "softmax.wgsl"; SoftmaxParams; bindings![read x, write y]);
pub const KERNELS: &[&Kernel] = &[&LINEAR, &LINEAR_ROWS, &SOFTMAX];

/// Rows of x an invocation of `linear.wgsl` covers in a batch of at least as many (`ROWS`).
const BATCH_ROWS: usize = 4;

/// `out [N, O] = act(x · Wᵀ + b)`; `x` is `[N, F]` or `[N, F, 1, 1]`. On the layout the device
/// chooses.
pub fn linear(
    rec: &mut Recorder,
    x: &GpuTensor,
    w: &GpuTensor,
    b: Option<&GpuTensor>,
    out: &GpuTensor,
    spec: &Linear,
) -> Result<()> {
    let op = Op::Linear {
        spec: *spec,
        bias: b.is_some(),
    };
    let ins: Vec<&GpuTensor> = [x, w].into_iter().chain(b).collect();
    let layout = choose_layout(rec, op, &ins);
    linear_as(rec, x, w, b, out, spec, layout)
}

/// `linear` on `layout`: an invocation per 4 outputs of up to `BATCH_ROWS` rows, or a
/// workgroup per output.
pub fn linear_as(
    rec: &mut Recorder,
    x: &GpuTensor,
    w: &GpuTensor,
    b: Option<&GpuTensor>,
    out: &GpuTensor,
    spec: &Linear,
    layout: Layout,
) -> Result<()> {
    let op = "linear";
    let dims = linear_dims(x.shape(), w.shape(), b.map(|b| b.shape()))?;
    expect_shape(op, out, &dims.out_shape())?;
    rec.batched(&[x], out, |rec, ins, out| {
        let rows = out.shape()[0];
        let params = LinearParams {
            rows: u32_param(op, rows)?,
            features: u32_param(op, dims.f)?,
            out_features: u32_param(op, dims.o)?,
            act: spec.act.code(),
            has_bias: u32::from(b.is_some()),
        };
        let bias = b.unwrap_or(w);
        let bindings = [ins[0], w, bias, out];
        match layout {
            Layout::Tiled => {
                // One invocation per 4 outputs of `block` rows.
                let block = if rows >= BATCH_ROWS { BATCH_ROWS } else { 1 };
                let grid = group_grid(rec, rows.div_ceil(block) * dims.o.div_ceil(4))?;
                let constants = [("ROWS", block as f64)];
                rec.dispatch(&LINEAR, &constants, &params, &bindings, grid)
            }
            Layout::PerOutput => {
                // `Recorder::grid` counts WG-wide workgroups: one per output.
                let grid = rec.grid((rows * dims.o) as u64 * u64::from(WG))?;
                rec.dispatch(&LINEAR_ROWS, &[], &params, &bindings, grid)
            }
        }
    })
}

/// Softmax of `x` along `spec.axis` into `out` (same shape).
pub fn softmax(rec: &mut Recorder, x: &GpuTensor, out: &GpuTensor, spec: &Softmax) -> Result<()> {
    let op = "softmax";
    softmax_view(spec, x.shape())?;
    expect_shape(op, out, x.shape())?;
    rec.batched(&[x], out, |rec, ins, out| {
        let [outer, len, inner] = softmax_view(spec, out.shape())?;
        let lines = outer * inner;
        let params = SoftmaxParams {
            lines: u32_param(op, lines)?,
            len: u32_param(op, len)?,
            inner: u32_param(op, inner)?,
        };
        let grid = rec.grid(lines as u64)?;
        rec.dispatch(&SOFTMAX, &[], &params, &[ins[0], out], grid)
    })
}
