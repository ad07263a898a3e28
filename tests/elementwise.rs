//! Pointwise kernels against the CPU reference.

mod common;

use common::*;
use gaze::gpu::Recorder;
use gaze::kernels::elementwise as gpu_ops;
use gaze::ops::elementwise::{Binary, BinaryOp, Blend, ChannelAffine, Unary};
use gaze::ops::Activation;
use gaze::reference::elementwise as cpu;
use gaze::Tensor;

/// Batch > 1, odd and non-square planes, channel counts that are not multiples of 4.
const SHAPES: &[[usize; 4]] = &[[2, 3, 1, 1], [3, 5, 7, 5], [2, 7, 13, 17], [2, 3, 224, 224]];

#[test]
fn unary_every_activation() {
    let mut rng = Rng::new(1);
    for shape in SHAPES {
        // Scaled inputs reach the saturated parts of sigmoid, ReLU6 and h_swish.
        let x = rng.tensor_in(shape, -8.0, 8.0);
        let gx = upload(&x);
        for act in Activation::ALL {
            let spec = Unary {
                scale: 0.75,
                shift: 0.5,
                act,
            };
            let got = run_gpu(shape, |rec, out| gpu_ops::unary(rec, &gx, out, &spec));
            assert_close(
                &got,
                &cpu::unary(&x, &spec),
                FP32_REL_L2,
                &format!("{act:?} {shape:?}"),
            );
        }
    }
}

#[test]
fn binary_with_broadcast() {
    let mut rng = Rng::new(2);
    for &[n, c, h, w] in SHAPES {
        let a = rng.tensor(&[n, c, h, w]);
        let ga = upload(&a);
        let others: [Vec<usize>; 6] = [
            vec![n, c, h, w],
            vec![n, c, 1, 1],
            vec![n, 1, h, w],
            vec![n, c, 1, w],
            vec![n, c, h, 1],
            vec![1, c, 1, 1],
        ];
        for b_shape in &others {
            let b = rng.tensor(b_shape);
            let gb = upload(&b);
            for (op, act) in [
                (BinaryOp::Add, Activation::Relu),
                (BinaryOp::Sub, Activation::None),
                (BinaryOp::Mul, Activation::Sigmoid),
            ] {
                let spec = Binary { op, act };
                let want = cpu::binary(&a, &b, &spec).unwrap();
                let got = run_gpu(&[n, c, h, w], |rec, out| {
                    gpu_ops::binary(rec, &ga, &gb, out, &spec)
                });
                assert_close(
                    &got,
                    &want,
                    FP32_REL_L2,
                    &format!("{op:?} {:?} ∘ {b_shape:?}", [n, c, h, w]),
                );
                // The broadcast operand may also come first.
                let want = cpu::binary(&b, &a, &spec).unwrap();
                let got = run_gpu(&[n, c, h, w], |rec, out| {
                    gpu_ops::binary(rec, &gb, &ga, out, &spec)
                });
                assert_close(
                    &got,
                    &want,
                    FP32_REL_L2,
                    &format!("{op:?} {b_shape:?} ∘ {:?}", [n, c, h, w]),
                );
            }
        }
    }
}

#[test]
fn aff_blend() {
    let mut rng = Rng::new(3);
    for &[n, c, h, w] in SHAPES {
        let x = rng.tensor(&[n, c, h, w]);
        let r = rng.tensor(&[n, c, h, w]);
        for w_shape in [vec![n, c, h, w], vec![n, c, 1, 1]] {
            let wt = rng.tensor_in(&w_shape, 0.0, 1.0);
            for k in [2.0, 1.0] {
                let spec = Blend { k };
                let want = cpu::blend(&x, &wt, &r, &spec).unwrap();
                let (gx, gw, gr) = (upload(&x), upload(&wt), upload(&r));
                let got = run_gpu(&[n, c, h, w], |rec, out| {
                    gpu_ops::blend(rec, &gx, &gw, &gr, out, &spec)
                });
                assert_close(
                    &got,
                    &want,
                    FP32_REL_L2,
                    &format!("blend k={k} w {w_shape:?}"),
                );
            }
        }
    }
}

/// One shape rule (`Blend::out_shape`) for the reference and the kernel: both refuse a
/// residual of another shape and a weight that does not broadcast, in the same words.
#[test]
fn blend_shapes_are_checked_by_one_rule() {
    let x = Tensor::zeros(&[2, 3, 4, 5]);
    let spec = Blend { k: 2.0 };
    let gpu = gpu();
    let out = gpu.empty(&[2, 3, 4, 5]).unwrap();
    for (w, r, words) in [
        (
            vec![2, 3, 1, 1],
            vec![2, 3, 4, 4],
            "and residual [2, 3, 4, 4] differ",
        ),
        (
            vec![2, 2, 1, 1],
            vec![2, 3, 4, 5],
            "cannot broadcast [2, 3, 4, 5] with [2, 2, 1, 1]",
        ),
    ] {
        let (w, r) = (Tensor::zeros(&w), Tensor::zeros(&r));
        let cpu_err = cpu::blend(&x, &w, &r, &spec).unwrap_err().to_string();
        let mut rec = Recorder::new(gpu);
        let gpu_err = gpu_ops::blend(&mut rec, &upload(&x), &upload(&w), &upload(&r), &out, &spec)
            .unwrap_err()
            .to_string();
        assert!(cpu_err.contains(words), "{cpu_err}");
        assert_eq!(cpu_err, gpu_err);
    }
}

#[test]
fn channel_affine_on_any_trailing_shape() {
    let mut rng = Rng::new(4);
    let shapes: [Vec<usize>; 3] = [vec![2, 7, 13, 17], vec![3, 5, 9, 1], vec![2, 6, 1, 1]];
    for shape in shapes {
        let x = rng.tensor(&shape);
        let scale = rng.tensor(&[shape[1]]);
        let shift = rng.tensor(&[shape[1]]);
        for act in [Activation::None, Activation::Relu] {
            let spec = ChannelAffine { act };
            let want = cpu::channel_affine(&x, &scale, &shift, &spec).unwrap();
            let (gx, gs, gt) = (upload(&x), upload(&scale), upload(&shift));
            let got = run_gpu(&shape, |rec, out| {
                gpu_ops::channel_affine(rec, &gx, &gs, &gt, out, &spec)
            });
            assert_close(
                &got,
                &want,
                FP32_REL_L2,
                &format!("affine {shape:?} {act:?}"),
            );
        }
    }
}

#[test]
fn mismatched_shapes_are_errors() {
    let g = gpu();
    let a = g.empty(&[2, 3, 4, 5]).unwrap();
    let b = g.empty(&[2, 4, 4, 5]).unwrap();
    let out = g.empty(&[2, 3, 4, 5]).unwrap();
    let mut rec = gaze::gpu::Recorder::new(g);
    let spec = Binary {
        op: BinaryOp::Add,
        act: Activation::None,
    };
    let err = gpu_ops::binary(&mut rec, &a, &b, &out, &spec)
        .unwrap_err()
        .to_string();
    assert!(err.contains("cannot broadcast"), "{err}");
    let wrong_out = g.empty(&[2, 3, 4, 4]).unwrap();
    let err = gpu_ops::unary(&mut rec, &a, &wrong_out, &Unary::act(Activation::Relu))
        .unwrap_err()
        .to_string();
    assert!(err.contains("output must have shape"), "{err}");
}
