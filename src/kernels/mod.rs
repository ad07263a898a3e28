//! GPU launchers, one file per WGSL family. Each checks shapes with the rule in `crate::ops`,
//! then records its dispatches on a `Recorder`.

pub mod conv;
pub mod coord;
pub mod elementwise;
pub mod linear;
pub mod peak;
pub mod pool;
pub mod san;
pub mod tensor_ops;
pub mod triplet;

use crate::error::{shape_err, Result};
use crate::gpu::{GpuTensor, Kernel};

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

/// `u32_param` of each value: a kernel's parameter words.
pub(crate) fn u32_params(op: &'static str, values: &[usize]) -> Result<Vec<u32>> {
    values.iter().map(|&v| u32_param(op, v)).collect()
}
