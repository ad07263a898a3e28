//! Convolution kernel against the CPU reference, and BatchNorm folding.

mod common;

use common::Rng;
use common::*;
use gaze::gpu::{Gpu, GpuOptions, GpuTensor, LimitOverrides, Recorder};
use gaze::kernels::conv as gpu_conv;
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

    fn run(&self, g: &Gpu, spec: &Conv2d) -> Tensor {
        let shape = spec.output_shape(self.x.shape(), self.w.shape()).unwrap();
        run_on(g, &shape, |rec, out| {
            gpu_conv::conv2d(rec, &self.x, &self.w, &self.epilogue(), out, spec)
        })
    }
}

/// Runs one configuration on the GPU and the CPU and compares them.
fn check_on(
    g: &Gpu,
    label: &str,
    seed: u64,
    x: &[usize],
    w: &[usize],
    spec: &Conv2d,
    parts: Parts,
) {
    let mut rng = Rng::new(seed);
    let host = Operands::random(&mut rng, x, w, spec, parts);
    let want = cpu::conv2d(&host.x, &host.w, &host.epilogue(), spec).unwrap();
    let got = DeviceOperands::upload(g, &host).run(g, spec);
    let what = format!("{label}: x {x:?} w {w:?} {spec:?} {parts:?}");
    assert_close(&got, &want, FP32_REL_L2, &what);
}

fn check(label: &str, seed: u64, x: &[usize], w: &[usize], spec: &Conv2d, parts: Parts) {
    check_on(gpu(), label, seed, x, w, spec, parts);
}

/// A geometry of the table: channels, kernel, conv parameters, whether it also runs on 224².
struct Geometry {
    name: &'static str,
    cin: usize,
    cout: usize,
    k: (usize, usize),
    spec: Conv2d,
    large: bool,
}

fn geometries() -> Vec<Geometry> {
    let g = |name, cin, cout, k, spec, large| Geometry {
        name,
        cin,
        cout,
        k,
        spec,
        large,
    };
    let mut non_square = Conv2d::new(1, 0);
    non_square.padding = (0, 1);
    let mut mixed = Conv2d::new(1, 1);
    mixed.stride = (2, 1);
    mixed.dilation = (1, 2);
    mixed.padding = (2, 4);
    vec![
        g("stem 7×7 s2 p3", 3, 12, (7, 7), Conv2d::new(2, 3), true),
        g("3×3 s1 p1", 5, 7, (3, 3), Conv2d::new(1, 1), true),
        g("3×3 s2 p1", 7, 12, (3, 3), Conv2d::new(2, 1), false),
        g("1×1 s1", 12, 5, (1, 1), Conv2d::new(1, 0), true),
        g("1×1 s2", 5, 12, (1, 1), Conv2d::new(2, 0), false),
        g(
            "dw 3×3 s1",
            12,
            12,
            (3, 3),
            Conv2d::new(1, 1).with_groups(12),
            true,
        ),
        g(
            "dw 3×3 s2",
            7,
            7,
            (3, 3),
            Conv2d::new(2, 1).with_groups(7),
            false,
        ),
        g(
            "dw ×2 3×3",
            4,
            8,
            (3, 3),
            Conv2d::new(1, 1).with_groups(4),
            false,
        ),
        g(
            "grouped 3×3 g4",
            12,
            8,
            (3, 3),
            Conv2d::new(1, 1).with_groups(4),
            false,
        ),
        g(
            "grouped 3×3 g32",
            64,
            64,
            (3, 3),
            Conv2d::new(1, 1).with_groups(32),
            false,
        ),
        g(
            "dilated 3×3 d2 p2",
            5,
            7,
            (3, 3),
            Conv2d::new(1, 2).with_dilation(2),
            true,
        ),
        g("1×3 p(0,1)", 3, 5, (1, 3), non_square, false),
        g("3×5 mixed", 3, 19, (3, 5), mixed, false),
        g("gate 2→1 7×7", 2, 1, (7, 7), Conv2d::new(1, 3), false),
    ]
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

#[test]
fn every_epilogue_combination() {
    let x = [2, 5, 7, 5];
    let w = [7, 5, 3, 3];
    let mut seed = 100;
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
                        let spec = Conv2d::new(1, 1).with_act(act).with_post_act(post);
                        seed += 1;
                        check("epilogue", seed, &x, &w, &spec, parts);
                    }
                }
            }
        }
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

/// Dispatches past 65,535 workgroups: depthwise keeps one channel per invocation, so
/// 2·10·480·480 = 4.6 M invocations need a 2-D grid.
#[test]
fn large_planes_over_a_two_dimensional_grid() {
    let x = [2, 10, 480, 480];
    let rec = Recorder::new(gpu());
    assert!(rec.grid((x[0] * x[1] * x[2] * x[3]) as u64).unwrap()[1] > 1);
    let spec = Conv2d::new(1, 1).with_groups(10).with_act(Activation::Relu);
    let parts = Parts {
        bias: true,
        ..PLAIN
    };
    check("2-D grid", 40, &x, &[10, 1, 3, 3], &spec, parts);
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
    // 64 kB input and 96 kB residual/output per image, 3 images: split into single images.
    let spec = Conv2d::new(1, 1)
        .with_act(Activation::Relu)
        .with_post_act(Activation::Relu6);
    let all = Parts {
        bias: true,
        affine: true,
        residual: true,
    };
    check_on(
        &g,
        "split batch",
        41,
        &[3, 4, 64, 64],
        &[6, 4, 3, 3],
        &spec,
        all,
    );
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

fn assert_names(err: &str, parts: &[&str]) {
    for p in parts {
        assert!(err.contains(p), "`{err}` should name {p}");
    }
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
