//! Device limits: dispatches past 65,535 workgroups in one dimension, and tensors larger than
//! one storage binding, still compute correctly.

mod common;

use common::*;
use gaze::gpu::{Gpu, Recorder};
use gaze::kernels::elementwise as gpu_ops;
use gaze::ops::elementwise::{Binary, BinaryOp, Unary};
use gaze::ops::Activation;
use gaze::reference::elementwise as cpu;
use gaze::Precision;

#[test]
fn grid_spills_into_y_past_the_dimension_limit() {
    let rec = Recorder::new(gpu());
    let max = gpu().limits().max_compute_workgroups_per_dimension as u64;
    let [x, y, _] = rec.grid(max * 64 + 1).unwrap();
    assert_eq!((x as u64, y), (max, 2));
}

#[test]
fn elementwise_over_more_than_65535_workgroups() {
    // 2·64·180·190 = 4,377,600 invocations = 68,400 workgroups of 64.
    let shape = [2, 64, 180, 190];
    let x = Rng::new(7).tensor_in(&shape, -4.0, 4.0);
    let spec = Unary::act(Activation::HSwish);
    let gx = upload(&x);
    let got = run_gpu(&shape, |rec, out| {
        assert!(
            rec.grid(out.numel() as u64)?[1] > 1,
            "the test must need a 2-D grid"
        );
        gpu_ops::unary(rec, &gx, out, &spec)
    });
    assert_close(
        &got,
        &cpu::unary(&x, &spec),
        FP32_REL_L2,
        "h_swish over a 2-D grid",
    );
}

#[test]
fn tensors_larger_than_a_binding_are_split_by_batch() {
    let limit = 1 << 20;
    let g = gpu_with_binding_limit(limit, Precision::F32);
    assert_eq!(g.max_binding_bytes(), limit);
    let mut rng = Rng::new(8);
    // 473,200 bytes an image: chunks after the first start off the 256-byte binding
    // alignment and go through copies; 524,288 bytes an image: every chunk is bound in place.
    for shape in [[6, 7, 130, 130], [6, 8, 128, 128]] {
        split_binary(&g, &mut rng, shape);
    }
}

fn split_binary(g: &Gpu, rng: &mut Rng, shape: [usize; 4]) {
    let [n, c, ..] = shape;
    let limit = g.max_binding_bytes();
    let a = rng.tensor(&shape);
    for b_shape in [shape.to_vec(), vec![n, c, 1, 1], vec![1, c, 1, 1]] {
        let b = rng.tensor(&b_shape);
        let spec = Binary {
            op: BinaryOp::Mul,
            act: Activation::Relu,
        };
        let (ga, gb) = (g.upload(&a).unwrap(), g.upload(&b).unwrap());
        assert!(ga.bytes() > limit);
        let got = run_on(g, &shape, |rec, out| {
            gpu_ops::binary(rec, &ga, &gb, out, &spec)
        });
        assert_close(
            &got,
            &cpu::binary(&a, &b, &spec).unwrap(),
            FP32_REL_L2,
            &format!("{shape:?} split with b {b_shape:?}"),
        );
    }
}

#[test]
fn one_image_larger_than_a_binding_is_refused_clearly() {
    let g = gpu_with_binding_limit(1 << 16, Precision::F32);
    let x = g.empty(&[2, 3, 100, 100]).unwrap(); // 120 kB per image
    let out = g.empty(&[2, 3, 100, 100]).unwrap();
    let mut rec = Recorder::new(&g);
    let err = gpu_ops::unary(&mut rec, &x, &out, &Unary::act(Activation::Relu)).unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("[2, 3, 100, 100]") && msg.contains("65536"),
        "{msg}"
    );
    // The caller can fix it with a smaller input: the web package's code says so.
    assert_eq!(err.code(), "bad-input");
}
