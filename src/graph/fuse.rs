//! Fusion passes over a compiled plan: for these shapes on this device, which ops run inside
//! the kernels of their neighbours instead of as passes of their own. Each pass can be turned
//! off (`GAZE_FUSION`), and the plan it changes is tested against the unfused one and the
//! CPU reference.

use super::{Graph, Op, ValueId};
use crate::error::{Error, Result};
use crate::gpu::{Gpu, GpuTensor};
use crate::kernels::conv::pools_in_epilogue;

/// Which fusion passes plans run: all (`on`, the default) or none (`off`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fusion {
    /// Coordinate Attention's means summed in the epilogue of the depthwise conv that produces
    /// their input (`coord_pools`).
    pub coord_pools: bool,
}

impl Fusion {
    pub const ALL: Self = Self { coord_pools: true };
    pub const NONE: Self = Self { coord_pools: false };

    /// `GAZE_FUSION`, or `on` where it is unset or empty; an error names a bad value.
    pub fn from_env() -> Result<Self> {
        match std::env::var("GAZE_FUSION") {
            Ok(v) if !v.is_empty() => v
                .parse()
                .map_err(|e: Error| Error::Invalid(format!("GAZE_FUSION: {e}"))),
            _ => Ok(Self::default()),
        }
    }

    pub fn name(&self) -> &'static str {
        if *self == Self::NONE {
            "off"
        } else {
            "on"
        }
    }
}

impl Default for Fusion {
    fn default() -> Self {
        Self::ALL
    }
}

impl std::str::FromStr for Fusion {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        match s {
            "on" => Ok(Self::ALL),
            "off" => Ok(Self::NONE),
            _ => Err(Error::Invalid(format!(
                "fusion must be on or off, not `{s}`"
            ))),
        }
    }
}

impl std::fmt::Display for Fusion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The depthwise convs whose output a Coordinate Attention pools, and that can sum the pool's
/// parts in their epilogue for these value `shapes`: the pool then reads those parts, not x.
pub fn coord_pools(graph: &Graph<GpuTensor>, shapes: &[Vec<usize>], gpu: &Gpu) -> Vec<ValueId> {
    let nodes = graph.nodes();
    let mut convs: Vec<ValueId> = nodes
        .iter()
        .filter(|n| matches!(n.op, Op::CoordPool(_)))
        .filter_map(|n| n.inputs.first().copied())
        .filter(|&x| match (nodes[x].op, nodes[x].inputs.as_slice()) {
            (Op::Conv { spec, .. }, [input, weight, ..]) => {
                pools_in_epilogue(gpu, &shapes[*input], &shapes[*weight], &shapes[x], &spec)
            }
            _ => false,
        })
        .collect();
    convs.sort_unstable();
    convs.dedup();
    convs
}
