//! Fusion passes over a compiled plan: for these shapes on this device, which ops run inside
//! the kernels of their neighbours instead of as passes of their own. Each pass can be turned
//! off (`GAZE_FUSION`), and the plan it changes is tested against the unfused one and the
//! CPU reference.

use super::{Graph, Op, ValueId};
use crate::error::{Error, Result};
use crate::gpu::{Gpu, GpuTensor};
use crate::kernels::conv::{depthwise_rows, pools_in_epilogue};

/// Which fusion passes plans run: each where it pays (`on`, the default), none (`off`), or
/// each on every device (`everywhere`, to measure a pass where it was found not to pay).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fusion {
    /// Coordinate Attention's means summed in the epilogue of the depthwise conv that produces
    /// their input (`coord_pools`).
    pub coord_pools: bool,
    /// Coordinate Attention's multiply applied as the 1×1 conv after it loads its input
    /// (`coord_applies`). Where it pays, that is on GPUs the workgroup-memory kernel and on
    /// CPU devices the register tiles reading the gates through a uniform window
    /// (`conv::GatedKernel`).
    pub coord_apply: Where,
    /// Coordinate Attention's pool finish, conv1 and gates as one kernel from the pooled
    /// conv's partial sums (`coord_excites`; only where `coord_pools` runs).
    pub coord_excite: Where,
    /// SAN's relation (pairwise: the subtraction; patchwise: the gathered patches) computed
    /// into its slot of the concatenation that conv_w reads (`san_concats`).
    pub san_concat: bool,
}

/// Where a fusion pass runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Where {
    Nowhere,
    /// Where it pays: on GPUs, not on software adapters, where it was measured to cost more
    /// than it saves; except that `coord_apply` also runs on a CPU device whose gated kernel
    /// reads the gates through a uniform window (`conv::GatedKernel::pays_on`).
    OnGpus,
    /// Everywhere (tests run it on software adapters).
    Everywhere,
}

impl Where {
    fn on(self, gpu: &Gpu) -> bool {
        match self {
            Where::Nowhere => false,
            Where::OnGpus => !gpu.is_software(),
            Where::Everywhere => true,
        }
    }
}

impl Fusion {
    pub const ALL: Self = Self {
        coord_pools: true,
        coord_apply: Where::OnGpus,
        coord_excite: Where::OnGpus,
        san_concat: true,
    };
    pub const NONE: Self = Self {
        coord_pools: false,
        coord_apply: Where::Nowhere,
        coord_excite: Where::Nowhere,
        san_concat: false,
    };
    /// Every pass, also where it was measured not to pay (to measure it again).
    pub const EVERYWHERE: Self = Self {
        coord_pools: true,
        coord_apply: Where::Everywhere,
        coord_excite: Where::Everywhere,
        san_concat: true,
    };

    /// Whether `coord_excites` runs on `gpu`.
    pub fn excites_on(&self, gpu: &Gpu) -> bool {
        self.coord_pools && self.coord_excite.on(gpu)
    }

    pub fn name(&self) -> &'static str {
        match *self {
            Self::NONE => "off",
            Self::EVERYWHERE => "everywhere",
            _ => "on",
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
            "everywhere" => Ok(Self::EVERYWHERE),
            _ => Err(Error::Invalid(format!(
                "fusion must be on, off or everywhere, not `{s}`"
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
/// parts in their epilogue for these value `shapes`, each with the strip height it runs on
/// (which lays the parts out): the pool then reads those parts, not x.
pub fn coord_pools(
    graph: &Graph<GpuTensor>,
    shapes: &[Vec<usize>],
    gpu: &Gpu,
) -> Vec<(ValueId, usize)> {
    let nodes = graph.nodes();
    let mut convs: Vec<(ValueId, usize)> = nodes
        .iter()
        .filter(|n| matches!(n.op, Op::CoordPool(_)))
        .filter_map(|n| n.inputs.first().copied())
        .filter_map(|x| match (nodes[x].op, nodes[x].inputs.as_slice()) {
            (Op::Conv { spec, .. }, [input, weight, ..]) => {
                let (input, weight) = (&shapes[*input], &shapes[*weight]);
                let rows = depthwise_rows(gpu, input, weight, &spec)?;
                pools_in_epilogue(gpu, input, weight, &shapes[x], &spec, rows).then_some((x, rows))
            }
            _ => None,
        })
        .collect();
    convs.sort_unstable();
    convs.dedup();
    convs
}

/// The Coordinate Attention pools whose input one of `pooling_convs` produces, each with that
/// conv: they read the conv's partial sums, not x.
pub fn pools_reading_parts(
    graph: &Graph<GpuTensor>,
    pooling_convs: &[(ValueId, usize)],
) -> Vec<(ValueId, ValueId)> {
    (graph.nodes().iter().enumerate())
        .filter(|(_, n)| matches!(n.op, Op::CoordPool(_)))
        .filter_map(|(i, n)| {
            let x = *n.inputs.first()?;
            pooling_convs.iter().any(|&(c, _)| c == x).then_some((i, x))
        })
        .collect()
}

/// One Coordinate Attention whose multiply the 1×1 conv after it applies as it loads x.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GatedConv {
    /// The `CoordApply` node, which then records nothing.
    pub apply: ValueId,
    pub conv: ValueId,
    /// The apply's operands, which the conv reads instead.
    pub x: ValueId,
    pub gates: ValueId,
}

/// The Coordinate Attentions whose output only a 1×1 conv reads, and that conv can take x and
/// the gates instead (`conv::gated_kernel`) for these value `shapes`, on a kernel the pass runs
/// `place`: the attended tensor is then never written.
pub fn coord_applies(
    graph: &Graph<GpuTensor>,
    shapes: &[Vec<usize>],
    gpu: &Gpu,
    place: Where,
) -> Vec<GatedConv> {
    let nodes = graph.nodes();
    let tapped = graph.tap_values();
    let output = graph.output().ok();
    nodes
        .iter()
        .enumerate()
        .filter_map(|(apply, node)| {
            let (Op::CoordApply(_), [x, gates]) = (node.op, node.inputs.as_slice()) else {
                return None;
            };
            let mut readers = nodes
                .iter()
                .enumerate()
                .filter(|(_, n)| n.inputs.contains(&apply));
            let (conv, reader) = readers.next()?;
            let only = readers.next().is_none()
                && reader.inputs.iter().filter(|&&v| v == apply).count() == 1;
            let Op::Conv { spec, .. } = reader.op else {
                return None;
            };
            let weight = *reader.inputs.get(1)?;
            let reads_x = reader.inputs.first() == Some(&apply);
            let hidden = !tapped.contains(&apply) && output != Some(apply);
            let kernel = crate::kernels::conv::gated_kernel(
                gpu,
                &shapes[apply],
                &shapes[weight],
                &shapes[conv],
                &spec,
            );
            let runs = kernel.is_some_and(|k| match place {
                Where::Nowhere => false,
                Where::OnGpus => k.pays_on(gpu),
                Where::Everywhere => true,
            });
            (only && reads_x && hidden && runs).then_some(GatedConv {
                apply,
                conv,
                x: *x,
                gates: *gates,
            })
        })
        .collect()
}

/// One Coordinate Attention whose pool finish, conv1 and gates run as one kernel
/// (`kernels::coord::coord_excite`) from the partial sums of the conv that computed x.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Excite {
    /// The `CoordPool` and conv1 nodes, which then record nothing.
    pub pool: ValueId,
    pub conv: ValueId,
    /// The `CoordGates` node, which runs the kernel.
    pub gates: ValueId,
}

/// The Coordinate Attentions whose pool reads a conv's partial sums (`pooled`: the pools of
/// `coord_pools`' convs) and whose pooled means and conv1 output only the next op reads (none
/// of them `kept`), with a conv1 `coord_excite` can run: their three ops then run as one.
pub fn coord_excites(
    graph: &Graph<GpuTensor>,
    shapes: &[Vec<usize>],
    pooled: &[ValueId],
    kept: &[ValueId],
) -> Vec<Excite> {
    let nodes = graph.nodes();
    let only_reader = |v: ValueId| only_reader(graph, v, kept);
    pooled
        .iter()
        .filter_map(|&pool| {
            let conv = only_reader(pool)?;
            let gates = only_reader(conv)?;
            let (
                Op::Conv {
                    spec,
                    bias: true,
                    residual: false,
                },
                [x, weight, _],
            ) = (nodes[conv].op, nodes[conv].inputs.as_slice())
            else {
                return None;
            };
            let (Op::CoordGates(_), Some(&f)) = (nodes[gates].op, nodes[gates].inputs.first())
            else {
                return None;
            };
            let channels = *shapes[pool].get(1)?;
            let fits = crate::kernels::coord::excite_fits(&spec, &shapes[*weight], channels);
            (*x == pool && f == conv && fits).then_some(Excite { pool, conv, gates })
        })
        .collect()
}

/// The one node reading `v`, once, if `v` is neither `kept` nor the graph's output: a fused
/// kernel may then compute `v` where that node needs it, and `v` is never written.
fn only_reader<T>(graph: &Graph<T>, v: ValueId, kept: &[ValueId]) -> Option<ValueId> {
    if kept.contains(&v) || graph.output().ok() == Some(v) {
        return None;
    }
    let mut readers = (graph.nodes().iter().enumerate()).filter(|(_, n)| n.inputs.contains(&v));
    let (i, reader) = readers.next()?;
    let once = reader.inputs.iter().filter(|&&u| u == v).count() == 1;
    (readers.next().is_none() && once).then_some(i)
}

/// One SAN relation computed into its slot of the concatenation that reads it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InConcat {
    /// The `Subtraction` or `PatchGather` node, which then records nothing: the
    /// concatenation runs its kernel, on its inputs.
    pub producer: ValueId,
    pub concat: ValueId,
    /// Which input of the concatenation the producer's output is.
    pub index: usize,
}

/// SAN's relations that only a channel concatenation reads, none of them `kept`: pairwise
/// attention's subtraction and patchwise attention's gathered patches. Each then writes its
/// images straight into their slots of the concatenation's output, and the relation is never
/// written apart and copied.
pub fn san_concats(graph: &Graph<GpuTensor>, kept: &[ValueId]) -> Vec<InConcat> {
    let nodes = graph.nodes();
    (nodes.iter().enumerate())
        .filter(|(_, node)| matches!(node.op, Op::Subtraction(_) | Op::PatchGather(_)))
        .filter_map(|(producer, _)| {
            let concat = only_reader(graph, producer, kept)?;
            let Op::Concat(spec) = nodes[concat].op else {
                return None;
            };
            let index = nodes[concat].inputs.iter().position(|&v| v == producer)?;
            (spec.axis == 1).then_some(InConcat {
                producer,
                concat,
                index,
            })
        })
        .collect()
}
