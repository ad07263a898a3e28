//! Convolution kernels (GEMM, depthwise, general implicit GEMM, the subgroup variants of the
//! GEMM-shaped ones, and their tiles) against the CPU reference, the routing between them, and
//! BatchNorm folding. Every case runs on the kernel `conv2d` picks for the test device and,
//! where that is a subgroup kernel, again on the kernel it picks without subgroups (as on a
//! device or browser without them), so both paths are checked on the same shapes.

mod common;

use common::Rng;
use common::*;
use gaze::gpu::{Gpu, GpuOptions, GpuTensor, LimitOverrides, Recorder};
use gaze::kernels::conv::{self as gpu_conv, ConvKernel, MmTile, Tile};
use gaze::ops::conv::{fold_batchnorm, BatchNorm, Conv2d, Epilogue};
use gaze::ops::Activation;
use gaze::reference::conv as cpu;
use gaze::Tensor;
use proptest::prelude::*;

/// Which epilogue operands a case has (the activations live in `Conv2d`).
#[derive(Clone, Copy, Debug, Default)]
struct Parts {
    bias: bool,
    affine: bool,
    residual: bool,
}

const PLAIN: Parts = Parts {
    bias: false,
    affine: false,
    residual: false,
};

/// Host operands of one case.
struct Operands {
    x: Tensor,
    w: Tensor,
    bias: Option<Tensor>,
    affine: Option<(Tensor, Tensor)>,
    residual: Option<Tensor>,
}

impl Operands {
    /// Weights scaled by 1/sqrt(fan-in) keep outputs around ±2, where every activation
    /// (ReLU6 and h_swish clamps, the sigmoid's curve) has both flat and sloped parts.
    fn random(rng: &mut Rng, x: &[usize], w: &[usize], spec: &Conv2d, parts: Parts) -> Self {
        let out = spec.output_shape(x, w).unwrap();
        let fan_in = (w[1] * w[2] * w[3]) as f32;
        let a = 6.0 / fan_in.sqrt();
        let cout = w[0];
        Self {
            x: rng.tensor(x),
            w: rng.tensor_in(w, -a, a),
            bias: parts.bias.then(|| rng.tensor(&[cout])),
            affine: parts
                .affine
                .then(|| (rng.tensor_in(&[cout], -1.5, 1.5), rng.tensor(&[cout]))),
            residual: parts.residual.then(|| rng.tensor(&out)),
        }
    }

    fn epilogue(&self) -> Epilogue<'_, Tensor> {
        Epilogue {
            bias: self.bias.as_ref(),
            affine: self.affine.as_ref().map(|(s, t)| (s, t)),
            residual: self.residual.as_ref(),
        }
    }
}

/// The same operands on the device.
struct DeviceOperands {
    x: GpuTensor,
    w: GpuTensor,
    bias: Option<GpuTensor>,
    affine: Option<(GpuTensor, GpuTensor)>,
    residual: Option<GpuTensor>,
}

impl DeviceOperands {
    fn upload(g: &Gpu, h: &Operands) -> Self {
        let up = |t: &Tensor| g.upload(t).expect("upload");
        Self {
            x: up(&h.x),
            w: up(&h.w),
            bias: h.bias.as_ref().map(up),
            affine: h.affine.as_ref().map(|(s, t)| (up(s), up(t))),
            residual: h.residual.as_ref().map(up),
        }
    }

    fn epilogue(&self) -> Epilogue<'_, GpuTensor> {
        Epilogue {
            bias: self.bias.as_ref(),
            affine: self.affine.as_ref().map(|(s, t)| (s, t)),
            residual: self.residual.as_ref(),
        }
    }

    fn run(&self, g: &Gpu, spec: &Conv2d, plan: ConvKernel) -> Tensor {
        let shape = spec.output_shape(self.x.shape(), self.w.shape()).unwrap();
        run_on(g, &shape, |rec, out| {
            gpu_conv::conv2d_with(rec, &self.x, &self.w, &self.epilogue(), out, spec, plan)
        })
    }
}

/// Every kernel a plan may run this conv on: the register tile picked with subgroups (where
/// `g` has them) and without, and every block of the workgroup-memory GEMM (whether the tuner
/// would try it here or not).
fn plans(g: &Gpu, x: &[usize], w: &[usize], spec: &Conv2d) -> Vec<ConvKernel> {
    let picked = gpu_conv::kernel_for(x, w, spec, gpu_conv::subgroup_lanes(g)).unwrap();
    let plain = gpu_conv::kernel_for(x, w, spec, None).unwrap();
    let mut all = vec![picked, plain];
    all.dedup();
    // The shorter strips a GPU's depthwise convs run on.
    if let ConvKernel::Depthwise { stride, .. } = picked {
        all.extend([8, 4, 2, 1].map(|rows| ConvKernel::Depthwise { stride, rows }));
    }
    all.extend(MmTile::ALL.map(ConvKernel::Mm));
    all
}

/// Runs one configuration on the GPU with each of `plans` and on the CPU, and compares them.
#[allow(clippy::too_many_arguments)]
fn check_plans(
    g: &Gpu,
    label: &str,
    seed: u64,
    x: &[usize],
    w: &[usize],
    spec: &Conv2d,
    parts: Parts,
    plans: &[ConvKernel],
) {
    let mut rng = Rng::new(seed);
    let host = Operands::random(&mut rng, x, w, spec, parts);
    let want = cpu::conv2d(&host.x, &host.w, &host.epilogue(), spec).unwrap();
    let device = DeviceOperands::upload(g, &host);
    for &plan in plans {
        let got = device.run(g, spec, plan);
        let what = format!("{label} on {plan:?}: x {x:?} w {w:?} {spec:?} {parts:?}");
        assert_close(&got, &want, FP32_REL_L2, &what);
    }
}

/// Runs one configuration on the GPU (with and without subgroups) and on the CPU.
fn check_on(
    g: &Gpu,
    label: &str,
    seed: u64,
    x: &[usize],
    w: &[usize],
    spec: &Conv2d,
    parts: Parts,
) {
    check_plans(g, label, seed, x, w, spec, parts, &plans(g, x, w, spec));
}

fn check(label: &str, seed: u64, x: &[usize], w: &[usize], spec: &Conv2d, parts: Parts) {
    check_on(gpu(), label, seed, x, w, spec, parts);
}

const GEMM: &str = "conv2d_gemm";
const DEPTHWISE: &str = "conv2d_depthwise";
const GENERAL: &str = "conv2d_general";

/// A geometry of the table: channels, kernel, conv parameters, whether it also runs on 224²,
/// and the kernel it must be routed to.
struct Geometry {
    name: &'static str,
    cin: usize,
    cout: usize,
    k: (usize, usize),
    spec: Conv2d,
    large: bool,
    kernel: &'static str,
}

fn geometries() -> Vec<Geometry> {
    let g = |name, cin, cout, k, spec, large, kernel| Geometry {
        name,
        cin,
        cout,
        k,
        spec,
        large,
        kernel,
    };
    let mut non_square = Conv2d::new(1, 0);
    non_square.padding = (0, 1);
    let mut mixed = Conv2d::new(1, 1);
    mixed.stride = (2, 1);
    mixed.dilation = (1, 2);
    mixed.padding = (2, 4);
    let mut dw_uneven_pad = Conv2d::new(1, 0).with_groups(6);
    dw_uneven_pad.padding = (2, 1);
    let mut dw_mixed_stride = Conv2d::new(1, 1).with_groups(6);
    dw_mixed_stride.stride = (2, 1);
    let grouped = |groups: usize, s, p| Conv2d::new(s, p).with_groups(groups);
    vec![
        g(
            "stem 7×7 s2 p3",
            3,
            12,
            (7, 7),
            Conv2d::new(2, 3),
            true,
            GENERAL,
        ),
        g("3×3 s1 p1", 5, 7, (3, 3), Conv2d::new(1, 1), true, GENERAL),
        g(
            "3×3 s2 p1",
            7,
            12,
            (3, 3),
            Conv2d::new(2, 1),
            false,
            GENERAL,
        ),
        g(
            "3×3 s1 p1 wide",
            9,
            61,
            (3, 3),
            Conv2d::new(1, 1),
            false,
            GENERAL,
        ),
        g("1×1 s1", 12, 5, (1, 1), Conv2d::new(1, 0), true, GEMM),
        g(
            "1×1 s1 wide",
            20,
            61,
            (1, 1),
            Conv2d::new(1, 0),
            false,
            GEMM,
        ),
        g("1×1 s2", 5, 12, (1, 1), Conv2d::new(2, 0), false, GENERAL),
        g("1×1 p1", 5, 6, (1, 1), Conv2d::new(1, 1), false, GENERAL),
        g(
            "1×1 g2",
            6,
            4,
            (1, 1),
            Conv2d::new(1, 0).with_groups(2),
            false,
            GENERAL,
        ),
        g(
            "dw 3×3 s1",
            12,
            12,
            (3, 3),
            grouped(12, 1, 1),
            true,
            DEPTHWISE,
        ),
        g("dw 3×3 s2", 7, 7, (3, 3), grouped(7, 2, 1), true, DEPTHWISE),
        g(
            "dw 3×3 s2 p2",
            5,
            5,
            (3, 3),
            grouped(5, 2, 2),
            false,
            DEPTHWISE,
        ),
        g(
            "dw 3×3 p(2,1)",
            6,
            6,
            (3, 3),
            dw_uneven_pad,
            false,
            DEPTHWISE,
        ),
        g(
            "dw 3×3 s(2,1)",
            6,
            6,
            (3, 3),
            dw_mixed_stride,
            false,
            GENERAL,
        ),
        g("dw 3×3 s3", 5, 5, (3, 3), grouped(5, 3, 1), false, GENERAL),
        g(
            "dw 3×3 d2",
            5,
            5,
            (3, 3),
            grouped(5, 1, 2).with_dilation(2),
            false,
            GENERAL,
        ),
        g("dw 5×5 p2", 5, 5, (5, 5), grouped(5, 1, 2), false, GENERAL),
        g("dw ×2 3×3", 4, 8, (3, 3), grouped(4, 1, 1), false, GENERAL),
        g(
            "grouped 3×3 g4",
            12,
            8,
            (3, 3),
            grouped(4, 1, 1),
            false,
            GENERAL,
        ),
        g(
            "grouped 3×3 g32",
            64,
            64,
            (3, 3),
            grouped(32, 1, 1),
            false,
            GENERAL,
        ),
        g(
            "dilated 3×3 d2 p2",
            5,
            7,
            (3, 3),
            Conv2d::new(1, 2).with_dilation(2),
            true,
            GENERAL,
        ),
        g("1×3 p(0,1)", 3, 5, (1, 3), non_square, false, GENERAL),
        g("3×5 mixed", 3, 19, (3, 5), mixed, false, GENERAL),
        g(
            "gate 2→1 7×7",
            2,
            1,
            (7, 7),
            Conv2d::new(1, 3),
            false,
            GENERAL,
        ),
    ]
}

/// The kernel `conv2d` picks on the test device, named without the `_sg` of a subgroup
/// variant (`subgroup_routing` checks which variant).
fn routed(x: &[usize], w: &[usize], spec: &Conv2d) -> &'static str {
    let lanes = gpu_conv::subgroup_lanes(gpu());
    let name = gpu_conv::kernel_for(x, w, spec, lanes)
        .unwrap()
        .kernel()
        .name;
    name.strip_suffix("_sg").unwrap_or(name)
}

#[test]
fn geometry_table() {
    let sizes: [(usize, usize, usize); 4] = [(3, 1, 1), (2, 7, 5), (3, 13, 17), (2, 224, 224)];
    for (i, geo) in geometries().iter().enumerate() {
        let w = [geo.cout, geo.cin / geo.spec.groups, geo.k.0, geo.k.1];
        for &(n, h, wd) in &sizes {
            if h == 224 && !geo.large {
                continue;
            }
            let x = [n, geo.cin, h, wd];
            assert_eq!(routed(&x, &w, &geo.spec), geo.kernel, "{}: {x:?}", geo.name);
            check(geo.name, i as u64, &x, &w, &geo.spec, PLAIN);
        }
    }
}

#[test]
fn one_by_one_with_and_without_bias() {
    for bias in [false, true] {
        let parts = Parts { bias, ..PLAIN };
        check(
            "1×1 s1",
            20,
            &[2, 12, 7, 5],
            &[5, 12, 1, 1],
            &Conv2d::new(1, 0),
            parts,
        );
        check(
            "1×1 s2",
            21,
            &[3, 5, 13, 17],
            &[12, 5, 1, 1],
            &Conv2d::new(2, 0),
            parts,
        );
    }
}

/// Every operand combination with every activation before and after the residual, on each
/// of the three kernels (each has its own copy of the epilogue).
#[test]
fn every_epilogue_combination() {
    let x = [2, 5, 7, 5];
    let cases = [
        (GEMM, [7, 5, 1, 1], Conv2d::new(1, 0)),
        (DEPTHWISE, [5, 1, 3, 3], Conv2d::new(1, 1).with_groups(5)),
        (GENERAL, [7, 5, 3, 3], Conv2d::new(1, 1)),
    ];
    let mut seed = 100;
    for (kernel, w, geometry) in cases {
        assert_eq!(routed(&x, &w, &geometry), kernel);
        for bias in [false, true] {
            for affine in [false, true] {
                for residual in [false, true] {
                    let parts = Parts {
                        bias,
                        affine,
                        residual,
                    };
                    let posts: &[Activation] = if residual {
                        &Activation::ALL
                    } else {
                        &[Activation::None]
                    };
                    for act in Activation::ALL {
                        for &post in posts {
                            let spec = geometry.with_act(act).with_post_act(post);
                            seed += 1;
                            check(kernel, seed, &x, &w, &spec, parts);
                        }
                    }
                }
            }
        }
    }
}

const ALL_PARTS: Parts = Parts {
    bias: true,
    affine: true,
    residual: true,
};

/// Every plain tile of the two GEMM-shaped kernels, and shared tiles from 1 to 16 channel
/// quads (16 uses every accumulator) with every pixel count, each on two channel blocks (the
/// second partial) and pixel counts that leave the last subgroup partly idle. The reductions
/// (13 input channels, 11 per group) end in a partial chunk of 8-lane subgroups.
#[test]
fn tiles_of_the_gemm_kernels() {
    let g = gpu();
    let gemm = Conv2d::new(1, 0)
        .with_act(Activation::HSwish)
        .with_post_act(Activation::Relu);
    let general = Conv2d {
        padding: (1, 1),
        ..gemm.with_groups(2)
    };
    let mut tiles: Vec<Tile> = [1, 2, 4, 8]
        .into_iter()
        .flat_map(|c| [1, 2, 4].map(|p| Tile::plain(c, p)))
        .collect();
    if gpu_conv::subgroup_lanes(g).is_some() {
        let shared = [
            (1, 4),
            (2, 1),
            (3, 2),
            (5, 4),
            (8, 4),
            (11, 2),
            (13, 1),
            (16, 2),
            (16, 4),
        ];
        tiles.extend(shared.map(|(c, p)| Tile::shared(c, p)));
    }
    let mut seed = 400;
    for tile in tiles {
        let cout = 4 * tile.channels + 3;
        seed += 1;
        let (x, w) = ([2, 13, 5, 7], [cout, 13, 1, 1]);
        check_plans(
            g,
            "gemm tile",
            seed,
            &x,
            &w,
            &gemm,
            ALL_PARTS,
            &[ConvKernel::Gemm(tile)],
        );
        seed += 1;
        let (x, w) = ([1, 22, 6, 5], [2 * cout, 11, 3, 3]);
        let plan = [ConvKernel::General(tile)];
        check_plans(g, "general tile", seed, &x, &w, &general, ALL_PARTS, &plan);
    }
}

/// The tiles the launcher picks for the layers that dominate the networks. Plain: the largest
/// almost everywhere (it measured fastest on all of them), fewer pixels on 1×1 maps, fewer
/// channels where a layer has few. Shared: the fastest of every shared tile on each layer in
/// `examples/conv_layers.rs --sweep` on lavapipe: 64 channels × 16 pixels on large maps
/// (per input channel 24 loads for 1,024 FMAs), × 8 on 7×7 maps (fewer idle lanes), channel
/// counts that divide the layer's where it has few.
#[test]
fn tiles_of_network_layers() {
    let tile = Tile::plain;
    assert_eq!(Tile::choose(64, 1, 56 * 56, 256), tile(8, 4));
    assert_eq!(Tile::choose(64, 1, 56 * 56, 64 * 9), tile(8, 4));
    assert_eq!(Tile::choose(512, 1, 7 * 7, 512 * 9), tile(8, 4));
    assert_eq!(Tile::choose(160, 1, 7 * 7, 960), tile(8, 4));
    assert_eq!(Tile::choose(64, 1, 1, 64), tile(8, 1));
    assert_eq!(Tile::choose(16, 1, 112 * 112, 32), tile(4, 4));
    assert_eq!(Tile::choose(1, 1, 56 * 56, 2 * 49), tile(1, 4));

    let shared = Tile::shared;
    let pick = |cout, pixels, cin, taps| Tile::choose_shared(cout, 1, pixels, cin, taps, 8);
    assert_eq!(pick(64, 56 * 56, 256, 1), shared(16, 4));
    assert_eq!(pick(64, 56 * 56, 64, 9), shared(16, 4));
    assert_eq!(pick(256, 14 * 14, 1024, 1), shared(16, 4));
    assert_eq!(pick(64, 112 * 112, 3, 49), shared(16, 4));
    assert_eq!(pick(512, 7 * 7, 512, 9), shared(16, 2));
    assert_eq!(pick(2048, 7 * 7, 512, 1), shared(16, 2));
    assert_eq!(pick(160, 7 * 7, 960, 1), shared(14, 2));
    assert_eq!(pick(144, 56 * 56, 24, 1), shared(12, 4));
    assert_eq!(pick(24, 56 * 56, 144, 1), shared(6, 4));
    assert_eq!(pick(1, 56 * 56, 2, 49), shared(1, 4));
}

/// On a device with subgroups the GEMM-shaped convs run on the subgroup kernels, and without
/// subgroups on the plain ones; depthwise convs on the depthwise kernel either way.
#[test]
fn subgroup_routing() {
    let lanes = gpu_conv::subgroup_lanes(gpu());
    let x = [1, 16, 9, 9];
    let cases = [
        ([32, 16, 1, 1], Conv2d::new(1, 0), "conv2d_gemm"),
        ([32, 16, 3, 3], Conv2d::new(1, 1), "conv2d_general"),
        ([16, 1, 3, 3], Conv2d::new(1, 1).with_groups(16), DEPTHWISE),
    ];
    for (w, spec, plain) in cases {
        let picked = gpu_conv::kernel_for(&x, &w, &spec, lanes).unwrap();
        let without = gpu_conv::kernel_for(&x, &w, &spec, None).unwrap();
        assert_eq!(without.kernel().name, plain);
        let shared = matches!(picked, ConvKernel::Gemm(t) | ConvKernel::General(t) if t.shared);
        assert_eq!(shared, lanes.is_some() && plain != DEPTHWISE, "{picked:?}");
        assert!(picked.kernel().name.starts_with(plain));
    }
    // lavapipe has subgroups, so the subgroup kernels are exercised in CI.
    if gpu().adapter_name().contains("llvmpipe") {
        assert_eq!(lanes, Some(8));
    }
}

/// A kernel forced onto a conv it cannot run is an error, not a wrong result.
#[test]
fn misfit_kernels_are_errors() {
    let g = gpu();
    let x = g.empty(&[1, 8, 9, 9]).unwrap();
    let w3 = g.empty(&[8, 8, 3, 3]).unwrap();
    let w1 = g.empty(&[8, 8, 1, 1]).unwrap();
    let dw = g.empty(&[8, 1, 3, 3]).unwrap();
    let out = g.empty(&[1, 8, 9, 9]).unwrap();
    let same = Conv2d::new(1, 1);
    let cases = [
        (&w3, same, ConvKernel::Gemm(Tile::plain(2, 2))),
        (&w1, Conv2d::new(1, 0), ConvKernel::Gemm(Tile::plain(9, 2))),
        (
            &w1,
            Conv2d::new(1, 0),
            ConvKernel::Gemm(Tile::shared(17, 1)),
        ),
        (&w3, same, ConvKernel::General(Tile::plain(1, 5))),
        (
            &w3,
            same,
            ConvKernel::Depthwise {
                stride: 1,
                rows: 24,
            },
        ),
        (
            &dw,
            same.with_groups(8),
            ConvKernel::Depthwise { stride: 2, rows: 4 },
        ),
    ];
    for (w, spec, plan) in cases {
        let mut rec = Recorder::new(g);
        let err = gpu_conv::conv2d_with(&mut rec, &x, w, &Epilogue::default(), &out, &spec, plan)
            .unwrap_err()
            .to_string();
        assert_names(&err, &["cannot run", &format!("{:?}", w.shape())]);
    }
}

#[test]
fn depthwise_and_grouped_with_fused_epilogue() {
    let all = Parts {
        bias: true,
        affine: true,
        residual: true,
    };
    let dw = Conv2d::new(2, 1)
        .with_groups(7)
        .with_act(Activation::Relu6)
        .with_post_act(Activation::Relu);
    check("depthwise", 30, &[3, 7, 13, 17], &[7, 1, 3, 3], &dw, all);
    let grouped = Conv2d::new(1, 1)
        .with_groups(4)
        .with_act(Activation::HSwish);
    check(
        "grouped",
        31,
        &[2, 12, 13, 17],
        &[20, 3, 3, 3],
        &grouped,
        all,
    );
}

/// Random conv parameters; the input is just large enough for at least one output.
#[derive(Clone, Debug)]
struct RandomCase {
    n: usize,
    groups: usize,
    cin_g: usize,
    cout_g: usize,
    k: (usize, usize),
    stride: (usize, usize),
    padding: (usize, usize),
    dilation: (usize, usize),
    extra: (usize, usize),
    parts: (bool, bool, bool),
    acts: (usize, usize),
    seed: u64,
}

fn random_case() -> impl Strategy<Value = RandomCase> {
    let geometry = (
        1..=3usize,
        1..=4usize,
        1..=3usize,
        1..=9usize,
        (1..=7usize, 1..=7usize),
        (1..=3usize, 1..=3usize),
        (0..=3usize, 0..=3usize),
        (1..=3usize, 1..=3usize),
    );
    let rest = (
        (0..=6usize, 0..=6usize),
        any::<(bool, bool, bool)>(),
        (0..6usize, 0..6usize),
        any::<u64>(),
    );
    (geometry, rest).prop_map(
        |((n, groups, cin_g, cout_g, k, stride, padding, dilation), (extra, parts, acts, seed))| {
            RandomCase {
                n,
                groups,
                cin_g,
                cout_g,
                k,
                stride,
                padding,
                dilation,
                extra,
                parts,
                acts,
                seed,
            }
        },
    )
}

/// The smallest extent with at least one window, plus `extra`.
fn extent(k: usize, p: usize, d: usize, extra: usize) -> usize {
    (d * (k - 1) + 1).saturating_sub(2 * p).max(1) + extra
}

fn run_random(c: &RandomCase) {
    let h = extent(c.k.0, c.padding.0, c.dilation.0, c.extra.0);
    let w = extent(c.k.1, c.padding.1, c.dilation.1, c.extra.1);
    let x = [c.n, c.cin_g * c.groups, h, w];
    let wt = [c.cout_g * c.groups, c.cin_g, c.k.0, c.k.1];
    let residual = c.parts.2;
    let spec = Conv2d {
        stride: c.stride,
        padding: c.padding,
        dilation: c.dilation,
        groups: c.groups,
        act: Activation::ALL[c.acts.0],
        post_act: if residual {
            Activation::ALL[c.acts.1]
        } else {
            Activation::None
        },
    };
    let parts = Parts {
        bias: c.parts.0,
        affine: c.parts.1,
        residual,
    };
    check("random", c.seed, &x, &wt, &spec, parts);
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 40,
        rng_seed: proptest::test_runner::RngSeed::Fixed(0x6a7e),
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn random_configurations(case in random_case()) {
        run_random(&case);
    }
}

/// Random depthwise 3×3 convs of the shapes `conv2d_depthwise` takes: any size, padding 0..=3
/// on each axis, stride 1 or 2, any epilogue.
fn depthwise_case(
) -> impl Strategy<Value = (usize, usize, usize, usize, usize, (usize, usize), u64)> {
    (
        1..=3usize,
        1..=9usize,
        1..=30usize,
        1..=30usize,
        1..=2usize,
        (0..=3usize, 0..=3usize),
        any::<u64>(),
    )
}

/// Random 1×1 convs of the shapes `conv2d_gemm` takes.
fn gemm_case() -> impl Strategy<Value = (usize, usize, usize, usize, usize, u64)> {
    (
        1..=3usize,
        1..=40usize,
        1..=40usize,
        1..=20usize,
        1..=20usize,
        any::<u64>(),
    )
}

/// Operand parts and activations from a seed, so each case also draws its epilogue.
fn random_epilogue(seed: u64, geometry: Conv2d) -> (Conv2d, Parts) {
    let mut rng = Rng::new(seed);
    let residual = rng.below(2) == 1;
    let parts = Parts {
        bias: rng.below(2) == 1,
        affine: rng.below(2) == 1,
        residual,
    };
    let act = Activation::ALL[rng.below(Activation::ALL.len())];
    let post = if residual {
        Activation::ALL[rng.below(Activation::ALL.len())]
    } else {
        Activation::None
    };
    (geometry.with_act(act).with_post_act(post), parts)
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 24,
        rng_seed: proptest::test_runner::RngSeed::Fixed(0xd3e7),
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn random_depthwise((n, c, h, w, stride, padding, seed) in depthwise_case()) {
        let mut geometry = Conv2d::new(stride, 0).with_groups(c);
        geometry.padding = padding;
        let x = [n, c, h + 2, w + 2];
        let wt = [c, 1, 3, 3];
        prop_assert_eq!(routed(&x, &wt, &geometry), DEPTHWISE);
        let (spec, parts) = random_epilogue(seed, geometry);
        check("random depthwise", seed, &x, &wt, &spec, parts);
    }

    #[test]
    fn random_gemm((n, cin, cout, h, w, seed) in gemm_case()) {
        let x = [n, cin, h, w];
        let wt = [cout, cin, 1, 1];
        let geometry = Conv2d::new(1, 0);
        prop_assert_eq!(routed(&x, &wt, &geometry), GEMM);
        let (spec, parts) = random_epilogue(seed, geometry);
        check("random 1×1", seed, &x, &wt, &spec, parts);
    }
}

/// Large planes: the depthwise kernel slides 20 strips of 24 rows down each 480-row plane, and
/// the 1×1 GEMM spreads 2·480² pixels over hundreds of workgroups.
#[test]
fn large_planes() {
    let x = [2, 10, 480, 480];
    let spec = Conv2d::new(1, 1).with_groups(10).with_act(Activation::Relu);
    let w = [10, 1, 3, 3];
    assert_eq!(
        gpu_conv::kernel_for(&x, &w, &spec, gpu_conv::subgroup_lanes(gpu())).unwrap(),
        ConvKernel::Depthwise {
            stride: 1,
            rows: gpu_conv::DEPTHWISE_ROWS
        }
    );
    let parts = Parts {
        bias: true,
        ..PLAIN
    };
    check("large depthwise", 40, &x, &w, &spec, parts);
    let w = [3, 10, 1, 1];
    let spec = Conv2d::new(1, 0).with_act(Activation::Relu6);
    assert_eq!(routed(&x, &w, &spec), GEMM);
    check("large 1×1", 42, &x, &w, &spec, parts);
}

#[test]
fn batch_split_when_tensors_exceed_a_binding() {
    let limit = 1 << 17;
    let options = GpuOptions {
        limit_overrides: LimitOverrides {
            max_storage_buffer_binding_size: Some(limit),
        },
        ..Default::default()
    };
    let g = Gpu::new_blocking(&options).expect("GPU tests need an adapter (lavapipe in CI)");
    // 64 kB input and 64 or 96 kB residual/output per image, 3 images: split into single
    // images, on each kernel.
    let spec = Conv2d::new(1, 1)
        .with_act(Activation::Relu)
        .with_post_act(Activation::Relu6);
    let x = [3, 4, 64, 64];
    let cases = [
        (GENERAL, [6, 4, 3, 3], spec),
        (
            GEMM,
            [6, 4, 1, 1],
            Conv2d {
                padding: (0, 0),
                ..spec
            },
        ),
        (DEPTHWISE, [4, 1, 3, 3], spec.with_groups(4)),
    ];
    for (seed, (kernel, w, spec)) in (41..).zip(cases) {
        assert_eq!(routed(&x, &w, &spec), kernel);
        check_on(&g, kernel, seed, &x, &w, &spec, ALL_PARTS);
    }
}

fn bn(rng: &mut Rng, c: usize) -> BatchNorm {
    BatchNorm::new(
        rng.tensor_in(&[c], 0.5, 2.0),
        rng.tensor(&[c]),
        rng.tensor(&[c]),
        rng.tensor_in(&[c], 0.05, 2.0),
    )
    .unwrap()
}

/// Folding rounds each W' and b' once to f32 (relative 6e-8), and the unfolded path rounds
/// the conv output and each BN step in f32; both are far below the accumulation error that
/// FP32_REL_L2 already allows, so the same 1e-5 holds (a wrong channel or formula gives 1e-1).
#[test]
fn folded_batchnorm_equals_conv_then_batchnorm() {
    let cases = [
        ("dense", [2, 5, 7, 5], [7, 5, 3, 3], Conv2d::new(1, 1)),
        (
            "grouped",
            [3, 12, 13, 17],
            [8, 3, 3, 3],
            Conv2d::new(1, 1).with_groups(4),
        ),
        (
            "depthwise",
            [2, 12, 13, 17],
            [12, 1, 3, 3],
            Conv2d::new(2, 1).with_groups(12),
        ),
        ("stem", [2, 3, 13, 17], [8, 3, 7, 7], Conv2d::new(2, 3)),
    ];
    let mut rng = Rng::new(50);
    for (name, xs, ws, spec) in cases {
        for with_bias in [false, true] {
            let x = rng.tensor(&xs);
            let w = rng.tensor(&ws);
            let b = with_bias.then(|| rng.tensor(&[ws[0]]));
            let norm = bn(&mut rng, ws[0]);
            let ep = b
                .as_ref()
                .map_or_else(Epilogue::default, Epilogue::with_bias);
            let conv = cpu::conv2d(&x, &w, &ep, &spec).unwrap();
            let want = cpu::batchnorm(&conv, &norm).unwrap();

            let (fw, fb) = fold_batchnorm(&w, b.as_ref(), &norm).unwrap();
            let what = format!("{name}, conv bias {with_bias}");
            let cpu_folded = cpu::conv2d(&x, &fw, &Epilogue::with_bias(&fb), &spec).unwrap();
            assert_close(&cpu_folded, &want, FP32_REL_L2, &format!("CPU {what}"));
            let (gx, gw, gb) = (upload(&x), upload(&fw), upload(&fb));
            let got = run_gpu(want.shape(), |rec, out| {
                gpu_conv::conv2d(rec, &gx, &gw, &Epilogue::with_bias(&gb), out, &spec)
            });
            assert_close(&got, &want, FP32_REL_L2, &format!("GPU {what}"));
        }
    }
}

#[test]
fn fold_matches_the_formula_exactly() {
    let w = Tensor::new(vec![2, 1, 1, 2], vec![2.0, -1.0, 0.5, 4.0]).unwrap();
    let b = Tensor::new(vec![2], vec![1.0, -2.0]).unwrap();
    let t = |v: [f32; 2]| Tensor::new(vec![2], v.to_vec()).unwrap();
    let norm = BatchNorm::new(
        t([3.0, 0.5]),
        t([0.5, 1.0]),
        t([0.25, -1.0]),
        t([0.75, 4.0]),
    )
    .unwrap();
    let s = [3.0 / (0.75f64 + 1e-5).sqrt(), 0.5 / (4.0f64 + 1e-5).sqrt()];
    let (fw, fb) = fold_batchnorm(&w, Some(&b), &norm).unwrap();
    let want_w = [2.0 * s[0], -s[0], 0.5 * s[1], 4.0 * s[1]].map(|v| v as f32);
    assert_eq!(fw.data(), want_w);
    let want_b = [(1.0 - 0.25) * s[0] + 0.5, (-2.0 + 1.0) * s[1] + 1.0].map(|v| v as f32);
    assert_eq!(fb.data(), want_b);
    let (_, fb0) = fold_batchnorm(&w, None, &norm).unwrap();
    assert_eq!(
        fb0.data(),
        [-0.25 * s[0] + 0.5, s[1] + 1.0].map(|v| v as f32)
    );
    let (scale, shift) = norm.scale_shift();
    assert_eq!(scale.data(), s.map(|v| v as f32));
    assert_eq!(
        shift.data(),
        [0.5 - 0.25 * s[0], 1.0 + s[1]].map(|v| v as f32)
    );
}

/// A BN that cannot fold runs as the conv's affine epilogue or as the standalone kernel.
#[test]
fn unfolded_batchnorm_as_scale_shift() {
    let mut rng = Rng::new(60);
    let spec = Conv2d::new(1, 1).with_act(Activation::Relu);
    let (x, w) = (rng.tensor(&[2, 5, 13, 17]), rng.tensor(&[7, 5, 3, 3]));
    let norm = bn(&mut rng, 7);
    let conv = cpu::conv2d(&x, &w, &Epilogue::default(), &Conv2d::new(1, 1)).unwrap();
    let bn_out = cpu::batchnorm(&conv, &norm).unwrap();
    let want = gaze::reference::elementwise::unary(
        &bn_out,
        &gaze::ops::elementwise::Unary::act(Activation::Relu),
    );
    let (scale, shift) = norm.scale_shift();
    let (gx, gw, gs, gt) = (upload(&x), upload(&w), upload(&scale), upload(&shift));
    let ep = Epilogue {
        affine: Some((&gs, &gt)),
        ..Epilogue::default()
    };
    let got = run_gpu(want.shape(), |rec, out| {
        gpu_conv::conv2d(rec, &gx, &gw, &ep, out, &spec)
    });
    assert_close(&got, &want, FP32_REL_L2, "conv + affine epilogue");
    let gconv = upload(&conv);
    let spec = gaze::ops::elementwise::ChannelAffine {
        act: Activation::Relu,
    };
    let got = run_gpu(want.shape(), |rec, out| {
        gaze::kernels::elementwise::channel_affine(rec, &gconv, &gs, &gt, out, &spec)
    });
    assert_close(&got, &want, FP32_REL_L2, "channel_affine from scale_shift");
}

/// The error of `conv2d` on the GPU; the reference must agree that it is an error.
fn gpu_error(x: &[usize], w: &[usize], out: &[usize], spec: &Conv2d, parts: Parts) -> String {
    let g = gpu();
    let cout = w.first().copied().unwrap_or(1);
    let host = Operands {
        x: Tensor::zeros(x),
        w: Tensor::zeros(w),
        bias: parts.bias.then(|| Tensor::zeros(&[cout + 1])),
        affine: parts
            .affine
            .then(|| (Tensor::zeros(&[cout]), Tensor::zeros(&[cout, 1]))),
        residual: parts.residual.then(|| Tensor::zeros(&[1, cout, 1, 1])),
    };
    assert!(cpu::conv2d(&host.x, &host.w, &host.epilogue(), spec).is_err());
    let dev = DeviceOperands::upload(g, &host);
    let out = g.empty(out).unwrap();
    let mut rec = Recorder::new(g);
    gpu_conv::conv2d(&mut rec, &dev.x, &dev.w, &dev.epilogue(), &out, spec)
        .unwrap_err()
        .to_string()
}

#[test]
fn bad_shapes_are_errors_naming_the_shapes() {
    let s1 = Conv2d::new(1, 1);
    let e = gpu_error(
        &[1, 6, 5, 5],
        &[4, 2, 3, 3],
        &[1, 4, 5, 5],
        &s1.with_groups(4),
        PLAIN,
    );
    assert_names(&e, &["groups 4", "[1, 6, 5, 5]", "[4, 2, 3, 3]"]);
    let e = gpu_error(
        &[1, 8, 5, 5],
        &[6, 2, 3, 3],
        &[1, 6, 5, 5],
        &s1.with_groups(4),
        PLAIN,
    );
    assert_names(&e, &["groups 4", "[1, 8, 5, 5]", "[6, 2, 3, 3]"]);
    let e = gpu_error(&[1, 8, 5, 5], &[4, 3, 3, 3], &[1, 4, 5, 5], &s1, PLAIN);
    assert_names(&e, &["[1, 8, 5, 5]", "[4, 3, 3, 3]"]);
    let e = gpu_error(
        &[1, 3, 2, 2],
        &[4, 3, 5, 5],
        &[1, 4, 1, 1],
        &Conv2d::new(1, 0),
        PLAIN,
    );
    assert_names(&e, &["empty output", "[1, 3, 2, 2]", "5×5"]);
    let e = gpu_error(&[1, 3, 5, 5], &[4, 3, 3], &[1, 4, 5, 5], &s1, PLAIN);
    assert_names(&e, &["[4, 3, 3]"]);
    let e = gpu_error(&[3, 5, 5], &[4, 3, 3, 3], &[1, 4, 5, 5], &s1, PLAIN);
    assert_names(&e, &["[3, 5, 5]"]);
    let e = gpu_error(
        &[1, 3, 5, 5],
        &[4, 3, 3, 3],
        &[1, 4, 5, 5],
        &Conv2d::new(0, 1),
        PLAIN,
    );
    assert_names(&e, &["stride (0, 0)"]);

    let good = ([1, 3, 5, 5], [4, 3, 3, 3], [1, 4, 5, 5]);
    let with = |parts| gpu_error(&good.0, &good.1, &good.2, &s1, parts);
    let e = with(Parts {
        bias: true,
        ..PLAIN
    });
    assert_names(&e, &["bias", "[4]", "[5]", "[1, 4, 5, 5]"]);
    let e = with(Parts {
        affine: true,
        ..PLAIN
    });
    assert_names(&e, &["shift", "[4, 1]", "[1, 4, 5, 5]"]);
    let e = with(Parts {
        residual: true,
        ..PLAIN
    });
    assert_names(&e, &["residual", "[1, 4, 1, 1]", "[1, 4, 5, 5]"]);
    let post = s1.with_post_act(Activation::Relu);
    let e = gpu_error(&good.0, &good.1, &good.2, &post, PLAIN);
    assert_names(&e, &["post_act", "residual"]);
}

#[test]
fn wrong_output_shape_is_an_error() {
    let g = gpu();
    let (x, w) = (
        g.empty(&[2, 3, 7, 5]).unwrap(),
        g.empty(&[4, 3, 3, 3]).unwrap(),
    );
    let out = g.empty(&[2, 4, 7, 4]).unwrap();
    let mut rec = Recorder::new(g);
    let e = gpu_conv::conv2d(
        &mut rec,
        &x,
        &w,
        &Epilogue::default(),
        &out,
        &Conv2d::new(1, 1),
    )
    .unwrap_err()
    .to_string();
    assert_names(
        &e,
        &["output must have shape", "[2, 4, 7, 5]", "[2, 4, 7, 4]"],
    );
}

#[test]
fn batchnorm_shape_errors() {
    let t = |s: &[usize]| Tensor::zeros(s);
    let e = BatchNorm::new(t(&[4]), t(&[4]), t(&[3]), t(&[4]))
        .unwrap_err()
        .to_string();
    assert_names(&e, &["[4]", "[3]"]);
    let e = BatchNorm::new(
        t(&[2]),
        t(&[2]),
        t(&[2]),
        Tensor::new(vec![2], vec![1.0, -1.0]).unwrap(),
    )
    .unwrap_err()
    .to_string();
    assert_names(&e, &["running_var", "-1"]);
    let norm = BatchNorm::new(t(&[4]), t(&[4]), t(&[4]), t(&[4])).unwrap();
    let e = fold_batchnorm(&t(&[5, 3, 3, 3]), None, &norm)
        .unwrap_err()
        .to_string();
    assert_names(&e, &["4 channels", "[5, 3, 3, 3]"]);
    let e = fold_batchnorm(&t(&[4, 3, 3, 3]), Some(&t(&[5])), &norm)
        .unwrap_err()
        .to_string();
    assert_names(&e, &["[4]", "[5]", "[4, 3, 3, 3]"]);
    let e = cpu::batchnorm(&t(&[2, 5, 3, 3]), &norm)
        .unwrap_err()
        .to_string();
    assert_names(&e, &["[2, 5, 3, 3]"]);
}

/// Rounded to f16 and back: what a tensor stored at f16 holds.
fn at_f16(t: &Tensor) -> Tensor {
    Tensor::from_fn(t.shape(), |i| gaze::Precision::F16.round(t.data()[i]))
}

/// Every kernel variant with f16 storage, on the conv shapes of the networks (1×1, 3×3 padded,
/// the strided 7×7 stem, grouped, dilated, depthwise), against the reference on the same
/// f16-rounded operands with its output rounded too: both compute in f32, so they differ only
/// where sums in another order round to a neighbouring f16 (F16_SAME_ROUNDING_REL_L2).
#[test]
fn every_variant_at_f16() {
    let g = gpu_f16();
    let cases: [([usize; 4], [usize; 4], Conv2d); 6] = [
        ([2, 24, 9, 11], [40, 24, 1, 1], Conv2d::new(1, 0)),
        ([1, 20, 10, 9], [36, 20, 3, 3], Conv2d::new(1, 1)),
        ([1, 3, 23, 21], [20, 3, 7, 7], Conv2d::new(2, 3)),
        (
            [2, 16, 8, 8],
            [40, 8, 3, 3],
            Conv2d::new(2, 1).with_groups(2),
        ),
        (
            [1, 18, 12, 12],
            [20, 18, 3, 3],
            Conv2d::new(1, 2).with_dilation(2),
        ),
        (
            [1, 12, 9, 9],
            [12, 1, 3, 3],
            Conv2d::new(1, 1).with_groups(12),
        ),
    ];
    for (seed, (x, w, spec)) in cases.into_iter().enumerate() {
        let spec = spec
            .with_act(Activation::Relu6)
            .with_post_act(Activation::Relu);
        let mut rng = Rng::new(900 + seed as u64);
        let mut host = Operands::random(&mut rng, &x, &w, &spec, ALL_PARTS);
        host.x = at_f16(&host.x);
        host.w = at_f16(&host.w);
        host.bias = host.bias.as_ref().map(at_f16);
        host.affine = host.affine.as_ref().map(|(s, t)| (at_f16(s), at_f16(t)));
        host.residual = host.residual.as_ref().map(at_f16);
        let want = at_f16(&cpu::conv2d(&host.x, &host.w, &host.epilogue(), &spec).unwrap());
        let device = DeviceOperands::upload(g, &host);
        for plan in plans(g, &x, &w, &spec) {
            let got = device.run(g, &spec, plan);
            let what = format!("{plan} at f16: x {x:?} w {w:?} {spec:?}");
            assert_close(&got, &want, F16_SAME_ROUNDING_REL_L2, &what);
        }
    }
}

/// A variant's name reads back as the same variant (the tuning cache stores names), and a name
/// that is no variant is an error that quotes it.
#[test]
fn variant_names_round_trip() {
    let mut all: Vec<ConvKernel> = MmTile::ALL.map(ConvKernel::Mm).to_vec();
    for c in 1..=16 {
        for p in [1, 2, 4] {
            all.push(ConvKernel::General(Tile::shared(c, p)));
            all.push(ConvKernel::Gemm(Tile::plain(c.min(8), p)));
        }
    }
    all.push(ConvKernel::Depthwise {
        stride: 2,
        rows: 24,
    });
    all.push(ConvKernel::Depthwise { stride: 1, rows: 1 });
    for k in all {
        let name = k.to_string();
        assert_eq!(name.parse::<ConvKernel>().unwrap(), k, "{name}");
    }
    for bad in [
        "conv2d_mm",
        "conv2d_mm 64",
        "conv2d_mm 6x64",
        "conv2d_fast 64x64",
        "conv2d_depthwise 2",
        "conv2d_depthwise s1",
        "conv2d_depthwise s1r0",
    ] {
        let err = bad.parse::<ConvKernel>().unwrap_err().to_string();
        assert_names(&err, &[bad]);
    }
}
