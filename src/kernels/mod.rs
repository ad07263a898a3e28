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

use crate::error::{shape_err, Error, Result};
use crate::gpu::{Gpu, GpuTensor, Kernel, Recorder, WG};
use crate::graph::Op;
use crate::tune::OpCase;

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

/// How a small kernel (the attention gates and products, the classifier, the spatial means)
/// maps its outputs to invocations: one variant per kind of device, chosen on the device like the conv and pool
/// variants (`choose_layout`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layout {
    /// Register tiles in `GROUP`-wide workgroups: each load serves many outputs, and a few
    /// hundred invocations cover a tensor. Loads and invocations are what a CPU device pays for.
    Tiled,
    /// One output per invocation (per 64-lane workgroup for `linear` and `pool_mean`),
    /// neighbouring invocations on neighbouring elements: the thousands of invocations and
    /// coalesced loads a GPU needs.
    PerOutput,
}

impl Layout {
    pub const ALL: [Self; 2] = [Self::Tiled, Self::PerOutput];

    /// The layout `gpu` runs without measurements: tiles on a software device, an output per
    /// invocation on a GPU.
    pub fn heuristic(gpu: &Gpu) -> Self {
        if gpu.is_software() {
            Self::Tiled
        } else {
            Self::PerOutput
        }
    }
}

impl std::fmt::Display for Layout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Tiled => "tiled",
            Self::PerOutput => "per-output",
        })
    }
}

impl std::str::FromStr for Layout {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Self::ALL
            .into_iter()
            .find(|l| l.to_string() == s)
            .ok_or_else(|| Error::Invalid(format!("`{s}` names no kernel layout")))
    }
}

/// The layout `op` runs on with operands `ins`: the recorder's forced one (the tuner timing a
/// variant), else the device's cached choice, else the heuristic.
pub(crate) fn choose_layout(rec: &Recorder, op: Op, ins: &[&GpuTensor]) -> Layout {
    if let Some(layout) = rec.forced_layout() {
        return layout;
    }
    let gpu = rec.gpu();
    let case = OpCase::Layout {
        op,
        inputs: ins.iter().map(|t| t.shape().to_vec()).collect(),
    };
    gpu.tuning().choose(
        &case,
        gpu.precision(),
        |_: &Layout| true,
        || Layout::heuristic(gpu),
    )
}
