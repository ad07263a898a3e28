//! Triplet Attention as three dispatches (`crate::ops::triplet`), and the axis pooling that
//! Coordinate Attention shares.

use super::{choose_layout, expect_shape, group_grid, next_start, u32_param, u32x4, Layout, GROUP};
use crate::error::{shape_err, Error, Result};
use crate::gpu::{Binding, Gpu, GpuTensor, Kernel, Recorder};
use crate::graph::Op;
use crate::ops::triplet::{
    branch_scale, Plane, TripletCombine, TripletDims, TripletGateSpec, TripletPool, ZPool,
    ZPoolLayout, HW_GROUP,
};
use crate::tensor::nchw;
use crate::tune::OpCase;
use crate::{bindings, kernel, wgsl_struct};

wgsl_struct! {
    /// One reduction job of `triplet_pool.wgsl`; what `u`, `v`, `w` hold depends on `kind`
    /// (`PoolRole::role`).
    pub struct PoolRoleParams { u: [u32; 4], v: [u32; 4], w: [u32; 4] }
}

wgsl_struct! {
    /// `outputs` invocations of one `PoolRole` (`kind` 0 line, 1 plane).
    pub struct TripletPoolParams { x_image: u32, out_image: u32, outputs: u32, kind: u32, role: PoolRoleParams }
}

wgsl_struct! {
    /// The plane pass of `triplet_pool_sg.wgsl`: hc into `rows`, cw into `cols` (each: max at,
    /// mean at, two strides), channel-group partials of hw at `scratch_at`.
    pub struct TripletPoolSgParams {
        n: u32,
        c: u32,
        groups: u32,
        h: u32,
        w: u32,
        out_image: u32,
        scratch_at: u32,
        _pad: u32,
        rows: [u32; 4],
        cols: [u32; 4],
    }
}

wgsl_struct! {
    /// The hw pool from the channel-group partials at `scratch_at`, per position of `plane`.
    pub struct TripletPoolFinishParams {
        outputs: u32,
        plane: u32,
        groups: u32,
        c: u32,
        out_image: u32,
        scratch_at: u32,
        max_at: u32,
        mean_at: u32,
    }
}

wgsl_struct! {
    /// One branch's gate tiles in `triplet_gates.wgsl`.
    pub struct GateRoleParams {
        /// start, tiles per image, tiles along the slide axis, bias index
        head: [u32; 4],
        /// rows, slide length, p_row, p_slide
        ext: [u32; 4],
        /// offset of the max map in the pools, offset in the gates, w_off, 0
        offs: [u32; 4],
        /// w_row, w_slide, 0, 0
        wstr: [u32; 4],
    }
}

wgsl_struct! {
    /// Every branch's gate in one dispatch; `roles` of `role` are used.
    pub struct TripletGatesParams { n: u32, pooled_image: u32, gates_image: u32, roles: u32, role: [GateRoleParams; 3] }
}

wgsl_struct! {
    /// `x · (sum of gates) · scale`, the gates of an image `gates_image` long.
    pub struct TripletCombineParams {
        n: u32,
        c: u32,
        h: u32,
        w: u32,
        gates_image: u32,
        off_cw: u32,
        off_hc: u32,
        scale: f32,
    }
}

pub static POOL: Kernel = kernel!("triplet_pool", "axis_pool_io.wgsl", "triplet_pool.wgsl"; TripletPoolParams; bindings![read x, write y]);
pub static POOL_WG: Kernel = kernel!(
    "triplet_pool_wg", "axis_pool_io.wgsl", "triplet_pool_wg.wgsl"; TripletPoolParams; bindings![read x, write y]
);
pub static POOL_SG: Kernel = kernel!(
    features wgpu::Features::SUBGROUP;
    "triplet_pool_sg",
    "triplet_pool_sg.wgsl";
    TripletPoolSgParams;
    bindings![read x, write y]
);
pub static POOL_FINISH: Kernel = kernel!(
    "triplet_pool_finish", "triplet_pool_finish.wgsl"; TripletPoolFinishParams; bindings![write y]
);
/// The bindings of `triplet_gates_io.wgsl`, which both layouts' kernels share.
const GATES_BINDINGS: &[Binding] = bindings![read pooled, read weight, read bias, write y];
pub static GATES: Kernel = kernel!(
    "triplet_gates", "triplet_gates_io.wgsl", "triplet_gates.wgsl";
    TripletGatesParams;
    GATES_BINDINGS
);
pub static GATES_FLAT: Kernel = kernel!(
    "triplet_gates_flat", "triplet_gates_io.wgsl", "triplet_gates_flat.wgsl";
    TripletGatesParams;
    GATES_BINDINGS
);
/// The bindings of `triplet_combine_io.wgsl`, which both layouts' kernels share.
const COMBINE_BINDINGS: &[Binding] = bindings![read x, read gates, read residual, write y];
pub static COMBINE: Kernel = kernel!(
    "triplet_combine", "triplet_combine_io.wgsl", "triplet_combine.wgsl";
    TripletCombineParams;
    COMBINE_BINDINGS
);
pub static COMBINE_FLAT: Kernel = kernel!(
    "triplet_combine_flat", "triplet_combine_io.wgsl", "triplet_combine_flat.wgsl";
    TripletCombineParams;
    COMBINE_BINDINGS
);
pub const KERNELS: &[&Kernel] = &[
    &POOL,
    &POOL_WG,
    &POOL_SG,
    &POOL_FINISH,
    &GATES,
    &GATES_FLAT,
    &COMBINE,
    &COMBINE_FLAT,
];

/// Lanes of a `triplet_pool_wg` workgroup (`LANES` in its shader): lines at least this long
/// are reduced by a workgroup in `PoolKernel::Reduce`.
const REDUCE_LANES: usize = 64;
// `Recorder::grid` counts WG-wide workgroups, one per reduced line.
const _: () = assert!(REDUCE_LANES == crate::gpu::WG as usize);

// triplet_pool_sg.wgsl gives each of a workgroup's GROUP lanes 4 channels of the group.
const _: () = assert!(HW_GROUP == 4 * GROUP);

/// The widest plane the pool streams in one pass (`MAXW` in `triplet_pool.wgsl`).
const POOL_MAX_WIDTH: usize = 128;

/// Rows of one combine invocation (`ROWS` in `triplet_combine.wgsl`).
const COMBINE_ROWS: usize = 8;

/// Outputs along the slide axis and rows of one gate tile (`triplet_gates.wgsl`).
const GATE_TILE: (usize, usize) = (16, 4);

/// Where a pool role writes: value `(i, j)` of an image's result goes to `mean_at + i·strides[0]
/// + j·strides[1]` of that image's output (its max to `max_at + …`, when maxima are kept).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Target {
    pub max_at: usize,
    pub mean_at: usize,
    pub strides: [usize; 2],
}

impl Target {
    /// `max_at, mean_at, strides` as shader words.
    fn words(&self) -> [usize; 4] {
        [self.max_at, self.mean_at, self.strides[0], self.strides[1]]
    }

    fn vec4(&self, op: &'static str) -> Result<[u32; 4]> {
        u32x4(op, self.words())
    }
}

/// One reduction job of the axis pool.
#[derive(Clone, Copy, Debug)]
pub(crate) enum PoolRole {
    /// An invocation per output `(a, b)` of `walk`, written at `to` with `(i, j) = (a, b)`.
    Line { walk: ZPoolLayout, to: Target },
    /// An invocation per `(image, channel)` plane, read once for two results: over W, row h
    /// written at `rows` with `(i, j) = (h, c)`; over H, column w at `cols` with `(c, w)`.
    Plane { rows: Target, cols: Target },
}

impl PoolRole {
    /// The role's `kind` and `u, v, w` words for a batch of `n` images of `x [N,C,H,W]`
    /// (`TripletPoolParams`), and its invocation count.
    fn role(&self, n: usize, [c, h, w]: [usize; 3]) -> (u32, [[usize; 4]; 3], usize) {
        match *self {
            PoolRole::Line { walk: l, to } => {
                let [max_at, mean_at, out_a, out_b] = to.words();
                let u = [l.b, l.a * l.b, l.count, l.stride_a];
                let v = [l.stride_b, l.stride_r, max_at, mean_at];
                (0, [u, v, [out_a, out_b, 0, 0]], n * l.a * l.b)
            }
            PoolRole::Plane { rows, cols } => {
                (1, [[h, w, c, 0], rows.words(), cols.words()], n * c)
            }
        }
    }

    /// Records this role on one batch chunk (`x` and `out` as `Recorder::batched` hands them).
    fn dispatch(
        &self,
        rec: &mut Recorder,
        x: &GpuTensor,
        out: &GpuTensor,
        with_max: bool,
        variant: &str,
        wide: bool,
    ) -> Result<()> {
        let op = "axis_pool";
        let [n, c, h, w] = nchw(op, x.shape())?;
        let (kind, [u, v, w_], count) = self.role(n, [c, h, w]);
        let params = TripletPoolParams {
            x_image: u32_param(op, c * h * w)?,
            out_image: u32_param(op, out.numel() / n.max(1))?,
            outputs: u32_param(op, count)?,
            kind,
            role: PoolRoleParams {
                u: u32x4(op, u)?,
                v: u32x4(op, v)?,
                w: u32x4(op, w_)?,
            },
        };
        let by_workgroup =
            wide && matches!(self, PoolRole::Line { walk, .. } if walk.count >= REDUCE_LANES);
        let (kernel, grid) = if by_workgroup {
            // A workgroup of 64 lanes per output: `Recorder::grid` counts 64-wide workgroups.
            (&POOL_WG, rec.grid((count * REDUCE_LANES) as u64)?)
        } else {
            (&POOL, group_grid(rec, count)?)
        };
        let max = [("HAS_MAX", if with_max { 1.0 } else { 0.0 })];
        rec.dispatch_variant(variant.to_string(), kernel, &max, &params, &[x, out], grid)
    }
}

/// Whether planes of `x [N,C,H,W]` are narrow enough to stream (`PoolRole::Plane`).
pub(crate) fn plane_fits(x: &[usize]) -> bool {
    x.get(3).is_some_and(|&w| w <= POOL_MAX_WIDTH)
}

/// Axis reductions of `x [N,C,H,W]` into `out`, one dispatch per role (a dispatch of mixed
/// roles would hand a CPU device's threads unequal work, since each takes a contiguous share
/// of the workgroups), named `variant` in profiles; with `wide`, lines of at least
/// `REDUCE_LANES` elements are each reduced by a workgroup (`triplet_pool_wg.wgsl`).
pub(crate) fn axis_pool_as(
    rec: &mut Recorder,
    x: &GpuTensor,
    out: &GpuTensor,
    roles: &[PoolRole],
    with_max: bool,
    variant: &str,
    wide: bool,
) -> Result<()> {
    if roles.iter().any(|r| matches!(r, PoolRole::Plane { .. })) && !plane_fits(x.shape()) {
        return Err(shape_err(
            "axis_pool",
            format!("planes of {:?} are too wide to stream", x.shape()),
        ));
    }
    // Every role inside one split: a chunk's output is copied back whole.
    rec.batched(&[x], out, |rec, ins, out| {
        roles
            .iter()
            .try_for_each(|role| role.dispatch(rec, ins[0], out, with_max, variant, wide))
    })
}

/// Whether `gpu` can finish the hw pool from subgroup partials (`triplet_pool_sg.wgsl`):
/// subgroups of at least `GROUP` lanes (a workgroup, whose lanes take `HW_GROUP / GROUP`
/// channels each).
pub fn subgroup_pool(gpu: &Gpu) -> bool {
    let (min, _) = gpu.subgroup_sizes();
    gpu.features().contains(wgpu::Features::SUBGROUP) && min as usize >= GROUP
}

/// How `triplet_pool` reads x: the variants the tuner chooses between.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PoolKernel {
    /// Two passes: each channel group's planes streamed by one subgroup (cw, hc and partial
    /// hw), then the hw pool finished. Few invocations, one read of x: for software devices.
    PlanesSg,
    /// Each `(image, channel)` plane streamed by one invocation for cw and hc, and hw on its
    /// own (the planes as lines where they are too wide to stream).
    Planes,
    /// An invocation per output of each pool, three passes over x: many invocations, each
    /// reading a strided line, which is what a GPU's thousands of lanes want.
    Lines,
    /// As `Lines`, but a line of at least 64 elements (the pool over channels) is reduced by
    /// a workgroup of 64 lanes through workgroup memory: on a 7×7 map at batch 1 that pool has
    /// 49 values to compute, too few for one invocation each to fill a GPU.
    Reduce,
}

impl std::fmt::Display for PoolKernel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::PlanesSg => "triplet_pool planes_sg",
            Self::Planes => "triplet_pool planes",
            Self::Lines => "triplet_pool lines",
            Self::Reduce => "triplet_pool reduce",
        })
    }
}

impl std::str::FromStr for PoolKernel {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "triplet_pool planes_sg" => Ok(Self::PlanesSg),
            "triplet_pool planes" => Ok(Self::Planes),
            "triplet_pool lines" => Ok(Self::Lines),
            "triplet_pool reduce" => Ok(Self::Reduce),
            _ => Err(Error::Invalid(format!(
                "`{s}` names no triplet pool variant"
            ))),
        }
    }
}

impl PoolKernel {
    /// What ran before variants existed: the subgroup planes where the device allows them.
    fn streamed(gpu: &Gpu) -> Self {
        if subgroup_pool(gpu) {
            Self::PlanesSg
        } else {
            Self::Planes
        }
    }

    /// The variant `gpu` runs without measurements: streamed planes on a software device
    /// (few invocations, one read of x, no barrier), lines with the long ones reduced by
    /// workgroups on a GPU.
    pub fn heuristic(gpu: &Gpu) -> Self {
        if gpu.is_software() {
            Self::streamed(gpu)
        } else {
            Self::Reduce
        }
    }

    /// Every variant that can run on `gpu`, for the tuner.
    pub fn candidates(gpu: &Gpu) -> Vec<Self> {
        let mut all = vec![Self::Planes, Self::Lines, Self::Reduce];
        if subgroup_pool(gpu) {
            all.insert(0, Self::PlanesSg);
        }
        all
    }
}

/// `[N, pooled_len]`: the Z-pools of every branch, packed (`TripletPool`), on the variant the
/// device's tuning cache or heuristic chooses.
pub fn triplet_pool(
    rec: &mut Recorder,
    x: &GpuTensor,
    out: &GpuTensor,
    spec: &TripletPool,
) -> Result<()> {
    let gpu = rec.gpu();
    let case = OpCase::TripletPool {
        input: x.shape().to_vec(),
        spec: *spec,
    };
    let kernel = gpu.tuning().choose(
        &case,
        gpu.precision(),
        |k: &PoolKernel| PoolKernel::candidates(gpu).contains(k),
        || PoolKernel::heuristic(gpu),
    );
    triplet_pool_as(rec, x, out, spec, kernel)
}

/// `triplet_pool` on `kernel`; an error if this device cannot run it.
pub fn triplet_pool_as(
    rec: &mut Recorder,
    x: &GpuTensor,
    out: &GpuTensor,
    spec: &TripletPool,
    kernel: PoolKernel,
) -> Result<()> {
    let op = "triplet_pool";
    expect_shape(op, out, &spec.out_shape(x.shape())?)?;
    if kernel == PoolKernel::PlanesSg && !subgroup_pool(rec.gpu()) {
        return Err(Error::Gpu(format!(
            "`{}` cannot run the subgroup pool",
            rec.gpu().adapter_name()
        )));
    }
    let (_, dims) = spec.dims(x.shape())?;
    let target = |plane: &Plane, strides: [usize; 2]| Target {
        max_at: plane.pooled,
        mean_at: plane.pooled + plane.len(),
        strides,
    };
    let (cw, hc) = (dims.cw(), dims.hc());
    // hc[h, c] is row h of plane c; cw[c, w] is its column w.
    let (rows, cols) = (target(&hc, [hc.cols, 1]), target(&cw, [cw.cols, 1]));
    let hw = dims.hw();
    let as_lines = matches!(kernel, PoolKernel::Lines | PoolKernel::Reduce);
    let streams = !as_lines && plane_fits(x.shape());
    if let (Some(hw), PoolKernel::PlanesSg, true) = (hw, kernel, streams) {
        let variant = kernel.to_string();
        return rec.batched(&[x], out, |rec, ins, out| {
            pool_planes_sg(rec, ins[0], out, &dims, rows, cols, &variant)?;
            finish_hw_pool(rec, out, &dims, target(&hw, [hw.cols, 1]), &variant)
        });
    }
    let line = |plane: &Plane| -> Result<PoolRole> {
        let walk = ZPool {
            axis: plane.branch.axis(),
        }
        .layout(x.shape())?;
        Ok(PoolRole::Line {
            walk,
            to: target(plane, [plane.cols, 1]),
        })
    };
    let mut roles = Vec::with_capacity(3);
    if let Some(hw) = hw {
        roles.push(line(&hw)?);
    }
    if streams {
        roles.push(PoolRole::Plane { rows, cols });
    } else {
        roles.extend([line(&cw)?, line(&hc)?]);
    }
    let wide = kernel == PoolKernel::Reduce;
    axis_pool_as(rec, x, out, &roles, true, &kernel.to_string(), wide)
}

/// The plane pass of `triplet_pool_sg.wgsl` on one batch chunk: hc into `rows`, cw into
/// `cols`, channel-group partials of hw into the scratch.
fn pool_planes_sg(
    rec: &mut Recorder,
    x: &GpuTensor,
    out: &GpuTensor,
    dims: &TripletDims,
    rows: Target,
    cols: Target,
    variant: &str,
) -> Result<()> {
    let op = "triplet_pool";
    let n = x.shape()[0];
    let groups = dims.channel_groups();
    let u = |v: usize| u32_param(op, v);
    let params = TripletPoolSgParams {
        n: u(n)?,
        c: u(dims.c)?,
        groups: u(groups)?,
        h: u(dims.h)?,
        w: u(dims.w)?,
        out_image: u(dims.pooled_len())?,
        scratch_at: u(dims.maps_len())?,
        _pad: 0,
        rows: rows.vec4(op)?,
        cols: cols.vec4(op)?,
    };
    let grid = group_grid(rec, n * groups * GROUP)?;
    rec.dispatch_variant(variant.to_string(), &POOL_SG, &[], &params, &[x, out], grid)
}

/// The hw pool of `out` (one batch chunk) from the channel-group partials that
/// `pool_planes_sg` left in its scratch: an invocation per image and position.
fn finish_hw_pool(
    rec: &mut Recorder,
    out: &GpuTensor,
    dims: &TripletDims,
    to: Target,
    variant: &str,
) -> Result<()> {
    let op = "triplet_pool";
    let n = out.shape()[0];
    let plane = dims.h * dims.w;
    let u = |v: usize| u32_param(op, v);
    let params = TripletPoolFinishParams {
        outputs: u(n * plane)?,
        plane: u(plane)?,
        groups: u(dims.channel_groups())?,
        c: u(dims.c)?,
        out_image: u(dims.pooled_len())?,
        scratch_at: u(dims.maps_len())?,
        max_at: u(to.max_at)?,
        mean_at: u(to.mean_at)?,
    };
    let grid = group_grid(rec, n * plane)?;
    rec.dispatch_variant(
        variant.to_string(),
        &POOL_FINISH,
        &[],
        &params,
        &[out],
        grid,
    )
}

/// How the gate kernel walks a plane of `tile` (slide, rows): `(rows, slide length, p_row,
/// p_slide, w_row, w_slide)`. The window slides along whichever axis needs fewer tiles (columns
/// unless the plane is narrower than a window and taller than wide, like cw of a 7×7 map).
fn orientation(plane: &Plane, k: usize, (slide, rows): (usize, usize)) -> [usize; 6] {
    let tiles = |r: usize, s: usize| r.div_ceil(rows) * s.div_ceil(slide);
    if tiles(plane.cols, plane.rows) < tiles(plane.rows, plane.cols) {
        [plane.cols, plane.rows, 1, plane.cols, 1, k]
    } else {
        [plane.rows, plane.cols, plane.cols, 1, k, 1]
    }
}

/// `[N, gates_len]`: every branch's gate, packed (`TripletGateSpec`), in one dispatch on the
/// layout the device chooses.
pub fn triplet_gates(
    rec: &mut Recorder,
    pooled: &GpuTensor,
    weight: &GpuTensor,
    bias: &GpuTensor,
    out: &GpuTensor,
    spec: &TripletGateSpec,
) -> Result<()> {
    let layout = choose_layout(rec, Op::TripletGates(*spec), &[pooled, weight, bias]);
    triplet_gates_as(rec, pooled, weight, bias, out, spec, layout)
}

/// `triplet_gates` on `layout`: register tiles of `GATE_TILE`, or a gate per invocation.
pub fn triplet_gates_as(
    rec: &mut Recorder,
    pooled: &GpuTensor,
    weight: &GpuTensor,
    bias: &GpuTensor,
    out: &GpuTensor,
    spec: &TripletGateSpec,
    layout: Layout,
) -> Result<()> {
    let op = "triplet_gates";
    let shape = spec.out_shape(pooled.shape(), weight.shape(), bias.shape())?;
    expect_shape(op, out, &shape)?;
    let k = spec.kernel_size(weight.shape(), bias.shape())?;
    let planes = spec.dims.planes();
    let images = [spec.dims.pooled_len(), spec.dims.gates_len()];
    let (kernel, tile) = match layout {
        Layout::Tiled => (&GATES, GATE_TILE),
        Layout::PerOutput => (&GATES_FLAT, (1, 1)),
    };
    rec.batched(&[pooled], out, |rec, ins, out| {
        let n = ins[0].shape()[0];
        let u = |v: usize| u32_param(op, v);
        let mut params = TripletGatesParams {
            n: u(n)?,
            pooled_image: u(images[0])?,
            gates_image: u(images[1])?,
            roles: u(planes.len())?,
            ..Default::default()
        };
        let mut start = 0;
        for (g, plane) in planes.iter().enumerate() {
            let [rows, len, p_row, p_slide, w_row, w_slide] = orientation(plane, k, tile);
            // Per output, the tiles along the slide axis are its positions.
            let slide_tiles = len.div_ceil(tile.0);
            let tiles = rows.div_ceil(tile.1) * slide_tiles;
            params.role[g] = GateRoleParams {
                head: u32x4(op, [start, tiles, slide_tiles, g])?,
                ext: u32x4(op, [rows, len, p_row, p_slide])?,
                offs: u32x4(op, [plane.pooled, plane.gate, g * 2 * k * k, 0])?,
                wstr: u32x4(op, [w_row, w_slide, 0, 0])?,
            };
            start = next_start(start + n * tiles);
        }
        let grid = match layout {
            Layout::Tiled => group_grid(rec, start)?,
            Layout::PerOutput => rec.grid(start as u64)?,
        };
        rec.dispatch(
            kernel,
            &[("K", k as f64)],
            &params,
            &[ins[0], weight, bias, out],
            grid,
        )
    })
}

/// `act(x · (g_hw + g_cw + g_hc) / 3 [+ residual])` (÷2 without `g_hw`) from the packed gates,
/// in the branch order of the PyTorch module, on the layout the device chooses.
pub fn triplet_combine(
    rec: &mut Recorder,
    x: &GpuTensor,
    gates: &GpuTensor,
    residual: Option<&GpuTensor>,
    out: &GpuTensor,
    spec: &TripletCombine,
) -> Result<()> {
    let op = Op::TripletCombine {
        spec: *spec,
        residual: residual.is_some(),
    };
    let ins: Vec<&GpuTensor> = [x, gates].into_iter().chain(residual).collect();
    let layout = choose_layout(rec, op, &ins);
    triplet_combine_as(rec, x, gates, residual, out, spec, layout)
}

/// `triplet_combine` on `layout`: tiles of 4 channels × `COMBINE_ROWS` rows × 4 columns, or an
/// output per invocation.
pub fn triplet_combine_as(
    rec: &mut Recorder,
    x: &GpuTensor,
    gates: &GpuTensor,
    residual: Option<&GpuTensor>,
    out: &GpuTensor,
    spec: &TripletCombine,
    layout: Layout,
) -> Result<()> {
    let op = "triplet_combine";
    let dims = spec.check(x.shape(), gates.shape(), residual.map(|r| r.shape()))?;
    expect_shape(op, out, x.shape())?;
    let (off_cw, off_hc) = (dims.cw().gate, dims.hc().gate);
    let flag = |on: bool| if on { 1.0 } else { 0.0 };
    let constants = [
        ("HAS_HW", flag(spec.has_hw)),
        ("HAS_RESIDUAL", flag(residual.is_some())),
        ("ACT", spec.act.code() as f64),
    ];
    // An absent residual is stood in for by x (bound, never read), keeping one layout.
    let inputs = [x, gates, residual.unwrap_or(x)];
    rec.batched(&inputs, out, |rec, ins, out| {
        let [n, c, h, w] = [0, 1, 2, 3].map(|i| out.shape()[i]);
        let u = |v: usize| u32_param(op, v);
        let params = TripletCombineParams {
            n: u(n)?,
            c: u(c)?,
            h: u(h)?,
            w: u(w)?,
            gates_image: u(dims.gates_len())?,
            off_cw: u(off_cw)?,
            off_hc: u(off_hc)?,
            scale: branch_scale(spec.has_hw),
        };
        let (kernel, grid) = match layout {
            Layout::Tiled => {
                let tiles = n * c.div_ceil(4) * h.div_ceil(COMBINE_ROWS) * w.div_ceil(4);
                (&COMBINE, group_grid(rec, tiles)?)
            }
            Layout::PerOutput => (&COMBINE_FLAT, rec.grid(out.numel() as u64)?),
        };
        rec.dispatch(
            kernel,
            &constants,
            &params,
            &[ins[0], ins[1], ins[2], out],
            grid,
        )
    })
}
