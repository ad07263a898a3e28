use super::{choose_layout, expect_shape, u32_param, Layout};
use crate::error::Result;
use crate::gpu::{Binding, GpuTensor, Kernel, Recorder, WG};
use crate::graph::Op;
use crate::ops::pool::{AvgPool2d, MaxPool2d, SpatialMean};
use crate::{bindings, kernel, wgsl_struct};

wgsl_struct! {
    /// Max or average over `kernel`-square windows (the `AVERAGE` constant picks).
    pub struct WindowPoolParams {
        total: u32,
        in_h: u32,
        in_w: u32,
        out_h: u32,
        out_w: u32,
        kernel: u32,
        stride: u32,
        padding: u32,
        count_include_pad: u32,
    }
}

wgsl_struct! {
    /// Means over `rows` x `cols` (1 where that axis is kept).
    pub struct SpatialMeanParams {
        total: u32,
        in_h: u32,
        in_w: u32,
        out_h: u32,
        out_w: u32,
        rows: u32,
        cols: u32,
    }
}

pub static WINDOW_POOL: Kernel =
    kernel!("pool_window", "pool_window.wgsl"; WindowPoolParams; bindings![read x, write y]);
/// The bindings of `pool_mean_io.wgsl`, which both layouts' kernels share.
const SPATIAL_MEAN_BINDINGS: &[Binding] = bindings![read x, write y];
pub static SPATIAL_MEAN: Kernel = kernel!(
    "pool_mean", "pool_mean_io.wgsl", "pool_mean.wgsl";
    SpatialMeanParams;
    SPATIAL_MEAN_BINDINGS
);
pub static SPATIAL_MEAN_ROWS: Kernel = kernel!(
    "pool_mean_rows", "pool_mean_io.wgsl", "lane_sum.wgsl", "pool_mean_rows.wgsl";
    SpatialMeanParams;
    SPATIAL_MEAN_BINDINGS
);
pub const KERNELS: &[&Kernel] = &[&WINDOW_POOL, &SPATIAL_MEAN, &SPATIAL_MEAN_ROWS];

/// How `pool_window.wgsl` reduces a window.
enum Reduce {
    Max,
    Average { count_include_pad: bool },
}

/// One dispatch of `pool_window.wgsl` per batch chunk; `window` is kernel, stride, padding.
fn window_pool(
    rec: &mut Recorder,
    op: &'static str,
    x: &GpuTensor,
    out: &GpuTensor,
    window: [usize; 3],
    reduce: Reduce,
) -> Result<()> {
    let (average, count_include_pad) = match reduce {
        Reduce::Max => (false, false),
        Reduce::Average { count_include_pad } => (true, count_include_pad),
    };
    let constants = [("AVERAGE", if average { 1.0 } else { 0.0 })];
    rec.batched(&[x], out, |rec, ins, out| {
        let (x, o) = (ins[0].shape(), out.shape());
        let [kernel, stride, padding] = window;
        let u = |v: usize| u32_param(op, v);
        let params = WindowPoolParams {
            total: u(o.iter().product())?,
            in_h: u(x[2])?,
            in_w: u(x[3])?,
            out_h: u(o[2])?,
            out_w: u(o[3])?,
            kernel: u(kernel)?,
            stride: u(stride)?,
            padding: u(padding)?,
            count_include_pad: count_include_pad as u32,
        };
        let grid = rec.grid(out.numel() as u64)?;
        rec.dispatch(&WINDOW_POOL, &constants, &params, &[ins[0], out], grid)
    })
}

pub fn max_pool(
    rec: &mut Recorder,
    x: &GpuTensor,
    out: &GpuTensor,
    spec: &MaxPool2d,
) -> Result<()> {
    let op = "max_pool";
    expect_shape(op, out, &spec.out_shape(x.shape())?)?;
    let window = [spec.kernel, spec.stride, spec.padding];
    window_pool(rec, op, x, out, window, Reduce::Max)
}

pub fn avg_pool(
    rec: &mut Recorder,
    x: &GpuTensor,
    out: &GpuTensor,
    spec: &AvgPool2d,
) -> Result<()> {
    let op = "avg_pool";
    expect_shape(op, out, &spec.out_shape(x.shape())?)?;
    let window = [spec.kernel, spec.stride, spec.padding];
    let reduce = Reduce::Average {
        count_include_pad: spec.count_include_pad,
    };
    window_pool(rec, op, x, out, window, reduce)
}

/// The mean over H, W or both of x `[N, C, H, W]`, on the layout the device chooses.
pub fn spatial_mean(
    rec: &mut Recorder,
    x: &GpuTensor,
    out: &GpuTensor,
    spec: &SpatialMean,
) -> Result<()> {
    let layout = choose_layout(rec, Op::Mean(*spec), &[x]);
    spatial_mean_as(rec, x, out, spec, layout)
}

/// `spatial_mean` on `layout`: an invocation per output, or a 64-lane workgroup per output.
pub fn spatial_mean_as(
    rec: &mut Recorder,
    x: &GpuTensor,
    out: &GpuTensor,
    spec: &SpatialMean,
    layout: Layout,
) -> Result<()> {
    let op = "spatial_mean";
    expect_shape(op, out, &spec.out_shape(x.shape())?)?;
    let (h, w) = (x.shape()[2], x.shape()[3]);
    let rows = if spec.over.reduces_h() { h } else { 1 };
    let cols = if spec.over.reduces_w() { w } else { 1 };
    rec.batched(&[x], out, |rec, ins, out| {
        let o = out.shape();
        let u = |v: usize| u32_param(op, v);
        let params = SpatialMeanParams {
            total: u(out.numel())?,
            in_h: u(h)?,
            in_w: u(w)?,
            out_h: u(o[2])?,
            out_w: u(o[3])?,
            rows: u(rows)?,
            cols: u(cols)?,
        };
        let (kernel, lanes) = match layout {
            Layout::Tiled => (&SPATIAL_MEAN, 1),
            // `Recorder::grid` counts WG-wide workgroups: one per output.
            Layout::PerOutput => (&SPATIAL_MEAN_ROWS, u64::from(WG)),
        };
        let grid = rec.grid(out.numel() as u64 * lanes)?;
        rec.dispatch(kernel, &[], &params, &[ins[0], out], grid)
    })
}
