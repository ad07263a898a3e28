//! Triplet Attention's three kernels (pool, gates, combine) against the CPU reference, and the
//! whole module on the GPU against the reference computed the PyTorch way (with permutes).

mod common;

use common::*;
use gaze::gpu::{Gpu, GpuOptions, GpuTensor, LimitOverrides, Recorder};
use gaze::kernels::triplet::{self as gpu_ops, PoolKernel};
use gaze::kernels::Layout;
use gaze::ops::triplet::{
    Gate, TripletCombine, TripletDims, TripletGateSpec, TripletGates, TripletPool, ZAxis, ZPool,
};
use gaze::ops::Activation;
use gaze::reference::triplet as cpu;
use gaze::Tensor;

/// Batch > 1, odd and non-square planes, channel counts that are not multiples of 4, a plane
/// narrower than the gate tile (cw of 40×7 slides along C) and one large plane.
const SHAPES: &[[usize; 4]] = &[
    [2, 3, 1, 1],
    [3, 5, 7, 5],
    [2, 7, 13, 17],
    [1, 40, 9, 7],
    [2, 3, 224, 224],
];

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

fn dims(shape: [usize; 4], has_hw: bool) -> TripletDims {
    TripletDims::of("test", &shape, has_hw).unwrap().1
}

/// Every pool variant this device runs: streamed planes with subgroups where it has them,
/// without, and lines.
fn pool_paths() -> Vec<PoolKernel> {
    PoolKernel::candidates(gpu())
}

/// Each image's pooled maps, without the scratch after them (not part of the result).
fn maps(pooled: &Tensor, d: &TripletDims) -> Tensor {
    let (n, len, keep) = (pooled.shape()[0], d.pooled_len(), d.maps_len());
    Tensor::from_fn(&[n, keep], |i| pooled.data()[(i / keep) * len + i % keep])
}

#[test]
fn pool_matches_reference() {
    let mut rng = Rng::new(21);
    for shape in SHAPES.iter().chain(&[[1, 70, 3, 100], [2, 9, 4, 129]]) {
        let x = rng.tensor(shape);
        let gx = upload(&x);
        for has_hw in [true, false] {
            let spec = TripletPool { has_hw };
            let d = dims(*shape, has_hw);
            let out = spec.out_shape(shape).unwrap();
            let want = maps(&cpu::triplet_pool(&x, &spec).unwrap(), &d);
            for kernel in pool_paths() {
                let got = run_gpu(&out, |rec, o| {
                    gpu_ops::triplet_pool_as(rec, &gx, o, &spec, kernel)
                });
                let what = format!("hw {has_hw} {kernel} {shape:?}");
                assert_close(&maps(&got, &d), &want, FP32_REL_L2, &what);
            }
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
    // Packed: the three Z-pools one after the other, each max map then mean map, then the
    // scratch (one group of HW_GROUP channels: a max and a sum map [H, W]).
    let spec = TripletPool { has_hw: true };
    let d = dims([1, 2, 2, 3], true);
    assert_eq!((d.maps_len(), d.scratch_len()), (32, 12));
    let packed = cpu::triplet_pool(&x, &spec).unwrap();
    let concat: Vec<f32> = [over_c, over_h, over_w]
        .iter()
        .flat_map(|p| p.data().to_vec())
        .collect();
    assert_eq!(maps(&packed, &d), t(&[1, 32], &concat));
    let gx = upload(&x);
    for kernel in pool_paths() {
        let got = run_gpu(&[1, 44], |rec, o| {
            gpu_ops::triplet_pool_as(rec, &gx, o, &spec, kernel)
        });
        let what = format!("small integers pool exactly ({kernel})");
        assert_eq!(maps(&got, &d), t(&[1, 32], &concat), "{what}");
    }
}

/// Random packed pools for `d` and random gates of size k.
fn gate_case(rng: &mut Rng, n: usize, d: TripletDims, k: usize) -> (Tensor, Tensor, Tensor) {
    let pooled = rng.tensor(&[n, d.pooled_len()]);
    let (weight, bias) = random_gates(rng, k, !d.has_hw).pack().unwrap();
    (pooled, weight, bias)
}

#[test]
fn gates_match_reference() {
    let mut rng = Rng::new(22);
    let extra = [
        [2, 2, 224, 3],
        [2, 33, 3, 224],
        [1, 64, 56, 56],
        [2, 300, 7, 7],
    ];
    for &shape in SHAPES.iter().chain(&extra) {
        for (k, has_hw) in [(1, true), (3, false), (5, true), (7, true), (7, false)] {
            let d = dims(shape, has_hw);
            let n = shape[0];
            let (pooled, weight, bias) = gate_case(&mut rng, n, d, k);
            let spec = TripletGateSpec { dims: d };
            let [gp, gw, gb] = [&pooled, &weight, &bias].map(upload);
            let want = cpu::triplet_gates(&pooled, &weight, &bias, &spec).unwrap();
            for layout in Layout::ALL {
                let got = run_gpu(&[n, d.gates_len()], |rec, o| {
                    gpu_ops::triplet_gates_as(rec, &gp, &gw, &gb, o, &spec, layout)
                });
                let what = format!("{layout}, k={k} hw {has_hw} {shape:?}");
                assert_close(&got, &want, FP32_REL_L2, &what);
            }
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
fn gates_keep_rows_and_columns_apart_on_every_plane() {
    // One asymmetric tap (row 0, column 2 of the max map) on a plane per orientation: the cw
    // plane of 40×7 slides along its rows, the others along their columns.
    let d = dims([1, 40, 9, 7], true);
    let mut weight = Tensor::zeros(&[3, 2, 3, 3]);
    for g in 0..3 {
        weight.data_mut()[g * 18 + 2] = 4.0;
    }
    let bias = t(&[3], &[-1.0, -1.0, -1.0]);
    let pooled = Rng::new(27).tensor(&[1, d.pooled_len()]);
    let spec = TripletGateSpec { dims: d };
    let want = cpu::triplet_gates(&pooled, &weight, &bias, &spec).unwrap();
    let [gp, gw, gb] = [&pooled, &weight, &bias].map(upload);
    for layout in Layout::ALL {
        let got = run_gpu(&[1, d.gates_len()], |rec, o| {
            gpu_ops::triplet_gates_as(rec, &gp, &gw, &gb, o, &spec, layout)
        });
        assert_close(
            &got,
            &want,
            FP32_REL_L2,
            &format!("{layout}: asymmetric tap"),
        );
    }
    let sig = |v: f32| 1.0 / (1.0 + (-v).exp());
    for plane in d.planes() {
        let (r, c) = (plane.rows - 1, 0);
        let src = pooled.data()[plane.pooled + (r - 1) * plane.cols + c + 1];
        let got = want.data()[plane.gate + r * plane.cols + c];
        assert!((got - sig(4.0 * src - 1.0)).abs() < 1e-6, "{plane:?}");
    }
}

#[test]
fn combine_matches_reference() {
    let mut rng = Rng::new(23);
    for &shape in SHAPES {
        let x = rng.tensor(&shape);
        let res = rng.tensor(&shape);
        let (gx, gres) = (upload(&x), upload(&res));
        for has_hw in [true, false] {
            let d = dims(shape, has_hw);
            let gates = rng.tensor_in(&[shape[0], d.gates_len()], 0.0, 1.0);
            let gg = upload(&gates);
            for (residual, act) in [(false, Activation::None), (true, Activation::Relu)] {
                let spec = TripletCombine { has_hw, act };
                let want =
                    cpu::triplet_combine(&x, &gates, residual.then_some(&res), &spec).unwrap();
                for layout in Layout::ALL {
                    let got = run_gpu(&shape, |rec, o| {
                        let res = residual.then_some(&gres);
                        gpu_ops::triplet_combine_as(rec, &gx, &gg, res, o, &spec, layout)
                    });
                    let what = format!("{layout}, hw {has_hw}, residual {residual} {shape:?}");
                    assert_close(&got, &want, FP32_REL_L2, &what);
                }
            }
        }
    }
}

/// Pool → gates → combine on `gpu`, intermediates allocated here as the graph plans them.
fn module_on(
    gpu: &Gpu,
    x: &Tensor,
    gates: &TripletGates<Tensor>,
    residual: Option<&Tensor>,
    act: Activation,
    kernel: PoolKernel,
) -> Tensor {
    let up = |t: &Tensor| gpu.upload(t).unwrap();
    let has_hw = gates.hw.is_some();
    let (weight, bias) = gates.pack().unwrap();
    let (gx, gw, gb) = (up(x), up(&weight), up(&bias));
    let gres = residual.map(up);
    let pool = TripletPool { has_hw };
    let d = pool.dims(x.shape()).unwrap().1;
    let pooled = gpu.empty(&pool.out_shape(x.shape()).unwrap()).unwrap();
    let maps = gpu.empty(&[x.shape()[0], d.gates_len()]).unwrap();
    let combine = TripletCombine { has_hw, act };
    run_on(gpu, x.shape(), |rec, out| {
        gpu_ops::triplet_pool_as(rec, &gx, &pooled, &pool, kernel)?;
        gpu_ops::triplet_gates(rec, &pooled, &gw, &gb, &maps, &TripletGateSpec { dims: d })?;
        gpu_ops::triplet_combine(rec, &gx, &maps, gres.as_ref(), out, &combine)
    })
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
    for kernel in PoolKernel::candidates(gpu) {
        let got = module_on(gpu, &x, &gates, residual.then_some(&res), act, kernel);
        let what =
            format!("TA k={k} no_spatial={no_spatial} residual={residual} {kernel} {shape:?}");
        assert_close(&got, &want, FP32_REL_L2, &what);
    }
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
    module_case(gpu(), [2, 6, 9, 11], 5, false, true, 99);
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
    for no_spatial in [false, true] {
        let gates = random_gates(&mut rng, 7, no_spatial);
        let has_hw = !no_spatial;
        let (weight, bias) = gates.pack().unwrap();
        let pool = TripletPool { has_hw };
        let d = pool.dims(x.shape()).unwrap().1;
        let pooled = cpu::triplet_pool(&x, &pool).unwrap();
        let maps = cpu::triplet_gates(&pooled, &weight, &bias, &TripletGateSpec { dims: d });
        let spec = TripletCombine {
            has_hw,
            act: Activation::None,
        };
        let index_form = cpu::triplet_combine(&x, &maps.unwrap(), None, &spec).unwrap();
        let literal = cpu::triplet_attention(&x, &gates, None, Activation::None).unwrap();
        let what = format!("index form vs permutes, no_spatial {no_spatial}");
        assert_close(&index_form, &literal, FP32_REL_L2, &what);
    }
}

#[test]
fn graph_runs_ta_in_four_dispatches_and_keeps_the_gate_maps() {
    // Pools (hw, then cw and hc by planes), gates, combine.
    check_attention_graph(
        "triplet_attention",
        &[2, 6, 9, 11],
        &["input", "triplet_pool", "triplet_gates", "triplet_combine"],
        &[("hw", 0, 9, 11), ("cw", 99, 6, 11), ("hc", 165, 9, 6)],
        4,
    );
}

#[test]
fn bad_gate_shapes_are_refused() {
    let mut rng = Rng::new(25);
    let d = dims([2, 3, 5, 6], true);
    let spec = TripletGateSpec { dims: d };
    let pooled = [2, d.pooled_len()];
    for (w, b) in [
        (vec![3, 2, 4, 4], vec![3]),
        (vec![3, 2, 3, 5], vec![3]),
        (vec![2, 2, 3, 3], vec![3]),
        (vec![3, 1, 3, 3], vec![3]),
        (vec![3, 2, 3, 3], vec![2]),
    ] {
        let msg = spec.out_shape(&pooled, &w, &b).unwrap_err().to_string();
        assert!(
            msg.contains("triplet_gates") && msg.contains(&format!("{w:?}")),
            "{msg}"
        );
    }
    let msg = spec
        .out_shape(&[2, d.pooled_len() + 1], &[3, 2, 3, 3], &[3])
        .unwrap_err()
        .to_string();
    assert!(msg.contains("packed pools"), "{msg}");
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
    let mixed = TripletGates {
        hw: Some(random_gate(&mut rng, 7)),
        cw: random_gate(&mut rng, 3),
        hc: random_gate(&mut rng, 3),
    };
    let msg = mixed.pack().unwrap_err().to_string();
    assert!(msg.contains("mix kernel sizes"), "{msg}");
}

#[test]
fn bad_combine_and_pool_shapes_are_refused() {
    let mut rng = Rng::new(26);
    let shape = [2, 3, 5, 7];
    let x = rng.tensor(&shape);
    let d = dims(shape, true);
    let spec = TripletCombine {
        has_hw: true,
        act: Activation::None,
    };
    // Gates packed for the 2-branch form are too short for the 3-branch combine.
    let short = rng.tensor(&[2, dims(shape, false).gates_len()]);
    let msg = cpu::triplet_combine(&x, &short, None, &spec)
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("packed gates") && msg.contains("[2, 71]"),
        "{msg}"
    );
    let gates = rng.tensor(&[2, d.gates_len()]);
    let wrong_res = rng.tensor(&[2, 3, 5, 8]);
    let msg = cpu::triplet_combine(&x, &gates, Some(&wrong_res), &spec)
        .unwrap_err()
        .to_string();
    assert!(msg.contains("residual"), "{msg}");
    assert!(cpu::zpool(&rng.tensor(&[2, 3, 4]), &ZPool { axis: ZAxis::H }).is_err());
    assert!(TripletPool { has_hw: true }
        .out_shape(&[1, 0, 4, 4])
        .is_err());

    let (gx, gg, gres) = (upload(&x), upload(&gates), upload(&wrong_res));
    let mut rec = Recorder::new(gpu());
    let out = gpu().empty(&[2, 3, 5, 8]).unwrap();
    let msg = gpu_ops::triplet_combine(&mut rec, &gx, &gg, None, &out, &spec)
        .unwrap_err()
        .to_string();
    assert!(msg.contains("output must have shape [2, 3, 5, 7]"), "{msg}");
    let out = gpu().empty(&shape).unwrap();
    let r = gpu_ops::triplet_combine(&mut rec, &gx, &gg, Some(&gres), &out, &spec);
    assert!(r.unwrap_err().to_string().contains("residual"));
    let bad_pool: GpuTensor = gpu().empty(&[2, d.pooled_len() + 1]).unwrap();
    let r = gpu_ops::triplet_pool(&mut rec, &gx, &bad_pool, &TripletPool { has_hw: true });
    assert!(r.is_err());
    assert_eq!(
        rec.dispatch_count(),
        0,
        "nothing is recorded for a refused call"
    );
}

/// Every pool variant with f16 storage against the reference on the same f16-rounded input:
/// maxima are exact, means are sums in f32 rounded once (F16_SAME_ROUNDING_REL_L2).
#[test]
fn every_pool_variant_at_f16() {
    let g = gpu_f16();
    let mut rng = Rng::new(77);
    for shape in [[2, 24, 9, 7], [1, 96, 14, 14]] {
        let x = rng.tensor(&shape);
        let x = Tensor::from_fn(&shape, |i| gaze::Precision::F16.round(x.data()[i]));
        let gx = g.upload(&x).unwrap();
        for has_hw in [true, false] {
            let spec = TripletPool { has_hw };
            let d = dims(shape, has_hw);
            let out = spec.out_shape(&shape).unwrap();
            let want = maps(&cpu::triplet_pool(&x, &spec).unwrap(), &d);
            let want =
                Tensor::from_fn(want.shape(), |i| gaze::Precision::F16.round(want.data()[i]));
            for kernel in PoolKernel::candidates(g) {
                let got = run_on(g, &out, |rec, o| {
                    gpu_ops::triplet_pool_as(rec, &gx, o, &spec, kernel)
                });
                let what = format!("{kernel} at f16, hw {has_hw} {shape:?}");
                assert_close(&maps(&got, &d), &want, F16_SAME_ROUNDING_REL_L2, &what);
            }
        }
    }
}
