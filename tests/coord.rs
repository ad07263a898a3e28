//! Coordinate Attention's three kernels (pool, gates, apply) against the CPU reference, the
//! reference against the generic ops the module was first built from (means, concat, split,
//! 1×1 convs, broadcast products), and the whole module through the graph.

mod common;

use common::*;
use gaze::gpu::{Gpu, GpuTensor, Recorder};
use gaze::kernels::coord as gpu_ops;
use gaze::kernels::Layout;
use gaze::ops::conv::{Conv2d, Epilogue};
use gaze::ops::coord::{CoordApply, CoordGateSpec, CoordPool};
use gaze::ops::elementwise::{Binary, BinaryOp};
use gaze::ops::pool::{MeanOver, SpatialMean};
use gaze::ops::tensor_ops::{Concat, Split};
use gaze::ops::Activation;
use gaze::reference as r;
use gaze::reference::coord as cpu;
use gaze::Tensor;

/// Batch > 1, odd and non-square planes, channel counts that are not multiples of 4.
const SHAPES: &[[usize; 4]] = &[
    [2, 3, 1, 1],
    [3, 5, 7, 5],
    [2, 7, 13, 17],
    [1, 30, 6, 9],
    [2, 3, 224, 224],
];

fn reshape(t: Tensor, shape: &[usize]) -> Tensor {
    t.reshape(shape).unwrap()
}

#[test]
fn pool_matches_reference() {
    let mut rng = Rng::new(31);
    for shape in SHAPES.iter().chain(&[[1, 70, 3, 100]]) {
        let x = rng.tensor(shape);
        let gx = upload(&x);
        let out = CoordPool.out_shape(shape).unwrap();
        let want = cpu::coord_pool(&x, &CoordPool).unwrap();
        let got = run_gpu(&out, |rec, o| gpu_ops::coord_pool(rec, &gx, o, &CoordPool));
        assert_close(&got, &want, FP32_REL_L2, &format!("{shape:?}"));
        // Every variant a plan may choose.
        for kernel in gpu_ops::pool_candidates() {
            let got = run_gpu(&out, |rec, o| {
                gpu_ops::coord_pool_as(rec, &gx, o, &CoordPool, kernel)
            });
            assert_close(&got, &want, FP32_REL_L2, &format!("{kernel} {shape:?}"));
        }
    }
}

#[test]
fn pool_reference_is_the_two_means_concatenated() {
    let x = Rng::new(32).tensor(&[2, 5, 7, 9]);
    let mean = |over| r::pool::spatial_mean(&x, &SpatialMean { over }).unwrap();
    let z_h = mean(MeanOver::W);
    let z_w = reshape(mean(MeanOver::H), &[2, 5, 9, 1]);
    let cat = r::tensor_ops::concat(&[&z_h, &z_w], &Concat { axis: 2 }).unwrap();
    let got = cpu::coord_pool(&x, &CoordPool).unwrap();
    assert_close(&got, &cat, FP32_REL_L2, "means + concat");
}

fn gate_case(rng: &mut Rng, n: usize, c: usize, h: usize, w: usize, mip: usize) -> [Tensor; 3] {
    [
        rng.tensor(&[n, mip, h + w, 1]),
        rng.tensor(&[2, c, mip]),
        rng.tensor(&[2, c]),
    ]
}

#[test]
fn gates_match_reference() {
    let mut rng = Rng::new(33);
    for &[n, c, h, w] in SHAPES {
        for mip in [1, 8, 13] {
            let [f, weight, bias] = gate_case(&mut rng, n, c, h, w, mip);
            let spec = CoordGateSpec { h, w };
            let [gf, gw, gb] = [&f, &weight, &bias].map(upload);
            let want = cpu::coord_gates(&f, &weight, &bias, &spec).unwrap();
            for layout in Layout::ALL {
                let got = run_gpu(&[n, c * (h + w)], |rec, o| {
                    gpu_ops::coord_gates_as(rec, &gf, &gw, &gb, o, &spec, layout)
                });
                let what = format!("{layout}, mip {mip} {:?}", [n, c, h, w]);
                assert_close(&got, &want, FP32_REL_L2, &what);
            }
        }
    }
}

/// `σ(conv(f_part))` with the part's `[C, mip, 1, 1]` weight, as `[N, C, len]`.
fn conv_part(f: &Tensor, weight: &Tensor, bias: &Tensor, part: usize) -> Tensor {
    let [c, mip] = [weight.shape()[1], weight.shape()[2]];
    let w = Tensor::new(
        vec![c, mip, 1, 1],
        weight.data()[part * c * mip..(part + 1) * c * mip].to_vec(),
    )
    .unwrap();
    let b = Tensor::new(vec![c], bias.data()[part * c..(part + 1) * c].to_vec()).unwrap();
    let ep = Epilogue {
        bias: Some(&b),
        affine: None,
        residual: None,
    };
    let spec = Conv2d::new(1, 0).with_act(Activation::Sigmoid);
    r::conv::conv2d(f, &w, &ep, &spec).unwrap()
}

#[test]
fn gates_reference_is_split_then_two_convs() {
    let (n, c, h, w, mip) = (2, 6, 5, 7, 8);
    let [f, weight, bias] = gate_case(&mut Rng::new(34), n, c, h, w, mip);
    let split = Split {
        axis: 2,
        sizes: vec![h, w],
    };
    let parts = r::tensor_ops::split(&f, &split).unwrap();
    // conv2 (part 0) on the H rows, conv3 (part 1) on the W rows: swapping them would still
    // give the right shapes.
    let a_h = conv_part(&parts[0], &weight, &bias, 0);
    let a_w = conv_part(&parts[1], &weight, &bias, 1);
    let packed: Vec<f32> = (0..n)
        .flat_map(|i| {
            let per_h = c * h;
            let per_w = c * w;
            let mut v = a_h.data()[i * per_h..(i + 1) * per_h].to_vec();
            v.extend_from_slice(&a_w.data()[i * per_w..(i + 1) * per_w]);
            v
        })
        .collect();
    let want = Tensor::new(vec![n, c * (h + w)], packed).unwrap();
    let got = cpu::coord_gates(&f, &weight, &bias, &CoordGateSpec { h, w }).unwrap();
    assert_close(&got, &want, FP32_REL_L2, "split + convs");
}

#[test]
fn apply_matches_reference() {
    let mut rng = Rng::new(35);
    for &[n, c, h, w] in SHAPES {
        let x = rng.tensor(&[n, c, h, w]);
        let gates = rng.tensor_in(&[n, c * (h + w)], 0.0, 1.0);
        let (gx, gg) = (upload(&x), upload(&gates));
        let want = cpu::coord_apply(&x, &gates, &CoordApply).unwrap();
        for layout in Layout::ALL {
            let got = run_gpu(&[n, c, h, w], |rec, o| {
                gpu_ops::coord_apply_as(rec, &gx, &gg, o, &CoordApply, layout)
            });
            let what = format!("{layout} {:?}", [n, c, h, w]);
            assert_close(&got, &want, FP32_REL_L2, &what);
        }
    }
}

#[test]
fn apply_reference_is_x_times_a_w_then_a_h() {
    let (n, c, h, w) = (2, 3, 4, 5);
    let mut rng = Rng::new(36);
    let x = rng.tensor(&[n, c, h, w]);
    let a_h = rng.tensor(&[n, c, h, 1]);
    let a_w = rng.tensor(&[n, c, 1, w]);
    let mul = Binary {
        op: BinaryOp::Mul,
        act: Activation::None,
    };
    let want = r::elementwise::binary(&r::elementwise::binary(&x, &a_w, &mul).unwrap(), &a_h, &mul)
        .unwrap();
    let packed: Vec<f32> = (0..n)
        .flat_map(|i| {
            let mut v = a_h.data()[i * c * h..(i + 1) * c * h].to_vec();
            v.extend_from_slice(&a_w.data()[i * c * w..(i + 1) * c * w]);
            v
        })
        .collect();
    let gates = Tensor::new(vec![n, c * (h + w)], packed).unwrap();
    let got = cpu::coord_apply(&x, &gates, &CoordApply).unwrap();
    assert_eq!(got, want, "the same products in the same order");
}

#[test]
fn graph_runs_ca_in_four_dispatches_and_keeps_the_gates() {
    check_attention_graph(
        "coord_attention",
        &[2, 40, 6, 9],
        &[
            "input",
            "coord_pool",
            "conv2d",
            "coord_gates",
            "coord_apply",
        ],
        &[("h", 0, 40, 6), ("w", 240, 40, 9)],
        4,
    );
}

#[test]
fn bad_shapes_are_refused() {
    let mut rng = Rng::new(38);
    let spec = CoordGateSpec { h: 4, w: 5 };
    let f = [2, 8, 9, 1];
    assert!(spec.out_shape(&f, &[2, 6, 8], &[2, 6]).is_ok());
    for (weight, bias) in [
        (vec![2, 6, 7], vec![2, 6]),
        (vec![1, 6, 8], vec![2, 6]),
        (vec![2, 6, 8], vec![2, 5]),
    ] {
        let msg = spec.out_shape(&f, &weight, &bias).unwrap_err().to_string();
        assert!(
            msg.contains("coord_gates") && msg.contains(&format!("{weight:?}")),
            "{msg}"
        );
    }
    let msg = spec
        .out_shape(&[2, 8, 10, 1], &[2, 6, 8], &[2, 6])
        .unwrap_err()
        .to_string();
    assert!(msg.contains("[N, mip, 9, 1]"), "{msg}");
    assert!(CoordPool.out_shape(&[1, 2, 0, 3]).is_err());
    let msg = CoordApply
        .check(&[2, 3, 4, 5], &[2, 26])
        .unwrap_err()
        .to_string();
    assert!(msg.contains("[2, 27]"), "{msg}");

    let x = upload(&rng.tensor(&[2, 3, 4, 5]));
    let gates = upload(&rng.tensor(&[2, 26]));
    let mut rec = Recorder::new(gpu());
    let out = gpu().empty(&[2, 3, 4, 5]).unwrap();
    assert!(gpu_ops::coord_apply(&mut rec, &x, &gates, &out, &CoordApply).is_err());
    let bad = gpu().empty(&[2, 3, 9, 2]).unwrap();
    assert!(gpu_ops::coord_pool(&mut rec, &x, &bad, &CoordPool).is_err());
    assert_eq!(
        rec.dispatch_count(),
        0,
        "nothing is recorded for a refused call"
    );
}

#[test]
fn ops_split_batches_past_the_binding_limit() {
    let options = gaze::gpu::GpuOptions {
        limit_overrides: gaze::gpu::LimitOverrides {
            max_storage_buffer_binding_size: Some(1 << 20),
        },
        ..Default::default()
    };
    let g = gaze::gpu::Gpu::new_blocking(&options).expect("GPU tests need an adapter");
    // 338 kB per image, 1.35 MB in all.
    let [n, c, h, w] = [4, 5, 130, 130];
    let mut rng = Rng::new(39);
    let x = rng.tensor(&[n, c, h, w]);
    let [f, weight, bias] = gate_case(&mut rng, n, c, h, w, 8);
    let gates = rng.tensor_in(&[n, c * (h + w)], 0.0, 1.0);
    let up = |t: &Tensor| g.upload(t).unwrap();
    let (gx, gf, gw, gb, gg) = (up(&x), up(&f), up(&weight), up(&bias), up(&gates));
    let spec = CoordGateSpec { h, w };
    let pooled = run_on(&g, &[n, c, h + w, 1], |rec, o| {
        gpu_ops::coord_pool(rec, &gx, o, &CoordPool)
    });
    let want = cpu::coord_pool(&x, &CoordPool).unwrap();
    assert_close(&pooled, &want, FP32_REL_L2, "pool");
    let want_gates = cpu::coord_gates(&f, &weight, &bias, &spec).unwrap();
    let want_apply = cpu::coord_apply(&x, &gates, &CoordApply).unwrap();
    for layout in Layout::ALL {
        let got = run_on(&g, &[n, c * (h + w)], |rec, o| {
            gpu_ops::coord_gates_as(rec, &gf, &gw, &gb, o, &spec, layout)
        });
        assert_close(&got, &want_gates, FP32_REL_L2, &format!("{layout} gates"));
        let got = run_on(&g, &[n, c, h, w], |rec, o| {
            gpu_ops::coord_apply_as(rec, &gx, &gg, o, &CoordApply, layout)
        });
        assert_close(&got, &want_apply, FP32_REL_L2, &format!("{layout} apply"));
    }
}

/// Every pool variant with f16 storage against the reference on the same f16-rounded input,
/// means rounded once (F16_SAME_ROUNDING_REL_L2); a 112-wide map makes lines the workgroups
/// reduce.
#[test]
fn every_pool_variant_at_f16() {
    let g = gpu_f16();
    let round =
        |t: &Tensor| Tensor::from_fn(t.shape(), |i| gaze::Precision::F16.round(t.data()[i]));
    for shape in [[2, 6, 9, 7], [1, 4, 80, 112]] {
        let x = round(&Rng::new(41).tensor(&shape));
        let gx = g.upload(&x).unwrap();
        let out = CoordPool.out_shape(&shape).unwrap();
        let want = round(&cpu::coord_pool(&x, &CoordPool).unwrap());
        for kernel in gpu_ops::pool_candidates() {
            let got = run_on(g, &out, |rec, o| {
                gpu_ops::coord_pool_as(rec, &gx, o, &CoordPool, kernel)
            });
            let what = format!("{kernel} at f16 {shape:?}");
            assert_close(&got, &want, F16_SAME_ROUNDING_REL_L2, &what);
        }
    }
}

/// Coordinate Attention's means summed in a depthwise conv's epilogue (`conv2d_pooling`) and
/// finished by `coord_pool_finish` equal the reference pool of the reference conv's output,
/// and the conv's own output is unchanged. Strides 1 and 2; planes taller than one strip
/// (the software devices' 24 rows, and strips of 4 and 1 rows as GPUs run them) and widths
/// that leave a quad part-filled; batch > 1; channels not a multiple of 4. At f32 the parts add the same values in another order (FP32_REL_L2); at f16 the fused
/// pool sums the conv's f32 values before they are stored rounded, the reference the rounded
/// ones (F16_REL_L2).
#[test]
fn pools_summed_in_the_depthwise_epilogue_match_the_reference() {
    use gaze::kernels::conv::{conv2d_pooling, coord_partials_shape, PoolParts};
    use gaze::Precision;
    let mut rng = Rng::new(47);
    for (g, tol) in [(gpu(), FP32_REL_L2), (gpu_f16(), F16_REL_L2)] {
        for &([n, c, h, w], stride) in &[
            ([2, 5, 7, 9], 1),
            ([1, 6, 53, 30], 1),
            ([2, 3, 57, 11], 2),
            ([1, 4, 1, 1], 1),
        ] {
            let x = rng.tensor(&[n, c, h, w]);
            let weight = rng.tensor(&[c, 1, 3, 3]);
            let bias = rng.tensor(&[c]);
            let spec = Conv2d::new(stride, 1)
                .with_groups(c)
                .with_act(Activation::Relu6);
            let ep = Epilogue::with_bias(&bias);
            let y = r::conv::conv2d(&x, &weight, &ep, &spec).unwrap();
            let want = cpu::coord_pool(&y, &CoordPool).unwrap();
            let what = format!("{n}×{c}×{h}×{w} stride {stride} at {}", g.precision());

            let (gx, gw, gb) = (
                g.upload(&x).unwrap(),
                g.upload(&weight).unwrap(),
                g.upload(&bias).unwrap(),
            );
            for max_rows in [24, 4, 1] {
                let what = format!("{what}, strips of {max_rows}");
                let gy = g.empty(y.shape()).unwrap();
                let shape = coord_partials_shape(y.shape(), max_rows).unwrap();
                let sums = g.empty_at(&shape, Precision::F32).unwrap();
                let parts = PoolParts { sums, max_rows };
                let pooled = run_on(g, want.shape(), |rec, out| {
                    let gep = Epilogue::with_bias(&gb);
                    conv2d_pooling(rec, &gx, &gw, &gep, &gy, &spec, &parts)?;
                    gpu_ops::coord_pool_finish(rec, y.shape(), &parts, out, &CoordPool)
                });
                assert_close(&pooled, &want, tol, &format!("fused pool, {what}"));
                let got_y = g.read_blocking(&gy).unwrap();
                assert_close(&got_y, &y, tol, &format!("conv output, {what}"));
            }
        }
    }
}

/// `coord_excite` (the pool finish, conv1 and the gates in one kernel, from a depthwise conv's
/// partial sums) against the reference chain conv → pool → conv1 → gates. Channels past one
/// lane's share (64) and up to the 1,024 it holds, mip up to 32, multi-strip planes, batch 2,
/// two activations. At f32 the sums go in another order (FP32_REL_L2); at f16 the kernel pools
/// the conv's f32 values, the reference the stored rounded ones (F16_REL_L2). A conv1 it
/// cannot hold is refused by name.
#[test]
fn excite_from_partial_sums_matches_the_reference_chain() {
    use gaze::kernels::conv::{conv2d_pooling, coord_partials_shape, PoolParts};
    use gaze::Precision;
    let mut rng = Rng::new(48);
    for (g, tol) in [(gpu(), FP32_REL_L2), (gpu_f16(), F16_REL_L2)] {
        for &([n, c, h, w], mip, act) in &[
            ([2, 70, 9, 7], 8, Activation::HSwish),
            ([1, 200, 30, 5], 32, Activation::HSwish),
            ([1, 1024, 3, 4], 13, Activation::Relu),
        ] {
            let x = rng.tensor(&[n, c, h, w]);
            let dw_weight = rng.tensor(&[c, 1, 3, 3]);
            let dw_spec = Conv2d::new(1, 1).with_groups(c);
            let none = Epilogue::default();
            let y = r::conv::conv2d(&x, &dw_weight, &none, &dw_spec).unwrap();
            let pooled = cpu::coord_pool(&y, &CoordPool).unwrap();
            let (w1, b1) = (rng.tensor(&[mip, c, 1, 1]), rng.tensor(&[mip]));
            let conv1 = Conv2d::new(1, 0).with_act(act);
            let f = r::conv::conv2d(&pooled, &w1, &Epilogue::with_bias(&b1), &conv1).unwrap();
            let (gw, gb) = (rng.tensor(&[2, c, mip]), rng.tensor(&[2, c]));
            let spec = CoordGateSpec { h, w };
            let want = cpu::coord_gates(&f, &gw, &gb, &spec).unwrap();
            let what = format!("{n}×{c}×{h}×{w} mip {mip} at {}", g.precision());

            let up = |t: &Tensor| g.upload(t).unwrap();
            let (gx, gdw, gw1, gb1, ggw, ggb) =
                (up(&x), up(&dw_weight), up(&w1), up(&b1), up(&gw), up(&gb));
            let gy = g.empty(y.shape()).unwrap();
            let max_rows = if c > 100 { 2 } else { 24 };
            let shape = coord_partials_shape(y.shape(), max_rows).unwrap();
            let sums = g.empty_at(&shape, Precision::F32).unwrap();
            let partials = PoolParts { sums, max_rows };
            let got = run_on(g, want.shape(), |rec, out| {
                let none = Epilogue::default();
                conv2d_pooling(rec, &gx, &gdw, &none, &gy, &dw_spec, &partials)?;
                let gates = (&ggw, &ggb);
                let shape = y.shape();
                gpu_ops::coord_excite(rec, shape, &partials, &gw1, &gb1, &conv1, gates, out, &spec)
            });
            assert_close(&got, &want, tol, &what);
        }
    }
    // conv1 with 33 outputs, more than the kernel holds.
    let g = gpu();
    let (c, h, w) = (8, 4, 4);
    let shape = coord_partials_shape(&[1, c, h, w], 24).unwrap();
    let sums = g.empty_at(&shape, Precision::F32).unwrap();
    let partials = PoolParts { sums, max_rows: 24 };
    let (w1, b1) = (g.empty(&[33, c, 1, 1]).unwrap(), g.empty(&[33]).unwrap());
    let (gw, gb) = (g.empty(&[2, c, 33]).unwrap(), g.empty(&[2, c]).unwrap());
    let out = g.empty(&[1, c * (h + w)]).unwrap();
    let mut rec = Recorder::new(g);
    let spec = CoordGateSpec { h, w };
    let conv1 = Conv2d::new(1, 0);
    let err = gpu_ops::coord_excite(
        &mut rec,
        &[1, c, h, w],
        &partials,
        &w1,
        &b1,
        &conv1,
        (&gw, &gb),
        &out,
        &spec,
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("coord_excite") && err.contains("at most 32 outputs"),
        "{err}"
    );
    assert_eq!(rec.dispatch_count(), 0);
}

/// Fusion on MobileNetV2-CA. With the pools fused (`coord_pools`) every Coordinate Attention
/// sums its means in the depthwise conv before it and no pool reads x again; with the applies
/// fused too (`coord_applies`: on this CPU device by default, with the gates read through a
/// uniform window, at batch 64 only where forced, on the workgroup-memory kernel) the
/// projection conv multiplies x by the gates as it loads it and no `coord_apply` runs; with
/// the excites (`coord_excites`,
/// on GPUs by default, forced here) one `coord_excite` per module goes from the partial sums to
/// the gates, and no finish, conv1 or `coord_gates` runs. Each plan gives the CPU reference's
/// output within FP32_REL_L2, at batch 2 on 40×24, so planes are part-filled quads from the
/// first block on.
#[test]
fn mobilenet_v2_ca_fuses_its_coordinate_attentions() {
    use gaze::graph::fuse::{Fusion, Where};
    use gaze::graph::{cpu as graph_cpu, gpu::GpuGraph};
    let shape = vec![2, 3, 40, 24];
    let graph = gaze::models::build_synthetic(
        "mobilenet_v2_ca",
        5,
        std::slice::from_ref(&shape),
        &Default::default(),
    )
    .unwrap();
    let x = Rng::new(3).tensor(&shape);
    let inputs = [x];
    let want = graph_cpu::run(&graph, &inputs).unwrap();
    let m = graph.taps().len();
    assert!(m > 0);
    let excites_alone = Fusion {
        coord_apply: Where::Nowhere,
        ..Fusion::EVERYWHERE
    };
    // Per plan: depthwise convs with pools, finishes, plain pools, convs gated through a
    // window, convs gated in workgroup memory, plain applies, excites, plain gates.
    // Fusion::ALL excites nothing on this software adapter.
    for (fusion, counts) in [
        (Fusion::EVERYWHERE, [m, 0, 0, m, 0, 0, m, 0]),
        (excites_alone, [m, 0, 0, 0, 0, m, m, 0]),
        (Fusion::ALL, [m, m, 0, m, 0, 0, 0, m]),
        (Fusion::NONE, [0, 0, m, 0, 0, m, 0, m]),
    ] {
        let model = GpuGraph::with_fusion(gpu(), &graph, fusion).unwrap();
        let got = model.run_blocking(gpu(), &inputs).unwrap();
        assert_close(&got, &want, FP32_REL_L2, &format!("{fusion:?}"));
        let mut rec = Recorder::new(gpu());
        model.record(gpu(), &mut rec, &inputs).unwrap();
        let variants: Vec<String> = rec.dispatch_variants().into_iter().map(|d| d.1).collect();
        let count = |names: &[&str]| {
            let first = |v: &&String| v.split(' ').next().is_some_and(|k| names.contains(&k));
            variants.iter().filter(first).count()
        };
        let got_counts = [
            &["conv2d_depthwise_pool"][..],
            &["coord_pool_finish"],
            &["triplet_pool"],
            &["conv2d_gemm_sg_gated"],
            &["conv2d_mm_gated"],
            &["coord_apply"],
            &["coord_excite"],
            &["coord_gates"],
        ]
        .map(count);
        assert_eq!(got_counts, counts, "{fusion:?}: {variants:?}");
    }
}

/// Where a batch's gates exceed a uniform window (16,384 f32), a CPU device's plan keeps
/// Coordinate Attention's apply: its gated kernel there is the one that reads the window, and
/// the workgroup-memory kernel runs only where the pass is forced, giving the CPU reference's
/// output within FP32_REL_L2. At batch 18 on 40×24 the smallest module's gates are 960 × 3 per
/// image, 17,280 in all.
#[test]
fn gates_past_a_uniform_window_keep_the_apply_on_cpu_devices() {
    use gaze::graph::fuse::Fusion;
    use gaze::graph::{cpu as graph_cpu, gpu::GpuGraph};
    let shape = vec![18, 3, 40, 24];
    let graph = gaze::models::build_synthetic(
        "mobilenet_v2_ca",
        5,
        std::slice::from_ref(&shape),
        &Default::default(),
    )
    .unwrap();
    let inputs = [Rng::new(8).tensor(&shape)];
    let m = graph.taps().len();
    for (fusion, counts) in [(Fusion::ALL, [0, 0, m]), (Fusion::EVERYWHERE, [0, m, 0])] {
        let model = GpuGraph::with_fusion(gpu(), &graph, fusion).unwrap();
        let mut rec = Recorder::new(gpu());
        model.record(gpu(), &mut rec, &inputs).unwrap();
        let variants: Vec<String> = rec.dispatch_variants().into_iter().map(|d| d.1).collect();
        let count = |names: &[&str]| {
            let first = |v: &&String| v.split(' ').next().is_some_and(|k| names.contains(&k));
            variants.iter().filter(first).count()
        };
        let got = [
            &["conv2d_gemm_sg_gated"][..],
            &["conv2d_mm_gated"],
            &["coord_apply"],
        ]
        .map(count);
        assert_eq!(got, counts, "{fusion:?}");
        if fusion == Fusion::EVERYWHERE {
            let want = graph_cpu::run(&graph, &inputs).unwrap();
            let got = model.run_blocking(gpu(), &inputs).unwrap();
            assert_close(&got, &want, FP32_REL_L2, "staged gated convs");
        }
    }
}

/// Where a depthwise conv's tensors exceed one storage binding, its batch is split and its
/// pool stays unfused; the others still fuse, and the mixed plan gives the unfused plan's
/// output (itself checked against the CPU reference above). Bindings capped at 8 MiB (the
/// classifier's weight is 5.1 MB): at batch 32 on 112×112, MobileNetV2-CA's modules on 28×28
/// maps (9.6 and 14.5 MB of x) split, those after fit.
#[test]
fn pools_too_large_for_one_binding_stay_unfused() {
    use gaze::graph::{fuse::Fusion, gpu::GpuGraph};
    let small = gpu_with_binding_limit(8 << 20, gaze::Precision::F32);
    let shape = vec![32, 3, 112, 112];
    let graph = gaze::models::build_synthetic(
        "mobilenet_v2_ca",
        5,
        std::slice::from_ref(&shape),
        &Default::default(),
    )
    .unwrap();
    let inputs = [Rng::new(4).tensor(&shape)];
    let run = |fusion| {
        let model = GpuGraph::with_fusion(&small, &graph, fusion).unwrap();
        let out = model.run_blocking(&small, &inputs).unwrap();
        let mut rec = Recorder::new(&small);
        model.record(&small, &mut rec, &inputs).unwrap();
        let variants = rec.dispatch_variants();
        let fused = variants
            .iter()
            .filter(|d| d.1.starts_with("conv2d_depthwise_pool"));
        (out, fused.count())
    };
    let (want, none) = run(Fusion::NONE);
    let (got, fused) = run(Fusion::ALL);
    assert_close(
        &got,
        &want,
        FP32_REL_L2,
        "mixed plan against the unfused one",
    );
    let modules = graph.taps().len();
    assert!(
        none == 0 && fused > 0 && fused < modules,
        "{fused} of {modules} pools fused"
    );
}

/// Gates in (0, 1), as sigmoid outputs are, for x `[n, c, h, w]`.
fn gate_values(rng: &mut Rng, [n, c, h, w]: [usize; 4]) -> Tensor {
    let mut gates = rng.tensor(&[n, c * (h + w)]);
    gates
        .data_mut()
        .iter_mut()
        .for_each(|v| *v = 0.5 + 0.4 * v.tanh());
    gates
}

/// A gated 1×1 conv's operands (x, gates, weight, bias, residual) and the reference's
/// output: the apply, then the conv with the bias and residual in its epilogue.
struct GatedCase {
    x: Tensor,
    gates: Tensor,
    weight: Tensor,
    bias: Tensor,
    residual: Tensor,
    want: Tensor,
}

impl GatedCase {
    fn new(rng: &mut Rng, [n, c, h, w]: [usize; 4], cout: usize) -> Self {
        let x = rng.tensor(&[n, c, h, w]);
        let gates = gate_values(rng, [n, c, h, w]);
        let weight = rng.tensor(&[cout, c, 1, 1]);
        let bias = rng.tensor(&[cout]);
        let residual = rng.tensor(&[n, cout, h, w]);
        let attended = cpu::coord_apply(&x, &gates, &CoordApply).unwrap();
        let ep = Epilogue {
            bias: Some(&bias),
            affine: None,
            residual: Some(&residual),
        };
        let want = r::conv::conv2d(&attended, &weight, &ep, &Conv2d::new(1, 0)).unwrap();
        Self {
            x,
            gates,
            weight,
            bias,
            residual,
            want,
        }
    }

    /// x, the conv's weight, bias and residual on `g` (the gates are laid out per test).
    fn upload(&self, g: &Gpu) -> GatedOperands {
        let up = |t: &Tensor| g.upload(t).unwrap();
        GatedOperands {
            x: up(&self.x),
            weight: up(&self.weight),
            bias: up(&self.bias),
            residual: up(&self.residual),
        }
    }
}

struct GatedOperands {
    x: GpuTensor,
    weight: GpuTensor,
    bias: GpuTensor,
    residual: GpuTensor,
}

impl GatedOperands {
    fn epilogue(&self) -> Epilogue<'_, GpuTensor> {
        Epilogue {
            bias: Some(&self.bias),
            affine: None,
            residual: Some(&self.residual),
        }
    }
}

/// The register-tiled 1×1 convs that read Coordinate Attention's gates through a uniform
/// window as they load x (`GatedKernel::Windowed`, what CPU devices with subgroups run) equal
/// the reference apply followed by the reference conv, with a bias and a residual in the
/// epilogue, on shared tiles of several sizes: batch 2, planes whose rows (W = 9, 5, 14) split pixel
/// quads, pixel counts no tile fills, channel counts no block fills. Within FP32_REL_L2: the
/// kernel multiplies in the official order, then sums in its own. The gates lie at the start
/// of a 64 KiB buffer, as a plan lays them out; a window over a smaller buffer, or over f16
/// gates, is refused.
#[test]
fn conv_gated_through_a_uniform_window_matches_apply_then_conv() {
    use gaze::kernels::conv::{conv2d_gated_on, subgroup_lanes, GatedKernel, Tile};
    let g = gpu();
    assert!(subgroup_lanes(g).is_some(), "lavapipe has subgroups");
    let tiles = [Tile::shared(4, 4), Tile::shared(16, 2), Tile::shared(8, 1)];
    let mut rng = Rng::new(61);
    for &([n, c, h, w], cout) in &[
        ([2, 21, 7, 9], 18),
        ([1, 40, 13, 5], 70),
        ([1, 96, 14, 14], 24),
    ] {
        let case = GatedCase::new(&mut rng, [n, c, h, w], cout);
        let (gates, want) = (&case.gates, &case.want);
        let spec = Conv2d::new(1, 0);
        let up = |t: &Tensor| g.upload(t).unwrap();
        let ops = case.upload(g);
        let (gx, gw, gep) = (&ops.x, &ops.weight, ops.epilogue());
        let mut padded = gates.data().to_vec();
        padded.resize(16384, 0.0);
        let window = up(&Tensor::new(vec![16384], padded).unwrap());
        let gg = window.view(gates.shape()).unwrap();
        for &tile in &tiles {
            let got = run_on(g, want.shape(), |rec, out| {
                conv2d_gated_on(
                    rec,
                    gx,
                    gw,
                    &gep,
                    out,
                    &spec,
                    &gg,
                    GatedKernel::Windowed(tile),
                )
            });
            let what = format!("{n}×{c}×{h}×{w} → {cout} on {tile:?}");
            assert_close(&got, want, FP32_REL_L2, &what);
        }
        // The gates uploaded alone: their buffer ends before the window does.
        let small = up(gates);
        let out = g.empty(want.shape()).unwrap();
        let mut rec = Recorder::new(g);
        let windowed = GatedKernel::Windowed(tiles[0]);
        let refused = conv2d_gated_on(&mut rec, gx, gw, &gep, &out, &spec, &small, windowed);
        assert!(refused.is_err(), "a window past its buffer's end ran");
    }
    let g16 = gpu_f16();
    let [n, c, h, w] = [1, 8, 4, 4];
    let up = |t: &Tensor| g16.upload(t).unwrap();
    let x = up(&rng.tensor(&[n, c, h, w]));
    let wt = up(&rng.tensor(&[4, c, 1, 1]));
    let gates = up(&Tensor::new(vec![32768], vec![0.5; 32768]).unwrap());
    let gates = gates.view(&[n, c * (h + w)]).unwrap();
    let out = g16.empty(&[n, 4, h, w]).unwrap();
    let mut rec = Recorder::new(g16);
    let windowed = GatedKernel::Windowed(Tile::shared(1, 1));
    let ep = Epilogue::default();
    let refused = conv2d_gated_on(
        &mut rec,
        &x,
        &wt,
        &ep,
        &out,
        &Conv2d::new(1, 0),
        &gates,
        windowed,
    );
    assert!(
        refused.is_err(),
        "f16 gates were read through an f32 window"
    );
}

/// A 1×1 conv that applies Coordinate Attention's gates as it loads x (`conv2d_gated`, on
/// `conv2d_mm_gated` for gates uploaded alone, whose buffer holds no uniform window) equals the reference apply followed by the reference conv, with a bias
/// and a residual in its epilogue: batch 2, channels and planes that fill no block evenly.
/// f32 within FP32_REL_L2; f16 within F16_REL_L2 (the fused kernel never rounds the attended
/// tensor to f16; the reference path stores it).
#[test]
fn conv_gated_on_load_matches_apply_then_conv() {
    use gaze::kernels::conv::conv2d_gated;
    let mut rng = Rng::new(59);
    for (g, tol) in [(gpu(), FP32_REL_L2), (gpu_f16(), F16_REL_L2)] {
        for &([n, c, h, w], cout) in &[([2, 21, 7, 9], 18), ([1, 40, 13, 5], 70)] {
            let case = GatedCase::new(&mut rng, [n, c, h, w], cout);
            let spec = Conv2d::new(1, 0);
            let ops = case.upload(g);
            let gg = g.upload(&case.gates).unwrap();
            let got = run_on(g, case.want.shape(), |rec, out| {
                conv2d_gated(rec, &ops.x, &ops.weight, &ops.epilogue(), out, &spec, &gg)
            });
            let what = format!("{n}×{c}×{h}×{w} → {cout} at {}", g.precision());
            assert_close(&got, &case.want, tol, &what);
        }
    }
}
