//! Convolution launchers with the fused epilogue: a GEMM for 1×1 convs, a sliding-window kernel
//! for 3×3 depthwise convs and a register-blocked implicit GEMM for everything else
//! (`shaders/conv2d_{gemm,depthwise,general}.wgsl`), the two GEMM-shaped ones also in variants
//! that share weights across a subgroup (`conv2d_{gemm,general}_sg.wgsl`), used where the
//! device has subgroups.
//!
//! On lavapipe a storage load costs as much as ~40 vec4 FMAs (llvmpipe runs 8 invocations per
//! SIMD batch but fetches memory lane by lane) while a subgroup shuffle costs under one, so
//! every kernel keeps a tile of outputs in registers and reuses each loaded value many times,
//! and the subgroup variants load each weight once per subgroup instead of once per lane. The
//! tile shape is picked per conv from the tensor shapes (`Tile::choose`,
//! `Tile::choose_shared`). `examples/conv_layers.rs` measures them.

pub use super::conv_tile::{MmTile, Tile};
use super::conv_tile::{MAX_CHANNELS, MAX_PIXELS, MAX_SHARED_CHANNELS, MM_DEPTH};
use super::{expect_shape, u32_param};
use crate::error::{shape_err, Error, Result};
use crate::gpu::{Binding, Gpu, GpuTensor, Kernel, Recorder, UNIFORM_WINDOW_BYTES};
use crate::ops::conv::{Conv2d, ConvDims, Epilogue};
use crate::tune::{ConvCase, OpCase};
use crate::Precision;
use crate::{bindings, kernel, wgsl_struct};

wgsl_struct! {
    /// 1×1 conv as a GEMM over `pixels` = N·H·W; `blocks` = RO_G · RP_Q, the store loop's trip
    /// count. The epilogue (`flags`: 1 bias, 2 scale/shift, 4 residual; `act` before the
    /// residual add, `post_act` after) ends every conv's params.
    pub struct ConvGemmParams {
        pixels: u32,
        out_hw: u32,
        cin: u32,
        cout: u32,
        blocks: u32,
        flags: u32,
        act: u32,
        post_act: u32,
        /// W, by which the gated kernels locate each pixel's gates.
        width: u32,
    }
}

wgsl_struct! {
    /// Any conv as an implicit GEMM: `blocks` channel blocks per group, `tile_blocks` = RO_G ·
    /// RP_Q; the epilogue as in `ConvGemmParams`.
    pub struct ConvGeneralParams {
        pixels: u32,
        out_hw: u32,
        out_w: u32,
        blocks: u32,
        cin: u32,
        cin_g: u32,
        cout_g: u32,
        cout: u32,
        in_h: u32,
        in_w: u32,
        kh: u32,
        kw: u32,
        sh: u32,
        sw: u32,
        ph: u32,
        pw: u32,
        dh: u32,
        dw: u32,
        tile_blocks: u32,
        flags: u32,
        act: u32,
        post_act: u32,
    }
}

wgsl_struct! {
    /// 3×3 depthwise: `lanes` = N · C · quads · strips invocations, each `rows` output rows of
    /// 4-wide quads; the epilogue as in `ConvGemmParams`.
    pub struct ConvDepthwiseParams {
        lanes: u32,
        channels: u32,
        in_h: u32,
        in_w: u32,
        out_h: u32,
        out_w: u32,
        quads: u32,
        strips: u32,
        rows: u32,
        ph: u32,
        pw: u32,
        flags: u32,
        act: u32,
        post_act: u32,
    }
}

wgsl_struct! {
    /// Any conv as a GEMM tiled through workgroup memory: `blocks` channel blocks of 4·WY
    /// channels per group, `reduction` = cin_g · kh · kw; the epilogue as in `ConvGemmParams`.
    pub struct ConvMmParams {
        pixels: u32,
        out_hw: u32,
        out_w: u32,
        blocks: u32,
        reduction: u32,
        cin: u32,
        cin_g: u32,
        cout_g: u32,
        cout: u32,
        in_h: u32,
        in_w: u32,
        kh: u32,
        kw: u32,
        sh: u32,
        sw: u32,
        ph: u32,
        pw: u32,
        dh: u32,
        dw: u32,
        flags: u32,
        act: u32,
        post_act: u32,
    }
}

/// Every conv kernel's bindings (`conv2d_epilogue.wgsl`).
const CONV_BINDINGS: &[Binding] =
    bindings![read x, read wt, read bias, read scale, read shift, read residual, write y];

pub static CONV2D_GEMM: Kernel = kernel!(
    "conv2d_gemm",
    "conv2d_epilogue.wgsl",
    "conv2d_tile.wgsl",
    "conv2d_gemm_io.wgsl",
    "conv2d_gemm_load.wgsl",
    "conv2d_gemm.wgsl";
    ConvGemmParams;
    CONV_BINDINGS
);
pub static CONV2D_GEMM_SG: Kernel = kernel!(
    features wgpu::Features::SUBGROUP;
    "conv2d_gemm_sg",
    "conv2d_epilogue.wgsl",
    "conv2d_tile.wgsl",
    "conv2d_sg.wgsl",
    "conv2d_gemm_io.wgsl",
    "conv2d_gemm_load.wgsl",
    "conv2d_gemm_sg.wgsl";
    ConvGemmParams;
    CONV_BINDINGS
);
/// The bindings of a conv whose input is Coordinate Attention's, with its gates.
const GATED_BINDINGS: &[Binding] = bindings![
    read x, read wt, read bias, read scale, read shift, read residual, write y, read gates
];
/// The subgroup-shared register tiles of a 1×1 conv whose input is Coordinate Attention's,
/// reading the gates through a uniform window as they load each activation
/// (`conv2d_gemm_load_gated.wgsl`).
const GEMM_GATED_BINDINGS: &[Binding] = bindings![
    read x, read wt, read bias, read scale, read shift, read residual, write y,
    read gates: window
];
pub static CONV2D_GEMM_SG_GATED: Kernel = kernel!(
    features wgpu::Features::SUBGROUP;
    "conv2d_gemm_sg_gated",
    "conv2d_epilogue.wgsl",
    "conv2d_tile.wgsl",
    "conv2d_sg.wgsl",
    "conv2d_gemm_io.wgsl",
    "conv2d_gemm_load_gated.wgsl",
    "conv2d_gemm_sg.wgsl";
    ConvGemmParams;
    GEMM_GATED_BINDINGS
);
pub static CONV2D_DEPTHWISE: Kernel = kernel!(
    "conv2d_depthwise",
    "conv2d_epilogue.wgsl",
    "conv2d_depthwise_nopool.wgsl",
    "conv2d_depthwise.wgsl";
    ConvDepthwiseParams;
    CONV_BINDINGS
);
/// The depthwise conv that also writes Coordinate Attention's partial means of its output
/// (`conv2d_depthwise_pool.wgsl`; `coord_pool_finish` adds them up).
pub static CONV2D_DEPTHWISE_POOL: Kernel = kernel!(
    "conv2d_depthwise_pool",
    "conv2d_epilogue.wgsl",
    "conv2d_depthwise_pool.wgsl",
    "conv2d_depthwise.wgsl";
    ConvDepthwiseParams;
    bindings![
        read x, read wt, read bias, read scale, read shift, read residual, write y,
        write partials: f32
    ]
);
pub static CONV2D_GENERAL: Kernel = kernel!(
    "conv2d_general",
    "conv2d_epilogue.wgsl",
    "conv2d_tile.wgsl",
    "conv2d_general_io.wgsl",
    "conv2d_general.wgsl";
    ConvGeneralParams;
    CONV_BINDINGS
);
pub static CONV2D_GENERAL_SG: Kernel = kernel!(
    features wgpu::Features::SUBGROUP;
    "conv2d_general_sg",
    "conv2d_epilogue.wgsl",
    "conv2d_tile.wgsl",
    "conv2d_sg.wgsl",
    "conv2d_general_io.wgsl",
    "conv2d_general_sg.wgsl";
    ConvGeneralParams;
    CONV_BINDINGS
);
pub static CONV2D_MM: Kernel = kernel!(
    "conv2d_mm",
    "conv2d_epilogue.wgsl",
    "conv2d_mm_nogate.wgsl",
    "conv2d_mm.wgsl";
    ConvMmParams;
    CONV_BINDINGS
);
/// `conv2d_mm` of a 1×1 conv whose input is Coordinate Attention's, multiplied by its gates
/// as it is staged (`conv2d_mm_gate.wgsl`): the attended tensor is never written.
pub static CONV2D_MM_GATED: Kernel = kernel!(
    "conv2d_mm_gated",
    "conv2d_epilogue.wgsl",
    "conv2d_mm_gate.wgsl",
    "conv2d_mm.wgsl";
    ConvMmParams;
    GATED_BINDINGS
);
pub const KERNELS: &[&Kernel] = &[
    &CONV2D_MM,
    &CONV2D_GEMM,
    &CONV2D_GEMM_SG,
    &CONV2D_DEPTHWISE,
    &CONV2D_DEPTHWISE_POOL,
    &CONV2D_MM_GATED,
    &CONV2D_GEMM_SG_GATED,
    &CONV2D_GENERAL,
    &CONV2D_GENERAL_SG,
];

const OP: &str = "conv2d";

/// Invocations per workgroup of the three kernels (`@workgroup_size(64)`).
const LANES: usize = 64;

/// The most output rows of a depthwise strip on a software device: taller strips reload
/// fewer rows at their top, shorter ones give more invocations to spread over the cores.
pub const DEPTHWISE_ROWS: usize = 24;

/// The strip heights the tuner times for a depthwise conv: a GPU wants thousands of short
/// strips where a CPU device wants a few hundred tall ones.
const DEPTHWISE_ROW_CHOICES: [usize; 5] = [DEPTHWISE_ROWS, 8, 4, 2, 1];

/// Invocations a GPU's depthwise conv should have at least (256 workgroups, like the
/// `conv2d_mm` blocks the heuristic picks): its strips are the tallest that give as many.
const GPU_DEPTHWISE_INVOCATIONS: usize = 256 * LANES;

/// The kernel a conv runs on, with its specialization.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConvKernel {
    /// 1×1, stride 1, no padding, one group: `conv2d_gemm` (`conv2d_gemm_sg` for a shared
    /// tile) with this tile.
    Gemm(Tile),
    /// 3×3, groups = Cin = Cout, dilation 1, the same stride (1 or 2) on both axes:
    /// `conv2d_depthwise`, in strips of at most `rows` output rows (`DepthwiseStrips`).
    Depthwise { stride: usize, rows: usize },
    /// Any geometry: `conv2d_general` (`conv2d_general_sg` for a shared tile) with this
    /// tile.
    General(Tile),
    /// Any geometry: `conv2d_mm`, tiled through workgroup memory, with this block.
    Mm(MmTile),
}

/// The kernel a plan runs this conv on: the tuner's cached choice where the device has one
/// that fits, else the heuristic.
fn choose(gpu: &Gpu, d: &ConvDims, input: &[usize], weight: &[usize], spec: &Conv2d) -> ConvKernel {
    let case = OpCase::Conv(ConvCase::new(input, weight, spec));
    gpu.tuning().choose(
        &case,
        gpu.precision(),
        |k: &ConvKernel| k.check_fits(gpu, weight, spec).is_ok(),
        || ConvKernel::heuristic(d, spec, gpu),
    )
}

/// `<kernel> <channels>x<pixels>`: the output block of one invocation for the register tiles,
/// of one workgroup for `conv2d_mm`; `conv2d_depthwise s<stride>`. `FromStr` reads it back
/// (the tuning cache stores it).
impl ConvKernel {
    /// Its specialization as variant names spell it: `64x16` (channels × pixels), `s2`.
    fn shape(self) -> String {
        match self {
            Self::Gemm(t) | Self::General(t) => format!("{}x{}", 4 * t.channels, 4 * t.pixels),
            Self::Depthwise { stride, rows } => format!("s{stride}r{rows}"),
            Self::Mm(t) => format!("{}x{}", t.channels(), t.pixels()),
        }
    }
}

impl std::fmt::Display for ConvKernel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.kernel().name, self.shape())
    }
}

impl std::str::FromStr for ConvKernel {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        let bad = || Error::Invalid(format!("`{s}` names no conv kernel variant"));
        let (name, shape) = s.split_once(' ').ok_or_else(bad)?;
        if name == CONV2D_DEPTHWISE.name {
            let (stride, rows) = shape
                .strip_prefix('s')
                .and_then(|v| v.split_once('r'))
                .ok_or_else(bad)?;
            return match (stride.parse(), rows.parse()) {
                (Ok(stride), Ok(rows)) if rows > 0 => Ok(Self::Depthwise { stride, rows }),
                _ => Err(bad()),
            };
        }
        let (c, p) = shape.split_once('x').ok_or_else(bad)?;
        let (c, p): (usize, usize) = (c.parse().map_err(|_| bad())?, p.parse().map_err(|_| bad())?);
        if c % 4 != 0 || p % 4 != 0 {
            return Err(bad());
        }
        let (c, p) = (c / 4, p / 4);
        let kernel = match name {
            "conv2d_gemm" => Self::Gemm(Tile::plain(c, p)),
            "conv2d_gemm_sg" => Self::Gemm(Tile::shared(c, p)),
            "conv2d_general" => Self::General(Tile::plain(c, p)),
            "conv2d_general_sg" => Self::General(Tile::shared(c, p)),
            "conv2d_mm" => Self::Mm(MmTile { wx: p, wy: c }),
            _ => return Err(bad()),
        };
        Ok(kernel)
    }
}

/// Every specialization a plan may compile `kernel` with, where it has several that change
/// its workgroup (the browser test compiles each): `conv2d_mm`'s blocks. Empty for the rest.
pub fn specializations(kernel: &Kernel) -> Vec<Vec<(&'static str, f64)>> {
    if kernel.name != CONV2D_MM.name && kernel.name != CONV2D_MM_GATED.name {
        return Vec::new();
    }
    MmTile::ALL
        .into_iter()
        .map(|t| ConvKernel::Mm(t).constants())
        .collect()
}

/// Whether the GEMM kernel can run this geometry.
fn is_gemm(weight: &[usize], spec: &Conv2d) -> bool {
    weight[2..] == [1, 1] && spec.stride == (1, 1) && spec.padding == (0, 0) && spec.groups == 1
}

/// Whether the depthwise kernel can run this geometry, and at which stride.
fn depthwise_stride(weight: &[usize], spec: &Conv2d) -> Option<usize> {
    let (cout, cin_g) = (weight[0], weight[1]);
    let stride = spec.stride.0;
    let fits = weight[2..] == [3, 3]
        && cin_g == 1
        && spec.groups == cout
        && spec.dilation == (1, 1)
        && spec.stride.1 == stride
        && (stride == 1 || stride == 2);
    fits.then_some(stride)
}

impl ConvKernel {
    /// The register-tiled kernel for this geometry, its tile from the cost model measured on
    /// lavapipe; `lanes` is the subgroup size when the shared tiles may be used.
    fn register_tiled(d: &ConvDims, spec: &Conv2d, lanes: Option<usize>) -> Self {
        let weight = [d.cout, d.cin_g, d.kh, d.kw];
        let (cout, cin_g, kh, kw) = (d.cout, d.cin_g, d.kh, d.kw);
        let pixels = d.n.saturating_mul(d.ho).saturating_mul(d.wo);
        let groups = spec.groups;
        let tile = |taps: usize| match lanes {
            Some(lanes) => Tile::choose_shared(cout / groups, groups, pixels, cin_g, taps, lanes),
            None => Tile::choose(cout / groups, groups, pixels, cin_g * taps),
        };
        if is_gemm(&weight, spec) {
            Self::Gemm(tile(1))
        } else if let Some(stride) = depthwise_stride(&weight, spec) {
            let rows = DEPTHWISE_ROWS;
            Self::Depthwise { stride, rows }
        } else {
            Self::General(tile(kh * kw))
        }
    }

    /// The kernel `gpu` runs this conv on when nothing was measured, by the kind of device:
    /// on a software device (a CPU-type adapter, SwiftShader) the register tiles, tuned for
    /// one; on a GPU the workgroup-memory GEMM, except for groups too narrow for its smallest
    /// block, which keep their own kernels, and depthwise convs, which keep theirs in the
    /// tallest strips that make `GPU_DEPTHWISE_INVOCATIONS`.
    pub fn heuristic(d: &ConvDims, spec: &Conv2d, gpu: &Gpu) -> Self {
        let tiled = Self::register_tiled(d, spec, subgroup_lanes(gpu));
        if gpu.is_software() {
            return tiled;
        }
        if let Self::Depthwise { stride, .. } = tiled {
            let rows = gpu_depthwise_rows(d);
            return Self::Depthwise { stride, rows };
        }
        if d.cout_g < MM_MIN_CHANNELS {
            return tiled;
        }
        let pixels = d.n.saturating_mul(d.ho).saturating_mul(d.wo);
        Self::Mm(MmTile::choose(
            d.cout_g,
            spec.groups,
            pixels,
            max_invocations(gpu),
        ))
    }

    /// Every kernel the tuner times for this conv on `gpu`: the register tiles the cost model
    /// picks, with and without subgroups, and each workgroup-memory block that pads the
    /// group's channels by at most half; for a depthwise conv, its kernel in each strip height
    /// that cuts the planes differently.
    pub fn candidates(d: &ConvDims, spec: &Conv2d, gpu: &Gpu) -> Vec<Self> {
        let tiled = Self::register_tiled(d, spec, None);
        if let Self::Depthwise { stride, .. } = tiled {
            return depthwise_row_choices(d.ho)
                .map(|rows| Self::Depthwise { stride, rows })
                .collect();
        }
        let mut all = vec![tiled];
        if let Some(lanes) = subgroup_lanes(gpu) {
            all.push(Self::register_tiled(d, spec, Some(lanes)));
        }
        let pads_little = |t: &MmTile| d.cout_g.next_multiple_of(t.channels()) <= 2 * d.cout_g;
        all.extend(
            MmTile::ALL
                .into_iter()
                .filter(|t| t.is_valid(max_invocations(gpu)) && pads_little(t))
                .map(Self::Mm),
        );
        all.dedup();
        all
    }

    pub fn kernel(self) -> &'static Kernel {
        match self {
            Self::Gemm(t) if t.shared => &CONV2D_GEMM_SG,
            Self::Gemm(_) => &CONV2D_GEMM,
            Self::Depthwise { .. } => &CONV2D_DEPTHWISE,
            Self::General(t) if t.shared => &CONV2D_GENERAL_SG,
            Self::General(_) => &CONV2D_GENERAL,
            Self::Mm(_) => &CONV2D_MM,
        }
    }

    /// The specialization constants of its pipeline.
    pub fn constants(self) -> Vec<(&'static str, f64)> {
        match self {
            Self::Gemm(tile) | Self::General(tile) => {
                vec![("RO_G", tile.channels as f64), ("RP_Q", tile.pixels as f64)]
            }
            Self::Depthwise { stride, .. } => vec![("S", stride as f64)],
            Self::Mm(t) => vec![
                ("WX", t.wx as f64),
                ("WY", t.wy as f64),
                ("TK", MM_DEPTH as f64),
            ],
        }
    }

    /// An error unless this kernel can run a conv of this weight shape and geometry on `gpu`.
    fn check_fits(self, gpu: &Gpu, weight: &[usize], spec: &Conv2d) -> Result<()> {
        let fits = match self {
            Self::Gemm(tile) => is_gemm(weight, spec) && tile_runs_on(tile, gpu),
            Self::Depthwise { stride, rows } => {
                rows > 0 && depthwise_stride(weight, spec) == Some(stride)
            }
            Self::General(tile) => tile_runs_on(tile, gpu),
            Self::Mm(tile) => tile.is_valid(max_invocations(gpu)),
        };
        if fits {
            return Ok(());
        }
        Err(Error::Invalid(format!(
            "{self:?} cannot run a conv of weight {weight:?} with {spec:?} on {}",
            gpu.adapter_name()
        )))
    }
}

/// The subgroup size the shared tiles are planned for on `gpu`, or `None` where they cannot
/// run: the device lacks subgroups, its subgroups may be wider than a workgroup (64) or
/// narrower than the 4 lanes that hand round epilogue operands.
pub fn subgroup_lanes(gpu: &Gpu) -> Option<usize> {
    let (min, max) = gpu.subgroup_sizes();
    let usable =
        gpu.features().contains(wgpu::Features::SUBGROUP) && min >= 4 && max <= LANES as u32;
    usable.then_some(min as usize)
}

/// Invocations a workgroup of `conv2d_mm` may have on `gpu`.
fn max_invocations(gpu: &Gpu) -> usize {
    gpu.limits().max_compute_invocations_per_workgroup as usize
}

/// Groups narrower than this run on the register tiles: `conv2d_mm`'s narrowest block is 16
/// channels, and it would pad a narrower group with work.
const MM_MIN_CHANNELS: usize = 16;

/// The register-tiled kernel (and tile) for this input, weight and geometry on a device whose
/// subgroups are `lanes` wide (`None`: without the shared tiles; see `subgroup_lanes`); an
/// error for shapes it rejects.
pub fn kernel_for(
    input: &[usize],
    weight: &[usize],
    spec: &Conv2d,
    lanes: Option<usize>,
) -> Result<ConvKernel> {
    Ok(ConvKernel::register_tiled(
        &spec.dims(input, weight)?,
        spec,
        lanes,
    ))
}

/// Whether the shaders take `tile`, on this device.
fn tile_runs_on(tile: Tile, gpu: &Gpu) -> bool {
    let max = if tile.shared {
        MAX_SHARED_CHANNELS
    } else {
        MAX_CHANNELS
    };
    let sized = (1..=max).contains(&tile.channels) && (1..=MAX_PIXELS).contains(&tile.pixels);
    sized && (!tile.shared || subgroup_lanes(gpu).is_some())
}

/// Records `out = epilogue(conv(x, w))`; `out` must have the shape `spec.output_shape` gives.
/// The batch is split when a tensor exceeds one storage binding.
pub fn conv2d(
    rec: &mut Recorder,
    x: &GpuTensor,
    w: &GpuTensor,
    ep: &Epilogue<GpuTensor>,
    out: &GpuTensor,
    spec: &Conv2d,
) -> Result<()> {
    let (call, dims) = Call::checked(x, w, ep, out, spec)?;
    let plan = choose(rec.gpu(), &dims, x.shape(), w.shape(), spec);
    call.record(rec, plan)
}

/// Where a pooling depthwise conv writes Coordinate Attention's partial sums
/// (`conv2d_pooling`): the buffer (`coord_partials_shape`, f32), and the most rows of the
/// conv's strips, which lay the parts out.
#[derive(Clone, Debug)]
pub struct PoolParts {
    pub sums: GpuTensor,
    pub max_rows: usize,
}

impl PoolParts {
    /// How the conv that computed x `[N, C, H, W]` covered its planes.
    pub fn strips(&self, x: &[usize]) -> Result<DepthwiseStrips> {
        match x {
            [_, _, h, w] => Ok(DepthwiseStrips::of(*h, *w, self.max_rows)),
            _ => Err(shape_err(OP, format!("expects a 4-d output, got {x:?}"))),
        }
    }

    /// An error unless the buffer has the shape the parts of x need.
    pub fn check(&self, op: &'static str, x: &[usize]) -> Result<()> {
        expect_shape(op, &self.sums, &coord_partials_shape(x, self.max_rows)?)
    }
}

/// The shape of the partial sums `conv2d_pooling` writes for a conv whose output has `out`'s
/// shape `[N, C, Ho, Wo]`, in strips of at most `max_rows` rows.
pub fn coord_partials_shape(out: &[usize], max_rows: usize) -> Result<[usize; 2]> {
    let [n, c, ho, wo] = match out {
        [n, c, ho, wo] => [*n, *c, *ho, *wo],
        _ => return Err(shape_err(OP, format!("expects a 4-d output, got {out:?}"))),
    };
    let strips = DepthwiseStrips::of(ho, wo, max_rows);
    Ok([n, strips.partials_per_image(c, ho, wo)])
}

/// The strip height a plan runs this depthwise conv on (the tuner's choice, else the
/// heuristic's), which a pooling conv's parts are laid out by; `None` if it is no depthwise
/// conv.
pub fn depthwise_rows(gpu: &Gpu, x: &[usize], w: &[usize], spec: &Conv2d) -> Option<usize> {
    let d = spec.dims(x, w).ok()?;
    match choose(gpu, &d, x, w, spec) {
        ConvKernel::Depthwise { rows, .. } => Some(rows),
        _ => None,
    }
}

/// Whether `conv2d_pooling` can run this conv in strips of at most `max_rows` rows: a
/// depthwise 3×3 whose tensors each fit one storage binding (its partial sums are not split
/// by batch).
pub fn pools_in_epilogue(
    gpu: &Gpu,
    x: &[usize],
    w: &[usize],
    out: &[usize],
    spec: &Conv2d,
    max_rows: usize,
) -> bool {
    let partials = coord_partials_shape(out, max_rows).map(|s| 4 * (s[0] * s[1]) as u64);
    w.len() == 4
        && depthwise_stride(w, spec).is_some()
        && fits_one_binding(gpu, x)
        && fits_one_binding(gpu, out)
        && partials.is_ok_and(|b| b <= gpu.max_binding_bytes())
}

/// Whether a tensor of `shape` at the device's precision fits one storage binding: a fused
/// conv's extra operand is not split by batch, so neither may its other tensors be.
fn fits_one_binding(gpu: &Gpu, shape: &[usize]) -> bool {
    let bytes = gpu
        .precision()
        .stored_bytes(crate::tensor::numel(shape) as u64);
    bytes <= gpu.max_binding_bytes()
}

/// `conv2d` of a depthwise 3×3 that also writes the partial sums of Coordinate Attention's
/// means of its output into `parts`, while the values are in registers:
/// `coord::coord_pool_finish` then adds them up, and x is not read again to be pooled.
pub fn conv2d_pooling(
    rec: &mut Recorder,
    x: &GpuTensor,
    w: &GpuTensor,
    ep: &Epilogue<GpuTensor>,
    out: &GpuTensor,
    spec: &Conv2d,
    parts: &PoolParts,
) -> Result<()> {
    let (call, d) = Call::checked(x, w, ep, out, spec)?;
    let kernel = &CONV2D_DEPTHWISE_POOL;
    let rows = parts.max_rows;
    if rows == 0 || !pools_in_epilogue(rec.gpu(), x.shape(), w.shape(), out.shape(), spec, rows) {
        return Err(call.cannot_run(kernel));
    }
    parts.check(OP, out.shape())?;
    let plan = ConvKernel::Depthwise {
        stride: spec.stride.0,
        rows,
    };
    let (p, grid) = depthwise_launch(rec, &d, spec, rows, EpilogueWords::of(ep, spec))?;
    call.dispatch_fused(rec, plan, kernel, &parts.sums, &p, grid)
}

/// How a 1×1 conv whose input is Coordinate Attention's multiplies each activation by its
/// gates as it loads it (`conv2d_gated`), so that the attended tensor is never written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GatedKernel {
    /// The subgroup-shared register tile the plain conv runs on, reading the gates through a
    /// uniform window (`conv2d_gemm_sg_gated`). For CPU devices with subgroups (lavapipe),
    /// where gathering from a uniform array costs a fraction of a storage load and the
    /// workgroup-memory kernel is several times slower than the register tiles. (In Chromium's
    /// SwiftShader, without subgroups, the plain tiles' form of it measured slower than the
    /// separate apply: docs/performance.md has the numbers.)
    Windowed(Tile),
    /// `conv2d_mm_gated`, which stages each gated activation in workgroup memory: for GPUs.
    Staged(MmTile),
}

impl GatedKernel {
    /// Whether a plan that fuses where it pays (`fuse::Where::OnGpus`) runs this kernel on
    /// `gpu`: the windowed kernel is the one that pays on CPU devices.
    pub fn pays_on(self, gpu: &Gpu) -> bool {
        match self {
            Self::Windowed(_) => gpu.is_software(),
            Self::Staged(_) => !gpu.is_software(),
        }
    }
}

/// Whether `conv2d_gated` can run this conv at all: a 1×1, stride-1, unpadded, one-group conv
/// whose tensors each fit one storage binding (the gates are not split by batch).
fn gated_geometry(gpu: &Gpu, x: &[usize], w: &[usize], out: &[usize], spec: &Conv2d) -> bool {
    let pointwise = w.len() == 4 && is_gemm(w, spec) && spec.dilation == (1, 1);
    pointwise && [x, w, out].iter().all(|s| fits_one_binding(gpu, s))
}

/// The kernel `conv2d_gated` runs this conv on, if any: on a CPU device the shared register
/// tile the plain conv runs on, with the gates read through a uniform window, where every
/// image's gates fit one at f32; else the workgroup-memory block, where the conv has channels
/// enough for one.
pub fn gated_kernel(
    gpu: &Gpu,
    x: &[usize],
    w: &[usize],
    out: &[usize],
    spec: &Conv2d,
) -> Option<GatedKernel> {
    if !gated_geometry(gpu, x, w, out, spec) {
        return None;
    }
    let d = spec.dims(x, w).ok()?;
    let gate_bytes = (d.n * d.cin * (d.h + d.w)) as u64 * 4;
    let windowed = gpu.is_software()
        && gpu.precision() == Precision::F32
        && gate_bytes <= UNIFORM_WINDOW_BYTES;
    if let (true, ConvKernel::Gemm(tile)) = (windowed, choose(gpu, &d, x, w, spec)) {
        if tile.shared {
            return Some(GatedKernel::Windowed(tile));
        }
    }
    staged_kernel(gpu, &d, spec)
}

/// The workgroup-memory block of a gated conv of dimensions `d`, if it has channels enough.
fn staged_kernel(gpu: &Gpu, d: &ConvDims, spec: &Conv2d) -> Option<GatedKernel> {
    let pixels = d.n.saturating_mul(d.ho).saturating_mul(d.wo);
    let tile = MmTile::choose(d.cout_g, spec.groups, pixels, max_invocations(gpu));
    (d.cout_g >= MM_MIN_CHANNELS && tile.is_valid(max_invocations(gpu)))
        .then_some(GatedKernel::Staged(tile))
}

/// `conv2d` of `(x · a_w) · a_h`, Coordinate Attention's output, without that output: the
/// 1×1 conv multiplies each activation by its gates (`gates [N, C·(H+W)]`, packed as
/// `coord_gates` writes them) as it loads it, on `gated_kernel`'s choice (the workgroup-memory
/// block where the gates' buffer cannot be read through a window).
pub fn conv2d_gated(
    rec: &mut Recorder,
    x: &GpuTensor,
    w: &GpuTensor,
    ep: &Epilogue<GpuTensor>,
    out: &GpuTensor,
    spec: &Conv2d,
    gates: &GpuTensor,
) -> Result<()> {
    let gpu = rec.gpu();
    let kernel = match gated_kernel(gpu, x.shape(), w.shape(), out.shape(), spec) {
        Some(GatedKernel::Windowed(_)) if !gates.fits_window(gpu) => {
            staged_kernel(gpu, &spec.dims(x.shape(), w.shape())?, spec)
        }
        chosen => chosen,
    };
    let Some(kernel) = kernel else {
        let (call, _) = Call::checked(x, w, ep, out, spec)?;
        return Err(call.cannot_run(&CONV2D_MM_GATED));
    };
    conv2d_gated_on(rec, x, w, ep, out, spec, gates, kernel)
}

/// `conv2d_gated` on `kernel` (tests run each); an error if it cannot run this conv here.
#[allow(clippy::too_many_arguments)]
pub fn conv2d_gated_on(
    rec: &mut Recorder,
    x: &GpuTensor,
    w: &GpuTensor,
    ep: &Epilogue<GpuTensor>,
    out: &GpuTensor,
    spec: &Conv2d,
    gates: &GpuTensor,
    kernel: GatedKernel,
) -> Result<()> {
    let (call, d) = Call::checked(x, w, ep, out, spec)?;
    let epi = EpilogueWords::of(ep, spec);
    expect_shape(OP, gates, &[d.n, d.cin * (d.h + d.w)])?;
    match kernel {
        GatedKernel::Windowed(tile) => {
            let k = &CONV2D_GEMM_SG_GATED;
            let runs = gated_geometry(rec.gpu(), x.shape(), w.shape(), out.shape(), spec)
                && tile.shared
                && tile_runs_on(tile, rec.gpu())
                && gates.fits_window(rec.gpu());
            if !runs {
                return Err(call.cannot_run(k));
            }
            let (p, grid) = gemm_launch(rec, &d, tile, epi)?;
            call.dispatch_fused(rec, ConvKernel::Gemm(tile), k, gates, &p, grid)
        }
        GatedKernel::Staged(tile) => {
            let k = &CONV2D_MM_GATED;
            let runs = gated_geometry(rec.gpu(), x.shape(), w.shape(), out.shape(), spec)
                && d.cout_g >= MM_MIN_CHANNELS
                && tile.is_valid(max_invocations(rec.gpu()));
            if !runs {
                return Err(call.cannot_run(k));
            }
            let (p, grid) = mm_launch(rec, &d, spec, tile, epi)?;
            call.dispatch_fused(rec, ConvKernel::Mm(tile), k, gates, &p, grid)
        }
    }
}

/// `conv2d` on a kernel of the caller's choosing (tests use it to run every kernel and tile on
/// the same shapes); an error if that kernel cannot run this conv on this device.
pub fn conv2d_with(
    rec: &mut Recorder,
    x: &GpuTensor,
    w: &GpuTensor,
    ep: &Epilogue<GpuTensor>,
    out: &GpuTensor,
    spec: &Conv2d,
    plan: ConvKernel,
) -> Result<()> {
    let (call, _) = Call::checked(x, w, ep, out, spec)?;
    plan.check_fits(rec.gpu(), w.shape(), spec)?;
    call.record(rec, plan)
}

/// The operands of one conv.
struct Call<'a> {
    x: &'a GpuTensor,
    w: &'a GpuTensor,
    ep: &'a Epilogue<'a, GpuTensor>,
    out: &'a GpuTensor,
    spec: &'a Conv2d,
}

impl<'a> Call<'a> {
    /// The operands of one conv, and its dimensions after checking every operand, `out` among
    /// them.
    fn checked(
        x: &'a GpuTensor,
        w: &'a GpuTensor,
        ep: &'a Epilogue<'a, GpuTensor>,
        out: &'a GpuTensor,
        spec: &'a Conv2d,
    ) -> Result<(Self, ConvDims)> {
        let dims = spec.check(x, w, ep)?;
        expect_shape(OP, out, &dims.out_shape())?;
        Ok((
            Call {
                x,
                w,
                ep,
                out,
                spec,
            },
            dims,
        ))
    }

    /// The error for a fused `kernel` that cannot run this conv.
    fn cannot_run(&self, kernel: &Kernel) -> Error {
        Error::Invalid(format!(
            "{} cannot run a conv of weight {:?} with {:?} on input {:?}",
            kernel.name,
            self.w.shape(),
            self.spec,
            self.x.shape()
        ))
    }

    /// Records the checked conv, whole batch, on `kernel`: the fused form of `plan`'s kernel,
    /// which binds `extra` after the conv's own operands.
    fn dispatch_fused<P: crate::gpu::WgslStruct>(
        &self,
        rec: &mut Recorder,
        plan: ConvKernel,
        kernel: &'static Kernel,
        extra: &GpuTensor,
        params: &P,
        grid: [u32; 3],
    ) -> Result<()> {
        let own = bindings(self.x, self.w, self.ep, self.ep.residual, self.out);
        let buffers: Vec<&GpuTensor> = own.into_iter().chain([extra]).collect();
        let variant = format!("{} {}", kernel.name, plan.shape());
        rec.dispatch_variant(variant, kernel, &plan.constants(), params, &buffers, grid)
    }

    /// Records the checked conv on `plan`, a kernel that fits it.
    fn record(&self, rec: &mut Recorder, plan: ConvKernel) -> Result<()> {
        let Call {
            x,
            w,
            ep,
            out,
            spec,
        } = *self;
        let mut inputs = vec![x];
        inputs.extend(ep.residual);
        rec.batched(&inputs, out, |rec, ins, out| {
            // The dimensions of this batch chunk.
            let d = spec.dims(ins[0].shape(), w.shape())?;
            let epi = EpilogueWords::of(ep, spec);
            let buffers = bindings(ins[0], w, ep, ins.get(1).copied(), out);
            let (kernel, constants) = (plan.kernel(), plan.constants());
            match plan {
                ConvKernel::Gemm(tile) => {
                    let (p, grid) = gemm_launch(rec, &d, tile, epi)?;
                    rec.dispatch_variant(plan.to_string(), kernel, &constants, &p, &buffers, grid)
                }
                ConvKernel::Depthwise { rows, .. } => {
                    let (p, grid) = depthwise_launch(rec, &d, spec, rows, epi)?;
                    rec.dispatch_variant(plan.to_string(), kernel, &constants, &p, &buffers, grid)
                }
                ConvKernel::General(tile) => {
                    let (p, grid) = general_launch(rec, &d, spec, tile, epi)?;
                    rec.dispatch_variant(plan.to_string(), kernel, &constants, &p, &buffers, grid)
                }
                ConvKernel::Mm(tile) => {
                    let (p, grid) = mm_launch(rec, &d, spec, tile, epi)?;
                    rec.dispatch_variant(plan.to_string(), kernel, &constants, &p, &buffers, grid)
                }
            }
        })
    }
}

/// The tensors of `CONV_BINDINGS` in order. Absent epilogue operands bind the (read-only)
/// weights; the flags keep the shader off them.
fn bindings<'a>(
    x: &'a GpuTensor,
    w: &'a GpuTensor,
    ep: &Epilogue<'a, GpuTensor>,
    residual: Option<&'a GpuTensor>,
    out: &'a GpuTensor,
) -> [&'a GpuTensor; 7] {
    let (scale, shift) = ep.affine.unwrap_or((w, w));
    [
        x,
        w,
        ep.bias.unwrap_or(w),
        scale,
        shift,
        residual.unwrap_or(w),
        out,
    ]
}

/// The epilogue fields that end every conv kernel's params: which operands exist, act,
/// post_act. They are parameters rather than specialization constants so that one pipeline per
/// tile serves every epilogue (these kernels take long to compile on lavapipe).
#[derive(Clone, Copy)]
struct EpilogueWords {
    flags: u32,
    act: u32,
    post_act: u32,
}

impl EpilogueWords {
    fn of(ep: &Epilogue<GpuTensor>, spec: &Conv2d) -> Self {
        let flags = u32::from(ep.bias.is_some())
            | u32::from(ep.affine.is_some()) << 1
            | u32::from(ep.residual.is_some()) << 2;
        Self {
            flags,
            act: spec.act.code(),
            post_act: spec.post_act.code(),
        }
    }
}

/// Workgroups for `pixels` output pixels in tiles of `tile` (x, spilling into z past the
/// per-dimension limit) × `blocks` channel blocks (y).
fn tiled_grid(rec: &Recorder, pixels: usize, tile: Tile, blocks: usize) -> Result<[u32; 3]> {
    block_grid(
        rec,
        pixels.div_ceil(4 * tile.pixels).div_ceil(LANES),
        blocks,
    )
}

/// Workgroups for `groups` pixel blocks (x, spilling into z past the per-dimension limit) ×
/// `blocks` channel blocks (y).
fn block_grid(rec: &Recorder, groups: usize, blocks: usize) -> Result<[u32; 3]> {
    let max = (rec.gpu().limits().max_compute_workgroups_per_dimension as usize).max(1);
    let (x, z) = (groups.min(max), groups.div_ceil(max));
    if z > max || blocks > max {
        return Err(Error::Limit {
            what: format!("a conv dispatch of {groups} × {blocks} workgroups"),
            needed: groups.max(blocks) as u64,
            limit: (max * max) as u64,
            unit: "workgroups",
        });
    }
    Ok([u32_param(OP, x)?, u32_param(OP, blocks)?, u32_param(OP, z)?])
}

fn gemm_launch(
    rec: &Recorder,
    d: &ConvDims,
    tile: Tile,
    epi: EpilogueWords,
) -> Result<(ConvGemmParams, [u32; 3])> {
    let pixels = d.pixels()?;
    let grid = tiled_grid(rec, pixels, tile, d.cout.div_ceil(4 * tile.channels))?;
    let u = |v: usize| u32_param(OP, v);
    let params = ConvGemmParams {
        pixels: u(pixels)?,
        out_hw: u(d.ho * d.wo)?,
        cin: u(d.cin)?,
        cout: u(d.cout)?,
        blocks: u(tile.blocks())?,
        flags: epi.flags,
        act: epi.act,
        post_act: epi.post_act,
        width: u(d.wo)?,
    };
    Ok((params, grid))
}

fn general_launch(
    rec: &Recorder,
    d: &ConvDims,
    spec: &Conv2d,
    tile: Tile,
    epi: EpilogueWords,
) -> Result<(ConvGeneralParams, [u32; 3])> {
    let pixels = d.pixels()?;
    let blocks = d.cout_g.div_ceil(4 * tile.channels);
    let grid = tiled_grid(rec, pixels, tile, spec.groups * blocks)?;
    let (s, p, dl) = (spec.stride, spec.padding, spec.dilation);
    let u = |v: usize| u32_param(OP, v);
    let params = ConvGeneralParams {
        pixels: u(pixels)?,
        out_hw: u(d.ho * d.wo)?,
        out_w: u(d.wo)?,
        blocks: u(blocks)?,
        cin: u(d.cin)?,
        cin_g: u(d.cin_g)?,
        cout_g: u(d.cout_g)?,
        cout: u(d.cout)?,
        in_h: u(d.h)?,
        in_w: u(d.w)?,
        kh: u(d.kh)?,
        kw: u(d.kw)?,
        sh: u(s.0)?,
        sw: u(s.1)?,
        ph: u(p.0)?,
        pw: u(p.1)?,
        dh: u(dl.0)?,
        dw: u(dl.1)?,
        tile_blocks: u(tile.blocks())?,
        flags: epi.flags,
        act: epi.act,
        post_act: epi.post_act,
    };
    Ok((params, grid))
}

fn mm_launch(
    rec: &Recorder,
    d: &ConvDims,
    spec: &Conv2d,
    tile: MmTile,
    epi: EpilogueWords,
) -> Result<(ConvMmParams, [u32; 3])> {
    let pixels = d.pixels()?;
    let blocks = d.cout_g.div_ceil(tile.channels());
    let grid = block_grid(rec, pixels.div_ceil(tile.pixels()), spec.groups * blocks)?;
    let (s, p, dl) = (spec.stride, spec.padding, spec.dilation);
    let u = |v: usize| u32_param(OP, v);
    let params = ConvMmParams {
        pixels: u(pixels)?,
        out_hw: u(d.ho * d.wo)?,
        out_w: u(d.wo)?,
        blocks: u(blocks)?,
        reduction: u(d.cin_g * d.kh * d.kw)?,
        cin: u(d.cin)?,
        cin_g: u(d.cin_g)?,
        cout_g: u(d.cout_g)?,
        cout: u(d.cout)?,
        in_h: u(d.h)?,
        in_w: u(d.w)?,
        kh: u(d.kh)?,
        kw: u(d.kw)?,
        sh: u(s.0)?,
        sw: u(s.1)?,
        ph: u(p.0)?,
        pw: u(p.1)?,
        dh: u(dl.0)?,
        dw: u(dl.1)?,
        flags: epi.flags,
        act: epi.act,
        post_act: epi.post_act,
    };
    Ok((params, grid))
}

/// How the depthwise kernel covers an `ho × wo` output plane: strips of `rows` output rows,
/// each row in `quads` quads of 4 columns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DepthwiseStrips {
    pub rows: usize,
    pub strips: usize,
    pub quads: usize,
}

impl DepthwiseStrips {
    /// Strips of at most `max_rows` rows (at least 1).
    pub fn of(ho: usize, wo: usize, max_rows: usize) -> Self {
        // As few strips as `max_rows` allows, evened out (at least one row: an empty plane
        // divides nothing by zero).
        let rows = ho.div_ceil(ho.div_ceil(max_rows.max(1)).max(1)).max(1);
        Self {
            rows,
            strips: ho.div_ceil(rows),
            quads: wo.div_ceil(4),
        }
    }

    /// The partial sums of Coordinate Attention's means per image of C channels
    /// (`conv2d_depthwise_pool.wgsl`): a row's over each quad, a column's over each strip.
    pub fn partials_per_image(&self, c: usize, ho: usize, wo: usize) -> usize {
        c * (ho * self.quads + self.strips * wo)
    }
}

/// The strip heights worth timing for a depthwise conv of `ho` output rows: those that cut
/// its planes differently.
fn depthwise_row_choices(ho: usize) -> impl Iterator<Item = usize> {
    let mut seen = Vec::new();
    DEPTHWISE_ROW_CHOICES.into_iter().filter(move |&rows| {
        let strips = DepthwiseStrips::of(ho, 1, rows).strips;
        let new = !seen.contains(&strips);
        seen.push(strips);
        new
    })
}

/// The tallest strips that give a GPU `GPU_DEPTHWISE_INVOCATIONS` (one row where none do).
fn gpu_depthwise_rows(d: &ConvDims) -> usize {
    let invocations = |rows: usize| {
        let s = DepthwiseStrips::of(d.ho, d.wo, rows);
        d.n.saturating_mul(d.cin)
            .saturating_mul(s.quads)
            .saturating_mul(s.strips)
    };
    depthwise_row_choices(d.ho)
        .find(|&rows| invocations(rows) >= GPU_DEPTHWISE_INVOCATIONS)
        .unwrap_or(1)
}

fn depthwise_launch(
    rec: &Recorder,
    d: &ConvDims,
    spec: &Conv2d,
    max_rows: usize,
    epi: EpilogueWords,
) -> Result<(ConvDepthwiseParams, [u32; 3])> {
    let (ho, wo) = (d.ho, d.wo);
    let DepthwiseStrips {
        rows,
        strips,
        quads,
    } = DepthwiseStrips::of(ho, wo, max_rows);
    let lanes = [d.n, d.cin, quads, strips]
        .into_iter()
        .try_fold(1usize, |acc, v| acc.checked_mul(v))
        .ok_or_else(|| {
            let out = d.out_shape();
            shape_err(OP, format!("output {out:?} needs too many invocations"))
        })?;
    let grid = rec.grid(lanes as u64)?;
    let (ph, pw) = spec.padding;
    let u = |v: usize| u32_param(OP, v);
    let params = ConvDepthwiseParams {
        lanes: u(lanes)?,
        channels: u(d.cin)?,
        in_h: u(d.h)?,
        in_w: u(d.w)?,
        out_h: u(ho)?,
        out_w: u(wo)?,
        quads: u(quads)?,
        strips: u(strips)?,
        rows: u(rows)?,
        ph: u(ph)?,
        pw: u(pw)?,
        flags: epi.flags,
        act: epi.act,
        post_act: epi.post_act,
    };
    Ok((params, grid))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn depthwise(n: usize, c: usize, hw: usize) -> ConvDims {
        let spec = Conv2d::new(1, 1).with_groups(c);
        spec.dims(&[n, c, hw, hw], &[c, 1, 3, 3]).unwrap()
    }

    /// A GPU's depthwise strips are the tallest that still give 256 workgroups: MobileNetV2's
    /// 112×112×96 map runs strips of 8 rows (5 strips of 23 would give 13,440 invocations),
    /// its 14×14×576 and 7×7×960 maps single rows, and a batch of 64 the tallest strips.
    #[test]
    fn gpu_depthwise_strips_are_the_tallest_that_fill_the_device() {
        assert_eq!(gpu_depthwise_rows(&depthwise(1, 96, 112)), 8);
        assert_eq!(gpu_depthwise_rows(&depthwise(1, 960, 7)), 1);
        assert_eq!(gpu_depthwise_rows(&depthwise(1, 576, 14)), 1);
        assert_eq!(gpu_depthwise_rows(&depthwise(64, 960, 7)), DEPTHWISE_ROWS);
        let d = depthwise(1, 576, 14);
        let s = DepthwiseStrips::of(d.ho, d.wo, gpu_depthwise_rows(&d));
        assert!(d.cin * s.quads * s.strips >= GPU_DEPTHWISE_INVOCATIONS);
    }

    /// The tuner times each strip height that cuts the planes differently, once.
    #[test]
    fn depthwise_row_choices_cut_planes_differently() {
        let strips = |ho: usize| -> Vec<usize> { depthwise_row_choices(ho).collect() };
        assert_eq!(strips(7), [24, 4, 2, 1]);
        assert_eq!(strips(112), [24, 8, 4, 2, 1]);
        assert_eq!(strips(1), [24]);
    }
}
