//! Linear and softmax kernels against the CPU reference.

mod common;

use common::*;
use gaze::gpu::Recorder;
use gaze::kernels::linear as gpu_ops;
use gaze::kernels::Layout;
use gaze::ops::linear::{Linear, Softmax};
use gaze::ops::Activation;
use gaze::reference::linear as cpu;
use gaze::Tensor;

fn check_linear(x: &Tensor, w: &Tensor, b: Option<&Tensor>, spec: &Linear, what: &str) {
    let want = cpu::linear(x, w, b, spec).unwrap();
    let (gx, gw) = (upload(x), upload(w));
    let gb = b.map(upload);
    for layout in Layout::ALL {
        let got = run_gpu(want.shape(), |rec, out| {
            gpu_ops::linear_as(rec, &gx, &gw, gb.as_ref(), out, spec, layout)
        });
        assert_close(&got, &want, FP32_REL_L2, &format!("{layout}: {what}"));
    }
}

#[test]
fn linear_matches_reference() {
    let mut rng = Rng::new(21);
    // (N, F, O): the classifier 2048 → 1000, output counts off the 4-output tile, tiny F;
    // batches of 4 or more run 4 rows an invocation: one full block, and blocks cut short.
    for (n, f, o) in [
        (2, 2048, 1000),
        (1, 1280, 1000),
        (3, 7, 5),
        (2, 13, 17),
        (5, 1, 1),
        (3, 130, 65),
        (4, 64, 9),
        (9, 33, 7),
    ] {
        let x = rng.tensor(&[n, f]);
        let w = rng.tensor(&[o, f]);
        let b = rng.tensor(&[o]);
        let spec = Linear::default();
        check_linear(&x, &w, Some(&b), &spec, &format!("linear {n}×{f} → {o}"));
        check_linear(
            &x,
            &w,
            None,
            &spec,
            &format!("linear {n}×{f} → {o}, no bias"),
        );
    }
}

#[test]
fn linear_on_pooled_maps_with_activations() {
    let mut rng = Rng::new(22);
    let x = rng.tensor(&[3, 37, 1, 1]);
    let w = rng.tensor(&[11, 37]);
    let b = rng.tensor(&[11]);
    let flat = x.clone().reshape(&[3, 37]).unwrap();
    for act in Activation::ALL {
        let spec = Linear { act };
        // [N, F, 1, 1] reads as its flattening.
        assert_eq!(
            cpu::linear(&x, &w, Some(&b), &spec).unwrap(),
            cpu::linear(&flat, &w, Some(&b), &spec).unwrap()
        );
        check_linear(
            &x,
            &w,
            Some(&b),
            &spec,
            &format!("linear [3,37,1,1] {act:?}"),
        );
    }
}

#[test]
fn linear_reference_by_hand() {
    let x = Tensor::new(vec![2, 3], vec![1.0, 2.0, 3.0, -1.0, 0.0, 1.0]).unwrap();
    let w = Tensor::new(vec![2, 3], vec![1.0, 0.0, 0.0, 0.5, 0.5, 0.5]).unwrap();
    let b = Tensor::new(vec![2], vec![10.0, -1.0]).unwrap();
    let y = cpu::linear(&x, &w, Some(&b), &Linear::default()).unwrap();
    assert_eq!(y.data(), [11.0, 2.0, 9.0, -1.0]);
}

fn check_softmax(x: &Tensor, axis: usize, what: &str) {
    let spec = Softmax { axis };
    let want = cpu::softmax(x, &spec).unwrap();
    let gx = upload(x);
    let got = run_gpu(x.shape(), |rec, out| gpu_ops::softmax(rec, &gx, out, &spec));
    assert_close(&got, &want, FP32_REL_L2, what);
    // Every line along the axis sums to 1.
    let s = x.shape();
    let outer: usize = s[..axis].iter().product();
    let inner: usize = s[axis + 1..].iter().product();
    for o in 0..outer {
        for i in 0..inner {
            let sum: f64 = (0..s[axis])
                .map(|l| got.data()[(o * s[axis] + l) * inner + i] as f64)
                .sum();
            assert!(
                (sum - 1.0).abs() < 1e-5,
                "{what}: line ({o}, {i}) sums to {sum}"
            );
        }
    }
}

#[test]
fn softmax_over_each_axis() {
    let mut rng = Rng::new(23);
    // SAN pairwise: [N, Cw, k², H·W] over the taps; then other axes and odd sizes.
    let shapes: [(Vec<usize>, usize); 7] = [
        (vec![2, 3, 49, 35], 2),
        (vec![2, 5, 9, 13 * 17], 2),
        (vec![2, 3, 224, 224], 2),
        (vec![3, 7, 5, 13], 1),
        (vec![2, 3, 13, 17], 3),
        (vec![2, 1, 1, 1], 2),
        (vec![2, 3, 1, 5], 2),
    ];
    for (shape, axis) in shapes {
        let x = rng.tensor_in(&shape, -4.0, 4.0);
        check_softmax(&x, axis, &format!("softmax {shape:?} axis {axis}"));
    }
}

#[test]
fn softmax_is_stable_for_large_logits() {
    // exp(±300) overflows f32; subtracting the maximum keeps every term in range.
    let x = Rng::new(24).tensor_in(&[2, 3, 49, 20], -300.0, 300.0);
    check_softmax(&x, 2, "softmax of logits up to ±300");
    let y = cpu::softmax(&x, &Softmax { axis: 2 }).unwrap();
    assert!(y.data().iter().all(|v| v.is_finite()));
}

#[test]
fn bad_shapes_are_errors() {
    let g = gpu();
    let t = |shape: &[usize]| g.empty(shape).unwrap();
    let mut rec = Recorder::new(g);
    let spec = Linear::default();
    let err = |r: gaze::Result<()>| r.expect_err("must be refused").to_string();
    let (x, w) = (t(&[2, 8]), t(&[5, 8]));
    let msg = err(gpu_ops::linear(
        &mut rec,
        &x,
        &t(&[5, 7]),
        None,
        &t(&[2, 5]),
        &spec,
    ));
    assert!(
        msg.contains("weight must be [O, 8]") && msg.contains("[5, 7]"),
        "{msg}"
    );
    let msg = err(gpu_ops::linear(
        &mut rec,
        &x,
        &w,
        Some(&t(&[4])),
        &t(&[2, 5]),
        &spec,
    ));
    assert!(msg.contains("bias must be [5]"), "{msg}");
    let msg = err(gpu_ops::linear(
        &mut rec,
        &t(&[2, 8, 2, 1]),
        &w,
        None,
        &t(&[2, 5]),
        &spec,
    ));
    assert!(msg.contains("[N, F, 1, 1]"), "{msg}");
    let msg = err(gpu_ops::linear(
        &mut rec,
        &x,
        &w,
        None,
        &t(&[2, 5, 1, 1]),
        &spec,
    ));
    assert!(msg.contains("output must have shape [2, 5]"), "{msg}");

    let s = Softmax { axis: 2 };
    let msg = err(gpu_ops::softmax(
        &mut rec,
        &t(&[2, 3, 4]),
        &t(&[2, 3, 4]),
        &s,
    ));
    assert!(msg.contains("rank 4"), "{msg}");
    let msg = err(gpu_ops::softmax(
        &mut rec,
        &t(&[2, 3, 4, 5]),
        &t(&[2, 3, 5, 4]),
        &s,
    ));
    assert!(msg.contains("output must have shape"), "{msg}");
    let s0 = Softmax { axis: 0 };
    let msg = err(gpu_ops::softmax(
        &mut rec,
        &t(&[2, 3, 4, 5]),
        &t(&[2, 3, 4, 5]),
        &s0,
    ));
    assert!(msg.contains("axis must be 1, 2 or 3"), "{msg}");
}
