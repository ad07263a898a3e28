//! Coordinate Attention's own ops (`crate::ops::coord`): pool, gates, apply — one dispatch each.

use super::conv::PoolParts;
use super::triplet::{axis_pool_as, plane_fits, PoolKernel, PoolRole, Target};
use super::{choose_layout, expect_shape, group_grid, next_start, u32_param, u32x4, Layout};
use crate::error::{shape_err, Result};
use crate::gpu::{Binding, Gpu, GpuTensor, Kernel, Recorder, WG};
use crate::graph::Op;
use crate::ops::conv::Conv2d;
use crate::ops::coord::{CoordApply, CoordGateSpec, CoordPool};
use crate::ops::triplet::{ZAxis, ZPool};
use crate::tune::OpCase;
use crate::{bindings, kernel, wgsl_struct};

wgsl_struct! {
    /// One direction's gates (H, then W).
    pub struct CoordRole {
        /// start, tiles per image, position tiles, positions (H or W)
        head: [u32; 4],
        /// first row of f, first output, first weight, first bias
        offs: [u32; 4],
    }
}

wgsl_struct! {
    /// Both directions' `sigmoid(conv(f))` in one dispatch; `rows` = H + W.
    pub struct CoordGatesParams { n: u32, c: u32, mip: u32, rows: u32, role: [CoordRole; 2] }
}

wgsl_struct! {
    pub struct CoordApplyParams { n: u32, c: u32, h: u32, w: u32 }
}

/// The bindings of `coord_gates_io.wgsl`, which both layouts' kernels share.
const GATES_BINDINGS: &[Binding] = bindings![read f, read weight, read bias, write y];
pub static GATES: Kernel = kernel!(
    "coord_gates", "coord_gates_io.wgsl", "coord_gates.wgsl";
    CoordGatesParams;
    GATES_BINDINGS
);
pub static GATES_FLAT: Kernel = kernel!(
    "coord_gates_flat", "coord_gates_io.wgsl", "coord_gates_flat.wgsl";
    CoordGatesParams;
    GATES_BINDINGS
);
/// The bindings of `coord_apply_io.wgsl`, which both layouts' kernels share.
const APPLY_BINDINGS: &[Binding] = bindings![read x, read gates, write y];
pub static APPLY: Kernel = kernel!(
    "coord_apply", "coord_apply_io.wgsl", "coord_apply.wgsl";
    CoordApplyParams;
    APPLY_BINDINGS
);
pub static APPLY_FLAT: Kernel = kernel!(
    "coord_apply_flat", "coord_apply_io.wgsl", "coord_apply_flat.wgsl";
    CoordApplyParams;
    APPLY_BINDINGS
);
wgsl_struct! {
    /// The means from a depthwise conv's partial sums (`conv::DepthwiseStrips` of the plane).
    pub struct CoordPoolFinishParams { n: u32, c: u32, h: u32, w: u32, quads: u32, strips: u32 }
}

pub static FINISH: Kernel = kernel!(
    "coord_pool_finish", "coord_pool_finish.wgsl", "coord_parts.wgsl";
    CoordPoolFinishParams;
    bindings![read partials: f32, write y]
);
wgsl_struct! {
    /// From the depthwise conv's partial sums to the gates (`coord_excite.wgsl`): the plane's
    /// `DepthwiseStrips`, and conv1's `mip` outputs.
    pub struct CoordExciteParams {
        n: u32,
        c: u32,
        h: u32,
        w: u32,
        mip: u32,
        quads: u32,
        strips: u32,
        _pad: u32,
    }
}

pub static EXCITE: Kernel = kernel!(
    "coord_excite", "coord_excite.wgsl", "coord_parts.wgsl";
    CoordExciteParams;
    bindings![
        read partials: f32,
        read conv_weight,
        read conv_bias,
        read gate_weight,
        read gate_bias,
        write y
    ]
);

pub const KERNELS: &[&Kernel] = &[&GATES, &GATES_FLAT, &APPLY, &APPLY_FLAT, &FINISH, &EXCITE];

/// The most channels and conv1 outputs `coord_excite` holds in workgroup memory (`MAX_C`,
/// `MAX_MIP` in its shader: 12 KiB of the 16 KiB every WebGPU device has).
const EXCITE_MAX_CHANNELS: usize = 1024;
const EXCITE_MAX_MIP: usize = 32;

/// Whether `coord_excite` can run a Coordinate Attention of `channels` whose conv1 is `spec`
/// with a weight of shape `weight`: a 1×1 conv (BN folded in, any activation) of at most
/// `EXCITE_MAX_MIP` outputs on at most `EXCITE_MAX_CHANNELS` channels.
pub fn excite_fits(spec: &Conv2d, weight: &[usize], channels: usize) -> bool {
    spec.stride == (1, 1)
        && spec.padding == (0, 0)
        && spec.groups == 1
        && spec.post_act == crate::ops::Activation::None
        && weight.get(2..) == Some(&[1, 1][..])
        && weight.first().is_some_and(|&mip| mip <= EXCITE_MAX_MIP)
        && channels <= EXCITE_MAX_CHANNELS
}

/// Coordinate Attention's gates `[N, C·(H+W)]` of x `[N, C, H, W]` straight from the partial
/// sums the depthwise conv that computed x wrote: the pool's finish, conv1 (`conv_spec`: a 1×1
/// conv of `conv_weight [mip, C, 1, 1]` with `conv_bias`, its BN folded in) and the gates, in
/// one dispatch of a workgroup per pooled position.
#[allow(clippy::too_many_arguments)]
pub fn coord_excite(
    rec: &mut Recorder,
    x_shape: &[usize],
    partials: &PoolParts,
    conv_weight: &GpuTensor,
    conv_bias: &GpuTensor,
    conv_spec: &Conv2d,
    gates: (&GpuTensor, &GpuTensor),
    out: &GpuTensor,
    spec: &CoordGateSpec,
) -> Result<()> {
    let op = "coord_excite";
    let pooled = CoordPool.out_shape(x_shape)?;
    let f = conv_spec.output_shape(&pooled, conv_weight.shape())?;
    let (gate_weight, gate_bias) = gates;
    expect_shape(
        op,
        out,
        &spec.out_shape(&f, gate_weight.shape(), gate_bias.shape())?,
    )?;
    partials.check(op, x_shape)?;
    let [n, c, h, w] = [0, 1, 2, 3].map(|i| x_shape[i]);
    let mip = f[1];
    if !excite_fits(conv_spec, conv_weight.shape(), c) || conv_bias.shape() != [mip] {
        return Err(shape_err(
            op,
            format!(
                "needs a biased 1×1 conv of at most {EXCITE_MAX_MIP} outputs on at most \
                 {EXCITE_MAX_CHANNELS} channels, got {conv_spec:?}, weight {:?}, bias {:?} \
                 on {c} channels",
                conv_weight.shape(),
                conv_bias.shape()
            ),
        ));
    }
    let strips = partials.strips(x_shape)?;
    let u = |v: usize| u32_param(op, v);
    let params = CoordExciteParams {
        n: u(n)?,
        c: u(c)?,
        h: u(h)?,
        w: u(w)?,
        mip: u(mip)?,
        quads: u(strips.quads)?,
        strips: u(strips.strips)?,
        _pad: 0,
    };
    // `Recorder::grid` counts 64-wide workgroups: one per pooled position of each image.
    let grid = rec.grid((n * (h + w)) as u64 * u64::from(WG))?;
    let constants = [("ACT", conv_spec.act.code() as f64)];
    let bindings = [
        &partials.sums,
        conv_weight,
        conv_bias,
        gate_weight,
        gate_bias,
        out,
    ];
    rec.dispatch(&EXCITE, &constants, &params, &bindings, grid)
}

/// The pool variants Coordinate Attention can run on: its planes streamed once (no subgroup
/// form), or a line per mean, the long ones optionally reduced by workgroups.
pub fn pool_candidates() -> Vec<PoolKernel> {
    vec![PoolKernel::Planes, PoolKernel::Lines, PoolKernel::Reduce]
}

/// The pool variant `gpu` runs without measurements: the streamed planes on a software
/// device, as before variants existed; lines with workgroup reductions on a GPU.
pub fn pool_heuristic(gpu: &Gpu) -> PoolKernel {
    if gpu.is_software() {
        PoolKernel::Planes
    } else {
        PoolKernel::Reduce
    }
}

/// `[N,C,H+W,1]`: both directional means, on the variant the device's tuning cache or
/// heuristic chooses.
pub fn coord_pool(
    rec: &mut Recorder,
    x: &GpuTensor,
    out: &GpuTensor,
    spec: &CoordPool,
) -> Result<()> {
    let gpu = rec.gpu();
    let case = OpCase::CoordPool {
        input: x.shape().to_vec(),
    };
    let kernel = gpu.tuning().choose(
        &case,
        gpu.precision(),
        |k: &PoolKernel| pool_candidates().contains(k),
        || pool_heuristic(gpu),
    );
    coord_pool_as(rec, x, out, spec, kernel)
}

/// `coord_pool` of x `[N, C, H, W]` from the partial sums the depthwise conv that computed x
/// wrote (`conv::conv2d_pooling`): x itself is not read.
pub fn coord_pool_finish(
    rec: &mut Recorder,
    x_shape: &[usize],
    partials: &PoolParts,
    out: &GpuTensor,
    spec: &CoordPool,
) -> Result<()> {
    let op = "coord_pool_finish";
    expect_shape(op, out, &spec.out_shape(x_shape)?)?;
    partials.check(op, x_shape)?;
    let [n, c, h, w] = [0, 1, 2, 3].map(|i| x_shape[i]);
    let strips = partials.strips(x_shape)?;
    let [n, c, h, w] = u32x4(op, [n, c, h, w])?;
    let params = CoordPoolFinishParams {
        n,
        c,
        h,
        w,
        quads: u32_param(op, strips.quads)?,
        strips: u32_param(op, strips.strips)?,
    };
    let grid = rec.grid(u64::from(n) * u64::from(c) * u64::from(h + w))?;
    rec.dispatch(&FINISH, &[], &params, &[&partials.sums, out], grid)
}

/// `coord_pool` on `kernel` (one of `pool_candidates`): the streamed planes in one dispatch
/// where they fit, else the two means as lines.
pub fn coord_pool_as(
    rec: &mut Recorder,
    x: &GpuTensor,
    out: &GpuTensor,
    spec: &CoordPool,
    kernel: PoolKernel,
) -> Result<()> {
    expect_shape("coord_pool", out, &spec.out_shape(x.shape())?)?;
    if !pool_candidates().contains(&kernel) {
        return Err(crate::error::Error::Invalid(format!(
            "coord_pool has no variant {kernel}"
        )));
    }
    let (h, w) = (x.shape()[2], x.shape()[3]);
    // z_h[c, h] sits at c·(H+W) + h, z_w[c, w] at c·(H+W) + H + w.
    let z_h = Target {
        max_at: 0,
        mean_at: 0,
        strides: [1, h + w],
    };
    let z_w = Target {
        max_at: 0,
        mean_at: h,
        strides: [h + w, 1],
    };
    let roles = if kernel == PoolKernel::Planes && plane_fits(x.shape()) {
        vec![PoolRole::Plane {
            rows: z_h,
            cols: z_w,
        }]
    } else {
        // The Z-pool walks: over W, output (a, b) = (h, c); over H, (c, w).
        vec![
            PoolRole::Line {
                walk: ZPool { axis: ZAxis::W }.layout(x.shape())?,
                to: z_h,
            },
            PoolRole::Line {
                walk: ZPool { axis: ZAxis::H }.layout(x.shape())?,
                to: z_w,
            },
        ]
    };
    let wide = kernel == PoolKernel::Reduce;
    axis_pool_as(rec, x, out, &roles, false, &kernel.to_string(), wide)
}

/// `[N, C·(H+W)]`: `a_h` then `a_w` per image, both halves in one dispatch on the layout the
/// device chooses.
pub fn coord_gates(
    rec: &mut Recorder,
    f: &GpuTensor,
    weight: &GpuTensor,
    bias: &GpuTensor,
    out: &GpuTensor,
    spec: &CoordGateSpec,
) -> Result<()> {
    let layout = choose_layout(rec, Op::CoordGates(*spec), &[f, weight, bias]);
    coord_gates_as(rec, f, weight, bias, out, spec, layout)
}

/// `coord_gates` on `layout`: tiles of 8 channels × 8 positions, or a gate per invocation.
pub fn coord_gates_as(
    rec: &mut Recorder,
    f: &GpuTensor,
    weight: &GpuTensor,
    bias: &GpuTensor,
    out: &GpuTensor,
    spec: &CoordGateSpec,
    layout: Layout,
) -> Result<()> {
    let op = "coord_gates";
    expect_shape(
        op,
        out,
        &spec.out_shape(f.shape(), weight.shape(), bias.shape())?,
    )?;
    let [_, mip, c] = spec.dims(f.shape(), weight.shape(), bias.shape())?;
    let (h, w) = (spec.h, spec.w);
    let (kernel, tile) = match layout {
        Layout::Tiled => (&GATES, 8),
        Layout::PerOutput => (&GATES_FLAT, 1),
    };
    rec.batched(&[f], out, |rec, ins, out| {
        let n = ins[0].shape()[0];
        let u = |v: usize| u32_param(op, v);
        let mut params = CoordGatesParams {
            n: u(n)?,
            c: u(c)?,
            mip: u(mip)?,
            rows: u(h + w)?,
            ..Default::default()
        };
        let mut start = 0;
        // (positions, first row of f, first output, part)
        for (count, from, to, part) in [(h, 0, 0, 0), (w, h, c * h, 1)] {
            let position_tiles = count.div_ceil(tile);
            let tiles = c.div_ceil(tile) * position_tiles;
            params.role[part] = CoordRole {
                head: u32x4(op, [start, tiles, position_tiles, count])?,
                offs: u32x4(op, [from, to, part * c * mip, part * c])?,
            };
            start = next_start(start + n * tiles);
        }
        let grid = match layout {
            Layout::Tiled => group_grid(rec, start)?,
            Layout::PerOutput => rec.grid(start as u64)?,
        };
        rec.dispatch(kernel, &[], &params, &[ins[0], weight, bias, out], grid)
    })
}

/// `(x · a_w) · a_h` from the packed gates, on the layout the device chooses.
pub fn coord_apply(
    rec: &mut Recorder,
    x: &GpuTensor,
    gates: &GpuTensor,
    out: &GpuTensor,
    spec: &CoordApply,
) -> Result<()> {
    let layout = choose_layout(rec, Op::CoordApply(*spec), &[x, gates]);
    coord_apply_as(rec, x, gates, out, spec, layout)
}

/// `coord_apply` on `layout`: tiles of 8 rows × 4 columns, or an element per invocation.
pub fn coord_apply_as(
    rec: &mut Recorder,
    x: &GpuTensor,
    gates: &GpuTensor,
    out: &GpuTensor,
    spec: &CoordApply,
    layout: Layout,
) -> Result<()> {
    let op = "coord_apply";
    spec.check(x.shape(), gates.shape())?;
    expect_shape(op, out, x.shape())?;
    rec.batched(&[x, gates], out, |rec, ins, out| {
        let [n, c, h, w] = [0, 1, 2, 3].map(|i| out.shape()[i]);
        let (kernel, invocations) = match layout {
            Layout::Tiled => (&APPLY, n * c * h.div_ceil(8) * w.div_ceil(4)),
            Layout::PerOutput => (&APPLY_FLAT, out.numel()),
        };
        let [n, c, h, w] = u32x4(op, [n, c, h, w])?;
        let params = CoordApplyParams { n, c, h, w };
        let grid = rec.grid(invocations as u64)?;
        rec.dispatch(kernel, &[], &params, &[ins[0], ins[1], out], grid)
    })
}
