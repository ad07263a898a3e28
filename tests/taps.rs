//! Attention taps: the gate maps the web page draws, read back after an inference. Each map
//! must be the factor the module really applied (checked by rebuilding the module's output from
//! the maps), and the GPU must return the same maps as the CPU reference.

mod common;

use common::*;
use gaze::graph::gpu::GpuGraph;
use gaze::graph::{cpu, AttentionTap, Graph, ValueId};
use gaze::models::{build_synthetic, Options};
use gaze::Tensor;

/// Runs on CPU and GPU; returns the CPU output, the taps' values, and checks GPU = CPU.
fn run_both(graph: &Graph<Tensor>, x: &Tensor) -> (Tensor, Vec<ValueId>, Vec<Tensor>) {
    let keep = graph.tap_values();
    let (out, kept) = cpu::run_keeping(graph, std::slice::from_ref(x), &keep).unwrap();
    let on_gpu = GpuGraph::new(gpu(), graph).unwrap();
    let (gpu_out, gpu_kept) =
        pollster::block_on(on_gpu.run_keeping(gpu(), std::slice::from_ref(x), &keep)).unwrap();
    assert_close(&gpu_out, &out, FP32_REL_L2, "output");
    for (g, c) in gpu_kept.iter().zip(&kept) {
        assert_close(g, c, FP32_REL_L2, "attention map");
    }
    (out, keep, kept)
}

/// The map `label` of `tap` for image `n`, as a closure `(row, col) -> value`.
fn map<'a>(
    tap: &'a AttentionTap,
    label: &str,
    keep: &[ValueId],
    kept: &'a [Tensor],
    n: usize,
) -> impl Fn(usize, usize) -> f32 + 'a {
    let m = tap.maps.iter().find(|m| m.label == label).unwrap();
    let t = &kept[keep.iter().position(|&v| v == m.value).unwrap()];
    let data = m.read(t.data(), n).unwrap();
    let cols = m.cols;
    move |r, c| data[r * cols + c]
}

/// The largest |expected − out| over every element, with `factor(n, c, h, w)` the attention
/// factor the module applies to `x`.
fn max_error(x: &Tensor, out: &Tensor, factor: impl Fn(usize, usize, usize, usize) -> f32) -> f32 {
    let [n, c, h, w] = [x.shape()[0], x.shape()[1], x.shape()[2], x.shape()[3]];
    let mut worst = 0f32;
    for i in 0..n * c * h * w {
        let (b, ch, y, xx) = (i / (c * h * w), (i / (h * w)) % c, (i / w) % h, i % w);
        let expected = x.data()[i] * factor(b, ch, y, xx);
        worst = worst.max((expected - out.data()[i]).abs());
    }
    worst
}

/// Outputs are of order 1; recomputing `x · factor` in another order differs by a few ulps,
/// while a transposed or shifted map is off by the spread of the gates (~0.1).
const REBUILD_TOLERANCE: f32 = 1e-5;

#[test]
fn triplet_taps_are_the_applied_gates() {
    // C, H and W all differ, so a transposed map cannot pass.
    let (c, h, w) = (6, 9, 11);
    let graph =
        build_synthetic("triplet_attention", 7, &[vec![2, c, h, w]], &Options::new()).unwrap();
    let x = Rng::new(3).tensor(&[2, c, h, w]);
    let (out, keep, kept) = run_both(&graph, &x);
    let tap = &graph.taps()[0];
    assert_eq!(tap.kind, "triplet");
    let sizes: Vec<(&str, usize, usize)> =
        tap.maps.iter().map(|m| (m.label, m.rows, m.cols)).collect();
    assert_eq!(sizes, [("hw", h, w), ("cw", c, w), ("hc", h, c)]);
    let maps: Vec<_> = (0..2)
        .map(|n| {
            (
                map(tap, "hw", &keep, &kept, n),
                map(tap, "cw", &keep, &kept, n),
                map(tap, "hc", &keep, &kept, n),
            )
        })
        .collect();
    let err = max_error(&x, &out, |n, ch, y, xx| {
        let (hw, cw, hc) = &maps[n];
        (hw(y, xx) + cw(ch, xx) + hc(y, ch)) / 3.0
    });
    assert!(
        err < REBUILD_TOLERANCE,
        "TA output rebuilt from its maps is off by {err}"
    );
}

#[test]
fn coord_taps_are_the_applied_gates() {
    let (c, h, w) = (16, 9, 11);
    let graph =
        build_synthetic("coord_attention", 5, &[vec![2, c, h, w]], &Options::new()).unwrap();
    let x = Rng::new(4).tensor(&[2, c, h, w]);
    let (out, keep, kept) = run_both(&graph, &x);
    let tap = &graph.taps()[0];
    assert_eq!(tap.kind, "coord");
    let sizes: Vec<(&str, usize, usize)> =
        tap.maps.iter().map(|m| (m.label, m.rows, m.cols)).collect();
    assert_eq!(sizes, [("h", c, h), ("w", c, w)]);
    let maps: Vec<_> = (0..2)
        .map(|n| {
            (
                map(tap, "h", &keep, &kept, n),
                map(tap, "w", &keep, &kept, n),
            )
        })
        .collect();
    let err = max_error(&x, &out, |n, ch, y, xx| {
        let (ah, aw) = &maps[n];
        aw(ch, xx) * ah(ch, y)
    });
    assert!(
        err < REBUILD_TOLERANCE,
        "CA output rebuilt from its maps is off by {err}"
    );
}

/// The mean over `groups` slabs of `len` values of image `n` of a value of `per_image` values.
fn group_mean(t: &Tensor, n: usize, per_image: usize, groups: usize) -> Vec<f32> {
    let len = per_image / groups;
    let image = &t.data()[n * per_image..(n + 1) * per_image];
    (0..len)
        .map(|i| (0..groups).map(|g| image[g * len + i]).sum::<f32>() / groups as f32)
        .collect()
}

#[test]
fn aff_taps_are_the_applied_fusion_weights() {
    let (c, h, w) = (12, 5, 7);
    let shape = vec![2, c, h, w];
    let graph =
        build_synthetic("aff", 3, &[shape.clone(), shape.clone()], &Options::new()).unwrap();
    let (x, r) = (Rng::new(5).tensor(&shape), Rng::new(6).tensor(&shape));
    let keep = graph.tap_values();
    let inputs = [x.clone(), r.clone()];
    let (out, kept) = cpu::run_keeping(&graph, &inputs, &keep).unwrap();
    let on_gpu = GpuGraph::new(gpu(), &graph).unwrap();
    let (_, gpu_kept) = pollster::block_on(on_gpu.run_keeping(gpu(), &inputs, &keep)).unwrap();
    assert_close(&gpu_kept[0], &kept[0], FP32_REL_L2, "fusion weights");
    let tap = &graph.taps()[0];
    assert_eq!(tap.kind, "aff");
    let m = &tap.maps[0];
    assert_eq!((m.label, m.rows, m.cols, m.groups), ("fusion", h, w, c));
    // The kept value is the w that AFF applied: out = 2·x·w + 2·r·(1 − w).
    let wt = &kept[0];
    let worst = (0..out.numel())
        .map(|i| {
            let (xv, rv, wv) = (x.data()[i], r.data()[i], wt.data()[i]);
            (2.0 * xv * wv + 2.0 * rv * (1.0 - wv) - out.data()[i]).abs()
        })
        .fold(0f32, f32::max);
    assert!(
        worst < REBUILD_TOLERANCE,
        "AFF rebuilt from w is off by {worst}"
    );
    for n in 0..2 {
        let want = group_mean(wt, n, c * h * w, c);
        assert_eq!(
            m.read(wt.data(), n).unwrap(),
            want,
            "image {n}: the channel mean"
        );
    }
}

#[test]
fn san_taps_are_each_pixels_window_weights() {
    let (c, h, w, k) = (32, 6, 9, 3);
    let opts: Options = [("kernel_size".to_string(), k.to_string())].into();
    let graph = build_synthetic("san_sam", 2, &[vec![2, c, h, w]], &opts).unwrap();
    let x = Rng::new(7).tensor(&[2, c, h, w]);
    let (_, _, kept) = run_both(&graph, &x);
    let tap = &graph.taps()[0];
    assert_eq!(tap.kind, "san");
    let m = &tap.maps[0];
    let cw = c / 4 / 8;
    assert_eq!(
        (m.label, m.rows, m.cols, m.groups, m.pixels),
        ("neighbourhood", k * k, h * w, cw, Some([h, w]))
    );
    for n in 0..2 {
        let map = m.read(kept[0].data(), n).unwrap();
        assert_eq!(map, group_mean(&kept[0], n, cw * k * k * h * w, cw));
        // Pairwise weights are a softmax over each pixel's window, and so is their group mean.
        for p in 0..h * w {
            let sum: f32 = (0..k * k).map(|j| map[j * h * w + p]).sum();
            assert!(
                (sum - 1.0).abs() < 1e-5,
                "pixel {p}: window weights sum to {sum}"
            );
        }
    }
}

#[test]
fn networks_tap_every_attention_block() {
    for (arch, blocks) in [("mobilenet_v2_ta", 17), ("mobilenet_v2_ca", 16)] {
        let graph = build_synthetic(arch, 1, &[vec![1, 3, 64, 64]], &Options::new()).unwrap();
        assert_eq!(graph.taps().len(), blocks, "{arch}");
        let x = Rng::new(2).tensor(&[1, 3, 64, 64]);
        let (_, _, kept) = run_both(&graph, &x);
        for t in &kept {
            assert!(
                t.data().iter().all(|v| *v > 0.0 && *v < 1.0),
                "{arch}: gates are sigmoids, in (0, 1)"
            );
        }
    }
}
