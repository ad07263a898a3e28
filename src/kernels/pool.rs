use super::{expect_shape, u32_param};
use crate::error::Result;
use crate::gpu::{GpuTensor, Kernel, Recorder, WG};
use crate::kernel;
use crate::ops::pool::{AvgPool2d, MaxPool2d, SpatialMean};

pub static MAX_POOL: Kernel = kernel!("pool_max", "pool_max.wgsl");
pub static AVG_POOL: Kernel = kernel!("pool_avg", "pool_avg.wgsl");
pub static SPATIAL_MEAN: Kernel = kernel!("pool_mean", "pool_mean.wgsl");
pub const KERNELS: &[&Kernel] = &[&MAX_POOL, &AVG_POOL, &SPATIAL_MEAN];

/// Invocations that share one reduction of `count` contiguous elements: a power of two (so a
/// tree halves cleanly) no larger than a workgroup, and no more than there are elements.
pub(crate) fn lanes_for(count: usize) -> u32 {
    count.next_power_of_two().min(WG as usize) as u32
}

/// Params shared by the window kernels: total, in_h, in_w, out_h, out_w, kernel, stride, padding.
fn window_params(
    op: &'static str,
    x: &[usize],
    out: &[usize],
    window: [usize; 3],
) -> Result<Vec<u32>> {
    [
        out.iter().product(),
        x[2],
        x[3],
        out[2],
        out[3],
        window[0],
        window[1],
        window[2],
    ]
    .into_iter()
    .map(|v| u32_param(op, v))
    .collect()
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
    rec.batched(&[x], out, |rec, ins, out| {
        let params = window_params(op, ins[0].shape(), out.shape(), window)?;
        let grid = rec.grid(out.numel() as u64)?;
        rec.dispatch(&MAX_POOL, &[], &params, &[ins[0], out], grid)
    })
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
    rec.batched(&[x], out, |rec, ins, out| {
        let mut params = window_params(op, ins[0].shape(), out.shape(), window)?;
        params.push(spec.count_include_pad as u32);
        let grid = rec.grid(out.numel() as u64)?;
        rec.dispatch(&AVG_POOL, &[], &params, &[ins[0], out], grid)
    })
}

pub fn spatial_mean(
    rec: &mut Recorder,
    x: &GpuTensor,
    out: &GpuTensor,
    spec: &SpatialMean,
) -> Result<()> {
    let op = "spatial_mean";
    expect_shape(op, out, &spec.out_shape(x.shape())?)?;
    let (h, w) = (x.shape()[2], x.shape()[3]);
    let rows = if spec.over.reduces_h() { h } else { 1 };
    let cols = if spec.over.reduces_w() { w } else { 1 };
    // Along H alone the reduced elements are a row apart while neighbouring outputs are
    // neighbours in memory, so one invocation per output reads coalesced.
    let lanes = if spec.over.reduces_w() {
        lanes_for(rows * cols)
    } else {
        1
    };
    rec.batched(&[x], out, |rec, ins, out| {
        let params = [
            out.numel(),
            h,
            w,
            out.shape()[2],
            out.shape()[3],
            rows,
            cols,
        ]
        .into_iter()
        .map(|v| u32_param(op, v))
        .collect::<Result<Vec<u32>>>()?;
        let grid = rec.grid(out.numel() as u64 * lanes as u64)?;
        rec.dispatch(
            &SPATIAL_MEAN,
            &[("LANES", lanes as f64)],
            &params,
            &[ins[0], out],
            grid,
        )
    })
}
