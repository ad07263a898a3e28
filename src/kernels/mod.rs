//! GPU launchers, one file per WGSL family. Each checks shapes with the rule in `crate::ops`,
//! then records its dispatches on a `Recorder`.

pub mod conv;
mod conv_tile;
pub mod coord;
pub mod elementwise;
pub mod linear;
pub mod peak;
pub mod pool;
pub mod san;
pub mod tensor_ops;
pub mod triplet;

use crate::error::{shape_err, Result};
use crate::gpu::{GpuTensor, Kernel, Recorder, WG};

/// Every kernel of the crate, for validation and pipeline warm-up.
pub fn all() -> Vec<&'static Kernel> {
    [
        elementwise::KERNELS,
        conv::KERNELS,
        pool::KERNELS,
        triplet::KERNELS,
        coord::KERNELS,
        tensor_ops::KERNELS,
        linear::KERNELS,
        san::KERNELS,
        peak::KERNELS,
    ]
    .concat()
}

/// An error unless `out` has the shape the op's rule gives.
pub(crate) fn expect_shape(op: &'static str, out: &GpuTensor, shape: &[usize]) -> Result<()> {
    if out.shape() != shape {
        return Err(shape_err(
            op,
            format!("output must have shape {shape:?}, got {:?}", out.shape()),
        ));
    }
    Ok(())
}

/// A count or size as the u32 a kernel parameter holds. Tensors that fit a storage binding
/// always fit, so failing here means a caller skipped the binding checks.
pub(crate) fn u32_param(op: &'static str, v: usize) -> Result<u32> {
    u32::try_from(v).map_err(|_| shape_err(op, format!("size {v} exceeds a 32-bit index")))
}

/// `u32_param` of four values: a `vec4<u32>` parameter.
pub(crate) fn u32x4(op: &'static str, v: [usize; 4]) -> Result<[u32; 4]> {
    Ok([
        u32_param(op, v[0])?,
        u32_param(op, v[1])?,
        u32_param(op, v[2])?,
        u32_param(op, v[3])?,
    ])
}

/// Invocations per workgroup of the small-workgroup kernels (attention, linear; `GROUP` in
/// common.wgsl): small, so that a dispatch of a few hundred invocations still spreads over every
/// thread of a CPU device.
pub(crate) const GROUP: usize = 8;

/// The grid of `invocations` in whole `GROUP`-wide workgroups, spilling into y like
/// `Recorder::grid` (shaders index them by `group_flat_id`).
pub(crate) fn group_grid(rec: &Recorder, invocations: usize) -> Result<[u32; 3]> {
    // `Recorder::grid` counts WG-wide workgroups.
    rec.grid((invocations.div_ceil(GROUP) * WG as usize) as u64)
}

/// The first invocation at or after `end` that starts a workgroup, so no workgroup mixes roles.
pub(crate) fn next_start(end: usize) -> usize {
    end.div_ceil(GROUP) * GROUP
}
