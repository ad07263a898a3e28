//! SAN primitives (MODULES.md §9.2) against the CPU reference, plus hand-computed checks of the
//! reference itself on the points the spec stresses (sign, reflection, `c mod Cw` sharing).

mod common;

use common::*;
use gaze::gpu::{Gpu, GpuOptions, GpuTensor, LimitOverrides, Recorder};
use gaze::kernels::san as gpu_ops;
use gaze::ops::san::{
    position_grid, reflect, Aggregation, Epilogue, PadMode, PatchGather, ReflectPad, Subtraction,
    Unfold, Window,
};
use gaze::ops::Activation;
use gaze::reference::san as cpu;
use gaze::Tensor;

const MODES: [PadMode; 2] = [PadMode::Reflect, PadMode::Zero];

/// Every (k, stride, dilation) of the task, on maps that fit the largest reflect padding
/// (k 7, dilation 2: p = 6).
fn windows() -> Vec<Window> {
    let mut all = Vec::new();
    for k in [3, 5, 7] {
        for stride in [1, 2] {
            for dilation in [1, 2] {
                for mode in MODES {
                    all.push(Window::new(k, stride, dilation).with_pad_mode(mode));
                }
            }
        }
    }
    all
}

fn run_subtraction2(x1: &Tensor, x2: &Tensor, spec: &Subtraction, what: &str) {
    let want = cpu::subtraction2(x1, x2, spec).unwrap();
    let (g1, g2) = (upload(x1), upload(x2));
    let got = run_gpu(want.shape(), |rec, out| {
        gpu_ops::subtraction2(rec, &g1, &g2, out, spec)
    });
    assert_close(&got, &want, FP32_REL_L2, what);
}

#[test]
fn subtraction2_every_window() {
    let mut rng = Rng::new(31);
    for shape in [[2, 3, 13, 17], [2, 5, 9, 7]] {
        let x1 = rng.tensor(&shape);
        let x2 = rng.tensor(&shape);
        for window in windows() {
            let spec = Subtraction {
                window,
                act: Activation::None,
            };
            run_subtraction2(
                &x1,
                &x2,
                &spec,
                &format!("subtraction2 {shape:?} {window:?}"),
            );
        }
    }
}

#[test]
fn subtraction2_small_large_and_fused_relu() {
    let mut rng = Rng::new(32);
    let cases = [
        ([3, 5, 7, 5], Window::new(3, 1, 1)),
        ([3, 5, 7, 5], Window::new(5, 2, 1)),
        // 1×1 maps: reflect needs p = 0 (k = 1); zero padding allows k = 3.
        ([2, 3, 1, 1], Window::new(1, 1, 1)),
        (
            [2, 3, 1, 1],
            Window::new(3, 1, 1).with_pad_mode(PadMode::Zero),
        ),
        // A settable padding below SAN's: the window then stays inside (valid convolution).
        ([2, 3, 9, 11], Window::new(5, 1, 1).with_padding(0)),
        (
            [2, 3, 9, 11],
            Window::new(5, 2, 1)
                .with_padding(1)
                .with_pad_mode(PadMode::Zero),
        ),
        ([2, 2, 224, 224], Window::new(3, 1, 1)),
    ];
    for (shape, window) in cases {
        let x1 = rng.tensor(&shape);
        let x2 = rng.tensor(&shape);
        for act in [Activation::None, Activation::Relu] {
            let spec = Subtraction { window, act };
            run_subtraction2(
                &x1,
                &x2,
                &spec,
                &format!("subtraction2 {shape:?} {window:?} {act:?}"),
            );
        }
    }
}

#[test]
fn subtraction_of_one_tensor() {
    let x = Rng::new(33).tensor(&[2, 2, 13, 17]);
    let spec = Subtraction {
        window: Window::new(7, 1, 1),
        act: Activation::None,
    };
    let want = cpu::subtraction(&x, &spec).unwrap();
    assert_eq!(want, cpu::subtraction2(&x, &x, &spec).unwrap());
    let gx = upload(&x);
    let got = run_gpu(want.shape(), |rec, out| {
        gpu_ops::subtraction(rec, &gx, out, &spec)
    });
    assert_close(&got, &want, FP32_REL_L2, "subtraction(x)");
}

#[test]
fn subtraction_reference_by_hand() {
    // One 3×3 plane, k = 3, reflect: tap (0, 0) of output (0, 0) reads R(−1) = 1 on both axes.
    let x1 = Tensor::from_fn(&[1, 1, 3, 3], |i| 100.0 * i as f32);
    let x2 = Tensor::from_fn(&[1, 1, 3, 3], |i| i as f32);
    let spec = Subtraction {
        window: Window::new(3, 1, 1),
        act: Activation::None,
    };
    let y = cpu::subtraction2(&x1, &x2, &spec).unwrap();
    assert_eq!(y.shape(), [1, 1, 9, 9]);
    // Centre minus neighbour: x1[0,0] − x2[1,1] = 0 − 4.
    assert_eq!(y.data()[0], -4.0);
    // Tap 8 (a = b = 2) of output (2, 2) reads R(3, 3) = 1: x1[2,2] − x2[1,1] = 800 − 4.
    assert_eq!(y.data()[8 * 9 + 8], 796.0);
    let zero = Subtraction {
        window: spec.window.with_pad_mode(PadMode::Zero),
        ..spec
    };
    assert_eq!(cpu::subtraction2(&x1, &x2, &zero).unwrap().data()[0], 0.0);
    assert_eq!(
        (reflect(-2, 5), reflect(5, 5), reflect(6, 5), reflect(3, 5)),
        (2, 3, 2, 3)
    );
}

fn run_aggregation(
    x: &Tensor,
    wt: &Tensor,
    affine: Option<(&Tensor, &Tensor)>,
    spec: &Aggregation,
    what: &str,
) {
    let want = cpu::aggregation(x, wt, affine, spec).unwrap();
    let (gx, gw) = (upload(x), upload(wt));
    let ga = affine.map(|(s, t)| (upload(s), upload(t)));
    let got = run_gpu(want.shape(), |rec, out| {
        let aff = ga.as_ref().map(|(s, t)| (s, t));
        gpu_ops::aggregation(rec, &gx, &gw, aff, out, spec)
    });
    assert_close(&got, &want, FP32_REL_L2, what);
}

fn weights_for(rng: &mut Rng, x: &[usize], cw: usize, window: &Window) -> Tensor {
    let (ho, wo) = window.output_size("test", x[2], x[3]).unwrap();
    rng.tensor(&[x[0], cw, window.taps(), ho * wo])
}

#[test]
fn aggregation_every_window() {
    let mut rng = Rng::new(34);
    for (shape, cw) in [([2, 6, 13, 17], 2), ([2, 9, 9, 7], 3)] {
        let x = rng.tensor(&shape);
        for window in windows() {
            let wt = weights_for(&mut rng, &shape, cw, &window);
            let spec = Aggregation {
                window,
                epilogue: Epilogue::default(),
            };
            run_aggregation(
                &x,
                &wt,
                None,
                &spec,
                &format!("aggregation {shape:?} Cw {cw} {window:?}"),
            );
        }
    }
}

#[test]
fn aggregation_sharing_sizes_and_epilogue() {
    let mut rng = Rng::new(35);
    let cases = [
        ([3, 5, 7, 5], 5, Window::new(3, 1, 1)),
        ([3, 5, 7, 5], 1, Window::new(5, 2, 1)),
        ([2, 3, 1, 1], 3, Window::new(1, 1, 1)),
        (
            [2, 3, 1, 1],
            1,
            Window::new(3, 1, 1).with_pad_mode(PadMode::Zero),
        ),
        ([2, 6, 9, 11], 3, Window::new(5, 1, 2).with_padding(1)),
        ([2, 2, 224, 224], 1, Window::new(3, 1, 1)),
    ];
    for (shape, cw, window) in cases {
        let x = rng.tensor(&shape);
        let wt = weights_for(&mut rng, &shape, cw, &window);
        let plain = Aggregation {
            window,
            epilogue: Epilogue::default(),
        };
        run_aggregation(
            &x,
            &wt,
            None,
            &plain,
            &format!("aggregation {shape:?} Cw {cw} {window:?}"),
        );
        // The patchwise bn2 shift + ReLU after the aggregation (§9.7).
        let (scale, shift) = (rng.tensor(&[shape[1]]), rng.tensor(&[shape[1]]));
        let fused = Aggregation {
            window,
            epilogue: Epilogue {
                affine: true,
                act: Activation::Relu,
            },
        };
        run_aggregation(
            &x,
            &wt,
            Some((&scale, &shift)),
            &fused,
            &format!("aggregation+affine+relu {shape:?}"),
        );
    }
}

#[test]
fn aggregation_shares_weights_by_c_mod_cw() {
    // Cw = 2 of C = 6: group 0 weights are all 1, group 1 all 0. With `c mod Cw` the odd
    // channels vanish; a `c // (C/Cw)` mapping would zero channels 3..6 instead.
    let (n, c, h, w) = (2, 6, 7, 5);
    let x = Rng::new(36).tensor_in(&[n, c, h, w], 0.5, 1.0);
    let window = Window::new(3, 1, 1);
    let plane = 9 * h * w;
    let wt = Tensor::from_fn(&[n, 2, 9, h * w], |i| {
        if (i / plane) % 2 == 0 {
            1.0
        } else {
            0.0
        }
    });
    let spec = Aggregation {
        window,
        epilogue: Epilogue::default(),
    };
    let want = cpu::aggregation(&x, &wt, None, &spec).unwrap();
    for (i, v) in want.data().iter().enumerate() {
        let ch = (i / (h * w)) % c;
        assert_eq!(*v == 0.0, ch % 2 == 1, "reference channel {ch}: {v}");
    }
    let (gx, gw) = (upload(&x), upload(&wt));
    let got = run_gpu(want.shape(), |rec, out| {
        gpu_ops::aggregation(rec, &gx, &gw, None, out, &spec)
    });
    assert_close(&got, &want, FP32_REL_L2, "c mod Cw sharing");
}

#[test]
fn aggregation_reference_by_hand() {
    // Weights select tap 0 (a = b = 0) only: output (0, 0) then reads x[R(−1), R(−1)] = x[1, 1].
    let x = Tensor::from_fn(&[1, 1, 3, 3], |i| i as f32);
    let wt = Tensor::from_fn(&[1, 1, 9, 9], |i| if i < 9 { 1.0 } else { 0.0 });
    let spec = Aggregation {
        window: Window::new(3, 1, 1),
        epilogue: Epilogue::default(),
    };
    let y = cpu::aggregation(&x, &wt, None, &spec).unwrap();
    assert_eq!(y.data(), [4.0, 3.0, 4.0, 1.0, 0.0, 1.0, 4.0, 3.0, 4.0]);
    let zero = Aggregation {
        window: spec.window.with_pad_mode(PadMode::Zero),
        ..spec
    };
    let y = cpu::aggregation(&x, &wt, None, &zero).unwrap();
    assert_eq!(y.data(), [0.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0, 3.0, 4.0]);
}

#[test]
fn reflection_pad_and_unfold() {
    let mut rng = Rng::new(37);
    for (shape, pad) in [
        ([2, 3, 7, 5], 3),
        ([2, 5, 13, 17], 1),
        ([3, 2, 1, 1], 0),
        ([2, 1, 224, 224], 3),
    ] {
        let x = rng.tensor(&shape);
        let spec = ReflectPad { pad };
        let want = cpu::reflection_pad(&x, &spec).unwrap();
        let gx = upload(&x);
        let got = run_gpu(want.shape(), |rec, out| {
            gpu_ops::reflection_pad(rec, &gx, out, &spec)
        });
        assert_eq!(got, want, "reflection pad {shape:?} by {pad}");
    }
    for (shape, kernel, stride) in [
        ([2, 3, 9, 7], 3, 1),
        ([2, 3, 13, 17], 3, 2),
        ([2, 5, 13, 17], 7, 1),
        ([3, 2, 1, 1], 1, 1),
    ] {
        let x = rng.tensor(&shape);
        let spec = Unfold { kernel, stride };
        let want = cpu::unfold(&x, &spec).unwrap();
        let gx = upload(&x);
        let got = run_gpu(want.shape(), |rec, out| {
            gpu_ops::unfold(rec, &gx, out, &spec)
        });
        assert_eq!(got, want, "unfold {shape:?} k {kernel} s {stride}");
    }
}

#[test]
fn pad_and_unfold_reference_by_hand() {
    // ReflectionPad2d(1) of [[0,1,2]] rows 0..2 of a 2×3 map: the edge is not repeated.
    let x = Tensor::from_fn(&[1, 1, 2, 3], |i| i as f32);
    let p = cpu::reflection_pad(&x, &ReflectPad { pad: 1 }).unwrap();
    assert_eq!(&p.data()[..5], [4.0, 3.0, 4.0, 5.0, 4.0]);
    assert_eq!(&p.data()[5..10], [1.0, 0.0, 1.0, 2.0, 1.0]);
    // Unfold k = 2 of channel c gives channels c·4 + (a·2 + b); position l = 0..2 along W.
    let x = Tensor::from_fn(&[1, 2, 2, 3], |i| i as f32);
    let u = cpu::unfold(
        &x,
        &Unfold {
            kernel: 2,
            stride: 1,
        },
    )
    .unwrap();
    assert_eq!(u.shape(), [1, 8, 2]);
    assert_eq!(&u.data()[..8], [0.0, 1.0, 1.0, 2.0, 3.0, 4.0, 4.0, 5.0]);
    assert_eq!(&u.data()[8..10], [6.0, 7.0]);
}

fn run_gather(x: &Tensor, affine: Option<(&Tensor, &Tensor)>, spec: &PatchGather, what: &str) {
    let want = cpu::patch_gather(x, affine, spec).unwrap();
    let gx = upload(x);
    let ga = affine.map(|(s, t)| (upload(s), upload(t)));
    let got = run_gpu(want.shape(), |rec, out| {
        let aff = ga.as_ref().map(|(s, t)| (s, t));
        gpu_ops::patch_gather(rec, &gx, aff, out, spec)
    });
    assert_close(&got, &want, FP32_REL_L2, what);
}

#[test]
fn patch_gather_matches_pad_then_unfold() {
    let mut rng = Rng::new(38);
    let cases = [
        ([2, 3, 7, 5], 3),
        ([2, 5, 13, 17], 7),
        ([2, 3, 9, 11], 5),
        ([3, 2, 1, 1], 1),
        ([2, 1, 224, 224], 3),
    ];
    for (shape, kernel) in cases {
        let x = rng.tensor(&shape);
        let spec = PatchGather {
            kernel,
            epilogue: Epilogue::default(),
        };
        run_gather(&x, None, &spec, &format!("gather {shape:?} k {kernel}"));
        let ch = shape[1] * kernel * kernel;
        let (scale, shift) = (rng.tensor(&[ch]), rng.tensor(&[ch]));
        let fused = PatchGather {
            kernel,
            epilogue: Epilogue {
                affine: true,
                act: Activation::Relu,
            },
        };
        run_gather(
            &x,
            Some((&scale, &shift)),
            &fused,
            &format!("gather+affine+relu {shape:?} k {kernel}"),
        );
    }
}

#[test]
fn patch_gather_reference_is_the_spec_formula() {
    // U[n, c·k²+j, 0, h·W+w] = x[n, c, R(h+a−k//2, H), R(w+b−k//2, W)] (§9.3 patchwise step 2).
    let (n, c, h, w, k) = (2, 3, 5, 6, 5);
    let x = Rng::new(39).tensor(&[n, c, h, w]);
    let spec = PatchGather {
        kernel: k,
        epilogue: Epilogue::default(),
    };
    let u = cpu::patch_gather(&x, None, &spec).unwrap();
    assert_eq!(u.shape(), [n, c * k * k, 1, h * w]);
    for (i, v) in u.data().iter().enumerate() {
        let (pos, ch, img) = (
            i % (h * w),
            (i / (h * w)) % (c * k * k),
            i / (h * w * c * k * k),
        );
        let (cc, a, b) = (ch / (k * k), (ch % (k * k)) / k, ch % k);
        let row = reflect((pos / w + a) as isize - (k / 2) as isize, h);
        let col = reflect((pos % w + b) as isize - (k / 2) as isize, w);
        assert_eq!(
            *v,
            x.data()[((img * c + cc) * h + row) * w + col],
            "U index {i}"
        );
    }
}

#[test]
fn position_grid_values() {
    let g = position_grid(3, 5);
    assert_eq!(g.shape(), [1, 2, 3, 5]);
    assert_eq!(&g.data()[..5], [-1.0, -0.5, 0.0, 0.5, 1.0]);
    assert_eq!(&g.data()[10..15], [-1.0, -0.5, 0.0, 0.5, 1.0]);
    assert_eq!(&g.data()[15..20], [-1.0; 5]);
    assert_eq!(&g.data()[20..25], [0.0; 5]);
    assert_eq!(&g.data()[25..30], [1.0; 5]);
    assert_eq!(position_grid(1, 1).data(), [-1.0, -1.0]);
    let g = position_grid(7, 1);
    assert_eq!(&g.data()[..7], [-1.0; 7]);
    assert!((g.data()[7 + 1] - (-1.0 + 1.0 / 3.0) as f32).abs() == 0.0);
}

/// A device whose storage bindings hold 64 kB, so the launchers run the batch in chunks.
fn small_binding_gpu() -> Gpu {
    let options = GpuOptions {
        limit_overrides: LimitOverrides {
            max_storage_buffer_binding_size: Some(1 << 16),
        },
        ..Default::default()
    };
    Gpu::new_blocking(&options).expect("GPU tests need an adapter (lavapipe in CI)")
}

#[test]
fn window_ops_in_batch_chunks() {
    let g = small_binding_gpu();
    let mut rng = Rng::new(40);
    // Per image: x 4·20·20 floats, weights 2·9·400 floats (29 kB); 5 images exceed 64 kB.
    let shape = [5, 4, 20, 20];
    let x = rng.tensor(&shape);
    let window = Window::new(3, 1, 1);
    let wt = weights_for(&mut rng, &shape, 2, &window);
    assert!(wt.numel() * 4 > 1 << 16);
    let spec = Aggregation {
        window,
        epilogue: Epilogue::default(),
    };
    let want = cpu::aggregation(&x, &wt, None, &spec).unwrap();
    let (gx, gw) = (g.upload(&x).unwrap(), g.upload(&wt).unwrap());
    let got = run_on(&g, want.shape(), |rec, out| {
        gpu_ops::aggregation(rec, &gx, &gw, None, out, &spec)
    });
    assert_close(&got, &want, FP32_REL_L2, "aggregation in chunks");

    let x2 = rng.tensor(&shape);
    let sub = Subtraction {
        window,
        act: Activation::None,
    };
    let want = cpu::subtraction2(&x, &x2, &sub).unwrap();
    let gx2 = g.upload(&x2).unwrap();
    let got = run_on(&g, want.shape(), |rec, out| {
        gpu_ops::subtraction2(rec, &gx, &gx2, out, &sub)
    });
    assert_close(&got, &want, FP32_REL_L2, "subtraction2 in chunks");
}

fn refused(r: gaze::Result<()>) -> String {
    r.expect_err("must be refused").to_string()
}

#[test]
fn reflect_padding_larger_than_the_map_is_refused() {
    let g = gpu();
    let t = |shape: &[usize]| g.empty(shape).unwrap();
    let mut rec = Recorder::new(g);
    // k = 7 reflects by 3, which a 3-wide map cannot (p ≤ L − 1).
    let x = t(&[1, 2, 8, 3]);
    let sub = Subtraction {
        window: Window::new(7, 1, 1),
        act: Activation::None,
    };
    let msg = refused(gpu_ops::subtraction2(
        &mut rec,
        &x,
        &x,
        &t(&[1, 2, 49, 24]),
        &sub,
    ));
    assert!(
        msg.contains("reflect padding 3") && msg.contains("8×3"),
        "{msg}"
    );
    let agg = Aggregation {
        window: Window::new(7, 1, 1),
        epilogue: Epilogue::default(),
    };
    let msg = refused(gpu_ops::aggregation(
        &mut rec,
        &x,
        &t(&[1, 2, 49, 24]),
        None,
        &t(&[1, 2, 8, 3]),
        &agg,
    ));
    assert!(msg.contains("reflect padding 3"), "{msg}");
    let gather = PatchGather {
        kernel: 7,
        epilogue: Epilogue::default(),
    };
    let msg = refused(gpu_ops::patch_gather(
        &mut rec,
        &x,
        None,
        &t(&[1, 98, 1, 24]),
        &gather,
    ));
    assert!(msg.contains("reflect padding 3"), "{msg}");
    let msg = refused(gpu_ops::reflection_pad(
        &mut rec,
        &x,
        &t(&[1, 2, 14, 9]),
        &ReflectPad { pad: 3 },
    ));
    assert!(msg.contains("padding 3"), "{msg}");
    assert!(cpu::subtraction(&Tensor::zeros(&[1, 2, 8, 3]), &sub).is_err());
    // The same map with zero padding is fine.
    let zero = Subtraction {
        window: sub.window.with_pad_mode(PadMode::Zero),
        ..sub
    };
    assert!(cpu::subtraction(&Tensor::zeros(&[1, 2, 8, 3]), &zero).is_ok());
}

#[test]
fn bad_shapes_are_errors() {
    let g = gpu();
    let t = |shape: &[usize]| g.empty(shape).unwrap();
    let mut rec = Recorder::new(g);
    let x = t(&[2, 6, 7, 5]);
    let window = Window::new(3, 1, 1);
    let sub = Subtraction {
        window,
        act: Activation::None,
    };
    let out = t(&[2, 6, 9, 35]);
    let msg = refused(gpu_ops::subtraction2(
        &mut rec,
        &x,
        &t(&[2, 6, 7, 6]),
        &out,
        &sub,
    ));
    assert!(msg.contains("x1 and x2 must have one shape"), "{msg}");
    let msg = refused(gpu_ops::subtraction2(
        &mut rec,
        &x,
        &x,
        &t(&[2, 6, 9, 36]),
        &sub,
    ));
    assert!(
        msg.contains("output must have shape [2, 6, 9, 35]"),
        "{msg}"
    );
    let even = Subtraction {
        window: Window::new(4, 1, 1),
        ..sub
    };
    let msg = refused(gpu_ops::subtraction2(&mut rec, &x, &x, &out, &even));
    assert!(msg.contains("odd kernel"), "{msg}");
    // Padding beyond the centre offset would read centres outside the map.
    let wide = Subtraction {
        window: window.with_padding(2).with_pad_mode(PadMode::Zero),
        ..sub
    };
    let msg = refused(gpu_ops::subtraction2(&mut rec, &x, &x, &out, &wide));
    assert!(msg.contains("centres outside"), "{msg}");

    let agg = Aggregation {
        window,
        epilogue: Epilogue::default(),
    };
    let y = t(&[2, 6, 7, 5]);
    for (bad, why) in [
        ([2, 4, 9, 35], "Cw 4 does not divide 6"),
        ([2, 2, 8, 35], "taps"),
        ([2, 2, 9, 36], "positions"),
        ([1, 2, 9, 35], "batch"),
    ] {
        let msg = refused(gpu_ops::aggregation(&mut rec, &x, &t(&bad), None, &y, &agg));
        assert!(
            msg.contains("weights must be [2, Cw, 9, 35]"),
            "{why}: {msg}"
        );
    }
    let wt = t(&[2, 2, 9, 35]);
    let fused = Aggregation {
        window,
        epilogue: Epilogue {
            affine: true,
            act: Activation::Relu,
        },
    };
    let msg = refused(gpu_ops::aggregation(&mut rec, &x, &wt, None, &y, &fused));
    assert!(msg.contains("needs scale and shift"), "{msg}");
    let msg = refused(gpu_ops::aggregation(
        &mut rec,
        &x,
        &wt,
        Some((&t(&[2]), &t(&[6]))),
        &y,
        &fused,
    ));
    assert!(msg.contains("scale and shift must be [6]"), "{msg}");
    let msg = refused(gpu_ops::aggregation(
        &mut rec,
        &x,
        &wt,
        Some((&t(&[6]), &t(&[6]))),
        &y,
        &agg,
    ));
    assert!(
        msg.contains("needs scale and shift exactly when set"),
        "{msg}"
    );

    let gather = PatchGather {
        kernel: 3,
        epilogue: Epilogue::default(),
    };
    let msg = refused(gpu_ops::patch_gather(
        &mut rec,
        &x,
        None,
        &t(&[2, 54, 35, 1]),
        &gather,
    ));
    assert!(
        msg.contains("output must have shape [2, 54, 1, 35]"),
        "{msg}"
    );
    let msg = refused(gpu_ops::unfold(
        &mut rec,
        &t(&[2, 6, 2, 5]),
        &t(&[2, 54, 3]),
        &Unfold {
            kernel: 3,
            stride: 1,
        },
    ));
    assert!(msg.contains("kernel 3"), "{msg}");
    let msg = refused(gpu_ops::reflection_pad(
        &mut rec,
        &t(&[6, 7, 5]),
        &y,
        &ReflectPad { pad: 1 },
    ));
    assert!(msg.contains("rank 4"), "{msg}");
}

/// A relation as SAN's attention fusions write it into its slot of a concatenation: pairwise
/// attention's subtraction (`concat_with_subtraction`) and patchwise attention's gathered
/// patches with their affine epilogue (`concat_with_patch_gather`).
enum Producer {
    Subtraction(Tensor, Tensor, Subtraction),
    Gather(Tensor, Tensor, Tensor, PatchGather),
}

impl Producer {
    fn reference(&self) -> Tensor {
        match self {
            Self::Subtraction(x1, x2, spec) => cpu::subtraction2(x1, x2, spec).unwrap(),
            Self::Gather(x, s, t, spec) => cpu::patch_gather(x, Some((s, t)), spec).unwrap(),
        }
    }

    /// Computes the relation into input `index` of `ins`, concatenated into `out`, or (not
    /// `fused`) into `relation`, then concatenates.
    #[allow(clippy::too_many_arguments)]
    fn record(
        &self,
        g: &Gpu,
        rec: &mut Recorder,
        fused: bool,
        ins: &[&GpuTensor],
        index: usize,
        relation: &GpuTensor,
        out: &GpuTensor,
    ) -> gaze::Result<()> {
        let up = |t: &Tensor| g.upload(t).unwrap();
        let concat = gaze::ops::tensor_ops::Concat { axis: 1 };
        let mut copied = ins.to_vec();
        copied[index] = relation;
        match (self, fused) {
            (Self::Subtraction(x1, x2, spec), true) => {
                let (g1, g2) = (up(x1), up(x2));
                gpu_ops::concat_with_subtraction(rec, &g1, &g2, spec, ins, index, out, &concat)
            }
            (Self::Gather(x, s, t, spec), true) => {
                let (gx, gs, gt) = (up(x), up(s), up(t));
                let aff = Some((&gs, &gt));
                gpu_ops::concat_with_patch_gather(rec, &gx, aff, spec, ins, index, out, &concat)
            }
            (Self::Subtraction(x1, x2, spec), false) => {
                gpu_ops::subtraction2(rec, &up(x1), &up(x2), relation, spec)?;
                gaze::kernels::tensor_ops::concat(rec, &copied, out, &concat)
            }
            (Self::Gather(x, s, t, spec), false) => {
                let aff = Some((&up(s), &up(t)));
                gpu_ops::patch_gather(rec, &up(x), aff, relation, spec)?;
                gaze::kernels::tensor_ops::concat(rec, &copied, out, &concat)
            }
        }
    }
}

/// Each relation written into its slot of a concatenation: the same floats as the relation
/// then the concatenation on the GPU (the same kernel computes each value, so the test asks
/// for equality), and the CPU reference's within FP32_REL_L2. The relation is input 0 beside
/// a batch-1 term, as in pairwise SAN, and input 1 after another, as in patchwise SAN, and
/// between two others; on a device with 64 kB bindings the batch runs in chunks.
#[test]
fn relations_into_their_slots_of_a_concatenation() {
    use gaze::reference::tensor_ops as cpu_tensor_ops;
    let mut rng = Rng::new(52);
    let shape = [5, 4, 11, 9];
    let gather = PatchGather {
        kernel: 3,
        epilogue: Epilogue {
            affine: true,
            act: Activation::Relu,
        },
    };
    let producers = [
        Producer::Subtraction(
            rng.tensor(&shape),
            rng.tensor(&shape),
            Subtraction {
                window: Window::new(3, 1, 1),
                act: Activation::Relu,
            },
        ),
        Producer::Gather(
            rng.tensor(&shape),
            rng.tensor(&[36]),
            rng.tensor(&[36]),
            gather,
        ),
    ];
    let concat = gaze::ops::tensor_ops::Concat { axis: 1 };
    for producer in &producers {
        let relation = producer.reference();
        assert!(
            relation.numel() * 4 > 1 << 16,
            "the chunked run needs chunks"
        );
        let [_, _, rows, cols] = [0, 1, 2, 3].map(|i| relation.shape()[i]);
        let single = rng.tensor(&[1, 2, rows, cols]);
        let other = rng.tensor(&[5, 3, rows, cols]);
        for (g, what) in [(gpu(), "whole"), (&small_binding_gpu(), "in chunks")] {
            let (g_single, g_other) = (g.upload(&single).unwrap(), g.upload(&other).unwrap());
            let placements: [(Vec<&Tensor>, Vec<&GpuTensor>, usize); 3] = [
                (vec![&single], vec![&g_single], 0),
                (vec![&other], vec![&g_other], 1),
                (vec![&other, &single], vec![&g_other, &g_single], 1),
            ];
            for (mut parts, mut ins, index) in placements {
                parts.insert(index, &relation);
                let want = cpu_tensor_ops::concat(&parts, &concat).unwrap();
                // The relation's own tensor gives the fused launchers its shape only.
                let relation_gpu = g.empty(relation.shape()).unwrap();
                ins.insert(index, &relation_gpu);
                let [fused, unfused] = [true, false].map(|fused| {
                    run_on(g, want.shape(), |rec, out| {
                        producer.record(g, rec, fused, &ins, index, &relation_gpu, out)
                    })
                });
                let what = format!("{what}, relation at {index} of {}", ins.len());
                assert_eq!(
                    fused.data(),
                    unfused.data(),
                    "{what}: fused against unfused"
                );
                assert_close(&fused, &want, FP32_REL_L2, &what);
            }
        }
    }
}

/// A concatenation whose input at `index` is not the subtraction's shape is refused, naming
/// both shapes; so is one along an axis other than the channels.
#[test]
fn a_misplaced_relation_is_refused() {
    use gaze::ops::tensor_ops::Concat;
    let mut rng = Rng::new(53);
    let shape = [1, 2, 6, 5];
    let (g1, g2) = (upload(&rng.tensor(&shape)), upload(&rng.tensor(&shape)));
    let spec = Subtraction {
        window: Window::new(3, 1, 1),
        act: Activation::None,
    };
    let relation = gpu().empty(&[1, 2, 9, 30]).unwrap();
    let other = gpu().empty(&[1, 3, 9, 30]).unwrap();
    let attempt = |ins: &[&GpuTensor], index: usize, out: &[usize], axis: usize| {
        let out = gpu().empty(out).unwrap();
        let mut rec = Recorder::new(gpu());
        let concat = Concat { axis };
        refused(gpu_ops::concat_with_subtraction(
            &mut rec, &g1, &g2, &spec, ins, index, &out, &concat,
        ))
    };
    let err = attempt(&[&relation, &other], 1, &[1, 5, 9, 30], 1);
    assert!(
        err.contains("[1, 3, 9, 30]") && err.contains("[1, 2, 9, 30]"),
        "{err}"
    );
    let err = attempt(&[&relation, &relation], 0, &[1, 2, 18, 30], 2);
    assert!(err.contains("channel"), "{err}");
}

/// SAN's attention computes its relation into the concatenation conv_w reads, on every device
/// by default: per SAM one subtraction (pairwise) or patch gather (patchwise) and one copy (the
/// position term, or conv1's output), where the unfused plan copies the relation too. Both
/// plans give the same floats (the same kernels compute every value), and the CPU reference's
/// within FP32_REL_L2, at batch 2 on 9×7.
#[test]
fn san_computes_its_relation_into_the_concatenation() {
    use gaze::graph::fuse::Fusion;
    use gaze::graph::{cpu as graph_cpu, gpu::GpuGraph};
    let shape = vec![2, 64, 9, 7];
    for (sa_type, relation) in [
        ("pairwise", "san_subtraction"),
        ("patchwise", "san_patch_gather"),
    ] {
        let opts = [
            ("kernel_size".to_string(), "7".to_string()),
            ("sa_type".to_string(), sa_type.to_string()),
        ]
        .into();
        let graph =
            gaze::models::build_synthetic("san_sam", 4, std::slice::from_ref(&shape), &opts)
                .unwrap();
        let inputs = [Rng::new(9).tensor(&shape)];
        let want = graph_cpu::run(&graph, &inputs).unwrap();
        let mut outputs = Vec::new();
        for (fusion, copies) in [(Fusion::ALL, 1), (Fusion::EVERYWHERE, 1), (Fusion::NONE, 2)] {
            let what = format!("{sa_type} {fusion:?}");
            let model = GpuGraph::with_fusion(gpu(), &graph, fusion).unwrap();
            let got = model.run_blocking(gpu(), &inputs).unwrap();
            assert_close(&got, &want, FP32_REL_L2, &what);
            let mut rec = Recorder::new(gpu());
            model.record(gpu(), &mut rec, &inputs).unwrap();
            let kernels: Vec<String> = (rec.dispatch_variants().into_iter())
                .map(|d| d.1.split(' ').next().unwrap_or("").to_string())
                .collect();
            let count = |k: &str| kernels.iter().filter(|v| *v == k).count();
            let counts = (count(relation), count("concat"));
            assert_eq!(counts, (1, copies), "{what}: {kernels:?}");
            outputs.push(got);
        }
        assert_eq!(
            outputs[0].data(),
            outputs[2].data(),
            "{sa_type}: fused against unfused"
        );
    }
}
