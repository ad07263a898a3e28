//! Triplet Attention kernels against the CPU reference, and the whole module on the GPU against
//! the reference computed the PyTorch way (with permutes).

mod common;

use common::*;
use gaze::gpu::{Gpu, GpuOptions, GpuTensor, LimitOverrides, Recorder};
use gaze::kernels::triplet as gpu_ops;
use gaze::ops::triplet::{Gate, GateMaps, TripletCombine, TripletGates, ZAxis, ZPool};
use gaze::ops::Activation;
use gaze::reference::triplet as cpu;
use gaze::Tensor;

/// Batch > 1, odd and non-square planes, channel counts that are not multiples of 4.
const SHAPES: &[[usize; 4]] = &[[2, 3, 1, 1], [3, 5, 7, 5], [2, 7, 13, 17], [2, 3, 224, 224]];

fn t(shape: &[usize], data: &[f32]) -> Tensor {
    Tensor::new(shape.to_vec(), data.to_vec()).unwrap()
}

fn random_gate(rng: &mut Rng, k: usize) -> Gate<Tensor> {
    Gate {
        weight: rng.tensor(&[1, 2, k, k]),
        bias: rng.tensor(&[1]),
    }
}

fn random_gates(rng: &mut Rng, k: usize, no_spatial: bool) -> TripletGates<Tensor> {
    TripletGates {
        hw: (!no_spatial).then(|| random_gate(rng, k)),
        cw: random_gate(rng, k),
        hc: random_gate(rng, k),
    }
}

fn upload_gate(g: &Gate<Tensor>) -> Gate<GpuTensor> {
    Gate {
        weight: upload(&g.weight),
        bias: upload(&g.bias),
    }
}

fn upload_gates(g: &TripletGates<Tensor>) -> TripletGates<GpuTensor> {
    TripletGates {
        hw: g.hw.as_ref().map(upload_gate),
        cw: upload_gate(&g.cw),
        hc: upload_gate(&g.hc),
    }
}

#[test]
fn zpool_matches_reference() {
    let mut rng = Rng::new(21);
    for shape in SHAPES.iter().chain(&[[1, 70, 3, 100]]) {
        let x = rng.tensor(shape);
        let gx = upload(&x);
        for axis in ZAxis::ALL {
            let spec = ZPool { axis };
            let out = spec.out_shape(shape).unwrap();
            let got = run_gpu(&out, |rec, o| gpu_ops::zpool(rec, &gx, o, &spec));
            let want = cpu::zpool(&x, &spec).unwrap();
            assert_close(&got, &want, FP32_REL_L2, &format!("{axis:?} {shape:?}"));
        }
    }
}

#[test]
fn zpool_reference_by_hand() {
    // x[0,c,h,w] = 100c + 10h + w on C=2, H=2, W=3; all values positive, so max ≠ mean.
    let x = Tensor::from_fn(&[1, 2, 2, 3], |i| {
        let (c, h, w) = (i / 6, (i / 3) % 2, i % 3);
        (100 * c + 10 * h + w) as f32
    });
    let pool = |axis| cpu::zpool(&x, &ZPool { axis }).unwrap();
    #[rustfmt::skip]
    let over_c = t(&[1, 2, 2, 3], &[100.0, 101.0, 102.0, 110.0, 111.0, 112.0,
                                    50.0, 51.0, 52.0, 60.0, 61.0, 62.0]);
    assert_eq!(pool(ZAxis::C), over_c);
    #[rustfmt::skip]
    let over_h = t(&[1, 2, 2, 3], &[10.0, 11.0, 12.0, 110.0, 111.0, 112.0,
                                    5.0, 6.0, 7.0, 105.0, 106.0, 107.0]);
    assert_eq!(pool(ZAxis::H), over_h);
    // [N,2,H,C]: rows are h, columns c.
    #[rustfmt::skip]
    let over_w = t(&[1, 2, 2, 2], &[2.0, 102.0, 12.0, 112.0,
                                    1.0, 101.0, 11.0, 111.0]);
    assert_eq!(pool(ZAxis::W), over_w);
}

#[test]
fn gate_matches_reference() {
    let mut rng = Rng::new(22);
    let planes = [
        [2, 2, 1, 1],
        [3, 2, 7, 5],
        [2, 2, 13, 17],
        [2, 2, 224, 3],
        [2, 2, 3, 224],
    ];
    for shape in planes {
        let pooled = rng.tensor(&shape);
        let gp = upload(&pooled);
        for k in [3, 7] {
            let g = random_gate(&mut rng, k);
            let gg = upload_gate(&g);
            let out = [shape[0], 1, shape[2], shape[3]];
            let got = run_gpu(&out, |rec, o| gpu_ops::gate(rec, &gp, &gg, o));
            let want = cpu::gate(&pooled, &g).unwrap();
            assert_close(&got, &want, FP32_REL_L2, &format!("k={k} {shape:?}"));
        }
    }
}

#[test]
fn gate_reference_rows_run_along_the_first_plane_axis() {
    // One tap at kernel row 0, column 2: output (a, b) reads pooled (a − 1, b + 1).
    let mut weight = Tensor::zeros(&[1, 2, 3, 3]);
    weight.data_mut()[2] = 4.0;
    let g = Gate {
        weight,
        bias: t(&[1], &[-1.0]),
    };
    let mut pooled = Tensor::zeros(&[1, 2, 3, 4]);
    pooled.data_mut()[4 + 1] = 1.0; // channel 0, (a, b) = (1, 1)
    let y = cpu::gate(&pooled, &g).unwrap();
    let sig = |v: f32| 1.0 / (1.0 + (-v).exp());
    for (i, v) in y.data().iter().enumerate() {
        let want = if i == 2 * 4 { sig(3.0) } else { sig(-1.0) };
        assert_eq!(*v, want, "gate output {i}");
    }
}

#[test]
fn combine_matches_reference() {
    let mut rng = Rng::new(23);
    for &[n, c, h, w] in SHAPES {
        let x = rng.tensor(&[n, c, h, w]);
        let (g_hw, g_cw, g_hc) = (
            rng.tensor_in(&[n, 1, h, w], 0.0, 1.0),
            rng.tensor_in(&[n, 1, c, w], 0.0, 1.0),
            rng.tensor_in(&[n, 1, h, c], 0.0, 1.0),
        );
        let res = rng.tensor(&[n, c, h, w]);
        let gpu_in = [&x, &g_hw, &g_cw, &g_hc, &res].map(upload);
        let [gx, ghw, gcw, ghc, gres] = &gpu_in;
        for three in [true, false] {
            for (residual, act) in [(false, Activation::None), (true, Activation::Relu)] {
                let spec = TripletCombine { act };
                let maps = GateMaps {
                    hw: three.then_some(&g_hw),
                    cw: &g_cw,
                    hc: &g_hc,
                };
                let want = cpu::combine(&x, &maps, residual.then_some(&res), &spec).unwrap();
                let gmaps = GateMaps {
                    hw: three.then_some(ghw),
                    cw: gcw,
                    hc: ghc,
                };
                let got = run_gpu(&[n, c, h, w], |rec, o| {
                    gpu_ops::combine(rec, gx, &gmaps, residual.then_some(gres), o, &spec)
                });
                let what = format!("3-branch {three}, residual {residual} {:?}", [n, c, h, w]);
                assert_close(&got, &want, FP32_REL_L2, &what);
            }
        }
    }
}

fn module_case(
    gpu: &Gpu,
    shape: [usize; 4],
    k: usize,
    no_spatial: bool,
    residual: bool,
    seed: u64,
) {
    let mut rng = Rng::new(seed);
    let x = rng.tensor(&shape);
    let res = rng.tensor(&shape);
    let gates = random_gates(&mut rng, k, no_spatial);
    let act = if residual {
        Activation::Relu
    } else {
        Activation::None
    };
    let want = cpu::triplet_attention(&x, &gates, residual.then_some(&res), act).unwrap();
    let up = |t: &Tensor| gpu.upload(t).unwrap();
    let (gx, gres) = (up(&x), up(&res));
    let ggates = TripletGates {
        hw: gates.hw.as_ref().map(|g| Gate {
            weight: up(&g.weight),
            bias: up(&g.bias),
        }),
        cw: Gate {
            weight: up(&gates.cw.weight),
            bias: up(&gates.cw.bias),
        },
        hc: Gate {
            weight: up(&gates.hc.weight),
            bias: up(&gates.hc.bias),
        },
    };
    let got = run_on(gpu, &shape, |rec, out| {
        gpu_ops::triplet_attention(rec, &gx, &ggates, residual.then_some(&gres), act, out)
    });
    let what = format!("TA k={k} no_spatial={no_spatial} residual={residual} {shape:?}");
    assert_close(&got, &want, FP32_REL_L2, &what);
}

#[test]
fn module_matches_literal_reference() {
    let mut seed = 100;
    for &shape in SHAPES {
        for k in [3, 7] {
            for no_spatial in [false, true] {
                for residual in [false, true] {
                    seed += 1;
                    module_case(gpu(), shape, k, no_spatial, residual, seed);
                }
            }
        }
    }
}

#[test]
fn module_splits_batches_past_the_binding_limit() {
    let limit = 1 << 20;
    let options = GpuOptions {
        limit_overrides: LimitOverrides {
            max_storage_buffer_binding_size: Some(limit),
        },
        ..Default::default()
    };
    let g = Gpu::new_blocking(&options).expect("GPU tests need an adapter (lavapipe in CI)");
    // 338 kB per image, 1.35 MB in all.
    let shape = [4, 5, 130, 130];
    module_case(&g, shape, 7, false, true, 7);
    module_case(&g, shape, 3, true, false, 8);
}

#[test]
fn index_form_reference_equals_literal_reference() {
    let mut rng = Rng::new(24);
    let x = rng.tensor(&[2, 5, 7, 9]);
    let gates = random_gates(&mut rng, 7, false);
    let pool = |axis| cpu::zpool(&x, &ZPool { axis }).unwrap();
    let g_hw = cpu::gate(&pool(ZAxis::C), gates.hw.as_ref().unwrap()).unwrap();
    let g_cw = cpu::gate(&pool(ZAxis::H), &gates.cw).unwrap();
    let g_hc = cpu::gate(&pool(ZAxis::W), &gates.hc).unwrap();
    let maps = GateMaps {
        hw: Some(&g_hw),
        cw: &g_cw,
        hc: &g_hc,
    };
    let spec = TripletCombine::default();
    let index_form = cpu::combine(&x, &maps, None, &spec).unwrap();
    let literal = cpu::triplet_attention(&x, &gates, None, Activation::None).unwrap();
    assert_close(&index_form, &literal, FP32_REL_L2, "index form vs permutes");
}

#[test]
fn bad_gate_shapes_are_refused() {
    let mut rng = Rng::new(25);
    let pooled = [2, 2, 5, 6];
    for (w, b) in [
        (vec![1, 2, 4, 4], vec![1]),
        (vec![1, 2, 3, 5], vec![1]),
        (vec![2, 2, 3, 3], vec![1]),
        (vec![1, 1, 3, 3], vec![1]),
        (vec![1, 2, 3, 3], vec![2]),
    ] {
        let g = Gate {
            weight: rng.tensor(&w),
            bias: rng.tensor(&b),
        };
        let msg = g.out_shape(&pooled).unwrap_err().to_string();
        assert!(
            msg.contains("triplet_gate") && msg.contains(&format!("{w:?}")),
            "{msg}"
        );
    }
    let g = random_gate(&mut rng, 3);
    let msg = g.out_shape(&[2, 3, 5, 6]).unwrap_err().to_string();
    assert!(
        msg.contains("[N, 2, A, B]") && msg.contains("[2, 3, 5, 6]"),
        "{msg}"
    );
    let gates = TripletGates {
        hw: Some(Gate {
            weight: rng.tensor(&[1, 2, 2, 2]),
            bias: rng.tensor(&[1]),
        }),
        cw: random_gate(&mut rng, 3),
        hc: random_gate(&mut rng, 3),
    };
    assert!(
        cpu::triplet_attention(&rng.tensor(&[1, 2, 3, 4]), &gates, None, Activation::None).is_err()
    );
}

#[test]
fn bad_combine_and_module_shapes_are_refused() {
    let mut rng = Rng::new(26);
    let [n, c, h, w] = [2, 3, 5, 7];
    let x = rng.tensor(&[n, c, h, w]);
    let (g_cw, g_hc) = (rng.tensor(&[n, 1, c, w]), rng.tensor(&[n, 1, h, c]));
    let spec = TripletCombine::default();
    // cw and hc swapped: the shapes differ on a non-square input, and the error names both.
    let swapped = GateMaps {
        hw: None,
        cw: &g_hc,
        hc: &g_cw,
    };
    let msg = cpu::combine(&x, &swapped, None, &spec)
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("cw gate") && msg.contains("[2, 1, 3, 7]"),
        "{msg}"
    );
    let maps = GateMaps {
        hw: None,
        cw: &g_cw,
        hc: &g_hc,
    };
    let wrong_res = rng.tensor(&[n, c, h, w + 1]);
    let msg = cpu::combine(&x, &maps, Some(&wrong_res), &spec)
        .unwrap_err()
        .to_string();
    assert!(msg.contains("residual"), "{msg}");
    assert!(cpu::zpool(&rng.tensor(&[2, 3, 4]), &ZPool { axis: ZAxis::H }).is_err());

    let gates = upload_gates(&random_gates(&mut rng, 7, false));
    let gx = upload(&x);
    let mut rec = Recorder::new(gpu());
    let out = gpu().empty(&[n, c, h, w + 1]).unwrap();
    let msg = gpu_ops::triplet_attention(&mut rec, &gx, &gates, None, Activation::None, &out)
        .unwrap_err()
        .to_string();
    assert!(msg.contains("output must have shape [2, 3, 5, 7]"), "{msg}");
    let out = gpu().empty(&[n, c, h, w]).unwrap();
    let gres = upload(&wrong_res);
    let r = gpu_ops::triplet_attention(&mut rec, &gx, &gates, Some(&gres), Activation::Relu, &out);
    assert!(r.unwrap_err().to_string().contains("residual"));
    assert_eq!(
        rec.dispatch_count(),
        0,
        "nothing is recorded for a refused call"
    );
}
