//! Concat and split kernels against the CPU reference. Both only copy, so results must be
//! bit-exact.

mod common;

use common::*;
use gaze::gpu::{Gpu, GpuOptions, GpuTensor, LimitOverrides, Recorder};
use gaze::kernels::tensor_ops as gpu_ops;
use gaze::ops::tensor_ops::{Concat, Split};
use gaze::reference::tensor_ops as cpu;
use gaze::Tensor;

/// (N, H, W) planes: batch > 1, 1×1, odd and non-square, one 224×224.
const PLANES: &[[usize; 3]] = &[[2, 1, 1], [3, 7, 5], [2, 13, 17], [2, 224, 224]];

fn gpu_concat(g: &Gpu, inputs: &[&Tensor], spec: &Concat, shape: &[usize]) -> Tensor {
    let dev: Vec<GpuTensor> = inputs.iter().map(|t| g.upload(t).unwrap()).collect();
    let refs: Vec<&GpuTensor> = dev.iter().collect();
    run_on(g, shape, |rec, out| gpu_ops::concat(rec, &refs, out, spec))
}

fn gpu_split(g: &Gpu, x: &Tensor, spec: &Split, shapes: &[Vec<usize>]) -> Vec<Tensor> {
    let gx = g.upload(x).unwrap();
    let outs: Vec<GpuTensor> = shapes.iter().map(|s| g.empty(s).unwrap()).collect();
    let refs: Vec<&GpuTensor> = outs.iter().collect();
    let mut rec = Recorder::new(g);
    gpu_ops::split(&mut rec, &gx, &refs, spec).unwrap();
    rec.submit().unwrap();
    outs.iter().map(|t| g.read_blocking(t).unwrap()).collect()
}

#[test]
fn concat_channels() {
    let mut rng = Rng::new(11);
    for &[n, h, w] in PLANES {
        let channels: &[usize] = if h == 224 { &[1, 2] } else { &[2, 3, 5] };
        let inputs: Vec<Tensor> = channels
            .iter()
            .map(|&c| rng.tensor(&[n, c, h, w]))
            .collect();
        let refs: Vec<&Tensor> = inputs.iter().collect();
        let spec = Concat { axis: 1 };
        let want = cpu::concat(&refs, &spec).unwrap();
        let total: usize = channels.iter().sum();
        assert_eq!(want.shape(), [n, total, h, w]);
        // The reference keeps each input's values in its slot.
        assert_eq!(
            want.data()[..channels[0] * h * w],
            inputs[0].data()[..channels[0] * h * w]
        );
        let got = gpu_concat(gpu(), &refs, &spec, want.shape());
        assert_eq!(got, want, "concat channels {channels:?} of {n}×·×{h}×{w}");
    }
}

#[test]
fn concat_rows_as_coordinate_attention_does() {
    let mut rng = Rng::new(12);
    for (n, c, h, w) in [(2, 7, 13, 17), (3, 5, 7, 5), (2, 3, 1, 1), (2, 3, 224, 224)] {
        let zh = rng.tensor(&[n, c, h, 1]);
        let zw = rng.tensor(&[n, c, w, 1]);
        let spec = Concat { axis: 2 };
        let want = cpu::concat(&[&zh, &zw], &spec).unwrap();
        assert_eq!(want.shape(), [n, c, h + w, 1]);
        // Row h of channel 0 of image 0 is the first W-part value.
        assert_eq!(want.data()[h], zw.data()[0]);
        let got = gpu_concat(gpu(), &[&zh, &zw], &spec, want.shape());
        assert_eq!(got, want, "CA concat {n}×{c}, H {h}, W {w}");
    }
}

#[test]
fn concat_last_axis_and_broadcast_batch() {
    let mut rng = Rng::new(13);
    let a = rng.tensor(&[3, 5, 9, 4]);
    let b = rng.tensor(&[3, 5, 9, 7]);
    let spec = Concat { axis: 3 };
    let want = cpu::concat(&[&a, &b], &spec).unwrap();
    assert_eq!(got_concat(&[&a, &b], &spec, want.shape()), want);

    // SAN pairwise: [N, rel, k², HW] ‖ the per-size constant [1, 2, k², HW].
    let rel = rng.tensor(&[3, 5, 9, 35]);
    let pos = rng.tensor(&[1, 2, 9, 35]);
    let spec = Concat { axis: 1 };
    let want = cpu::concat(&[&rel, &pos], &spec).unwrap();
    assert_eq!(want.shape(), [3, 7, 9, 35]);
    let last_image = &want.data()[2 * 7 * 315..];
    assert_eq!(
        &last_image[5 * 315..],
        pos.data(),
        "the constant repeats per image"
    );
    assert_eq!(got_concat(&[&rel, &pos], &spec, want.shape()), want);
}

fn got_concat(inputs: &[&Tensor], spec: &Concat, shape: &[usize]) -> Tensor {
    gpu_concat(gpu(), inputs, spec, shape)
}

#[test]
fn split_rows_and_channels() {
    let mut rng = Rng::new(14);
    let cases: [(Vec<usize>, Split); 5] = [
        (
            vec![2, 7, 30, 1],
            Split {
                axis: 2,
                sizes: vec![13, 17],
            },
        ),
        (
            vec![3, 5, 2, 1],
            Split {
                axis: 2,
                sizes: vec![1, 1],
            },
        ),
        (
            vec![2, 3, 448, 1],
            Split {
                axis: 2,
                sizes: vec![224, 224],
            },
        ),
        (
            vec![2, 10, 7, 5],
            Split {
                axis: 1,
                sizes: vec![3, 2, 5],
            },
        ),
        (
            vec![2, 3, 13, 17],
            Split {
                axis: 3,
                sizes: vec![4, 13],
            },
        ),
    ];
    for (shape, spec) in cases {
        let x = rng.tensor(&shape);
        let want = cpu::split(&x, &spec).unwrap();
        // Splitting undoes a concatenation along the same axis.
        let parts: Vec<&Tensor> = want.iter().collect();
        assert_eq!(cpu::concat(&parts, &Concat { axis: spec.axis }).unwrap(), x);
        let shapes: Vec<Vec<usize>> = want.iter().map(|t| t.shape().to_vec()).collect();
        let got = gpu_split(gpu(), &x, &spec, &shapes);
        assert_eq!(got, want, "split {shape:?} by {spec:?}");
    }
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
fn concat_and_split_in_batch_chunks() {
    let g = small_binding_gpu();
    let mut rng = Rng::new(15);
    // 6 images of 3·40·40 + 5·40·40 floats: 51 kB per output image, 307 kB in all.
    let a = rng.tensor(&[6, 3, 40, 40]);
    let b = rng.tensor(&[6, 5, 40, 40]);
    let spec = Concat { axis: 1 };
    let want = cpu::concat(&[&a, &b], &spec).unwrap();
    assert!(want.numel() * 4 > 1 << 16);
    assert_eq!(gpu_concat(&g, &[&a, &b], &spec, want.shape()), want);

    let spec = Split {
        axis: 1,
        sizes: vec![3, 5],
    };
    let got = gpu_split(&g, &want, &spec, &[vec![6, 3, 40, 40], vec![6, 5, 40, 40]]);
    assert_eq!(got, vec![a, b]);
}

fn err_text(r: gaze::Result<()>) -> String {
    r.expect_err("must be refused").to_string()
}

#[test]
fn bad_shapes_are_errors() {
    let g = gpu();
    let t = |shape: &[usize]| g.empty(shape).unwrap();
    let mut rec = Recorder::new(g);
    let (a, b) = (t(&[2, 3, 5, 5]), t(&[2, 3, 5, 4]));
    let out = t(&[2, 6, 5, 5]);
    let msg = err_text(gpu_ops::concat(
        &mut rec,
        &[&a, &b],
        &out,
        &Concat { axis: 1 },
    ));
    assert!(
        msg.contains("must agree") && msg.contains("[2, 3, 5, 4]"),
        "{msg}"
    );
    let msg = err_text(gpu_ops::concat(
        &mut rec,
        &[&a, &a],
        &t(&[2, 6, 5, 4]),
        &Concat { axis: 1 },
    ));
    assert!(msg.contains("output must have shape [2, 6, 5, 5]"), "{msg}");
    let msg = err_text(gpu_ops::concat(
        &mut rec,
        &[&a, &a],
        &out,
        &Concat { axis: 0 },
    ));
    assert!(msg.contains("axis"), "{msg}");
    let msg = err_text(gpu_ops::concat(&mut rec, &[], &out, &Concat { axis: 1 }));
    assert!(msg.contains("at least one input"), "{msg}");
    let msg = err_text(gpu_ops::concat(
        &mut rec,
        &[&a, &t(&[3, 3, 5, 5])],
        &out,
        &Concat { axis: 1 },
    ));
    assert!(msg.contains("batch"), "{msg}");
    let msg = err_text(gpu_ops::concat(
        &mut rec,
        &[&t(&[2, 3, 5])],
        &out,
        &Concat { axis: 1 },
    ));
    assert!(msg.contains("rank 4"), "{msg}");

    let x = t(&[2, 7, 30, 1]);
    let spec = Split {
        axis: 2,
        sizes: vec![13, 16],
    };
    let msg = err_text(gpu_ops::split(
        &mut rec,
        &x,
        &[&t(&[2, 7, 13, 1]), &t(&[2, 7, 16, 1])],
        &spec,
    ));
    assert!(
        msg.contains("must add up to") && msg.contains("(30)"),
        "{msg}"
    );
    let spec = Split {
        axis: 2,
        sizes: vec![13, 17],
    };
    let msg = err_text(gpu_ops::split(&mut rec, &x, &[&t(&[2, 7, 13, 1])], &spec));
    assert!(msg.contains("need 2 outputs"), "{msg}");
    let msg = err_text(gpu_ops::split(
        &mut rec,
        &x,
        &[&t(&[2, 7, 13, 1]), &t(&[2, 7, 1, 17])],
        &spec,
    ));
    assert!(
        msg.contains("output must have shape [2, 7, 17, 1]"),
        "{msg}"
    );
    assert!(cpu::split(
        &Tensor::zeros(&[2, 7, 30, 1]),
        &Split {
            axis: 4,
            sizes: vec![30]
        }
    )
    .is_err());
}
