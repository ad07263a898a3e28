//! Pooling kernels against the CPU reference, and the reference against hand-worked values.

mod common;

use common::*;
use gaze::kernels::pool as gpu_ops;
use gaze::kernels::Layout;
use gaze::ops::pool::{AvgPool2d, MaxPool2d, MeanOver, SpatialMean};
use gaze::reference::pool as cpu;
use gaze::Tensor;

/// Batch > 1, odd and non-square planes, channel counts that are not multiples of 4.
const SHAPES: &[[usize; 4]] = &[[2, 3, 1, 1], [3, 5, 7, 5], [2, 7, 13, 17], [2, 3, 224, 224]];

fn max(kernel: usize, stride: usize, padding: usize) -> MaxPool2d {
    MaxPool2d {
        kernel,
        stride,
        padding,
    }
}

fn avg(kernel: usize, stride: usize, padding: usize, count_include_pad: bool) -> AvgPool2d {
    AvgPool2d {
        kernel,
        stride,
        padding,
        count_include_pad,
    }
}

fn t(shape: &[usize], data: &[f32]) -> Tensor {
    Tensor::new(shape.to_vec(), data.to_vec()).unwrap()
}

#[test]
fn max_pool_matches_reference() {
    let mut rng = Rng::new(11);
    // ResNet stem, SAN transitions, and a stride-1 window that overlaps heavily.
    let specs = [max(3, 2, 1), max(2, 2, 0), max(3, 1, 1), max(1, 1, 0)];
    for shape in SHAPES {
        let x = rng.tensor(shape);
        let gx = upload(&x);
        for spec in &specs {
            let Ok(out) = spec.out_shape(shape) else {
                // Only the 2×2 p0 window does not fit a 1×1 plane.
                assert_eq!((spec.kernel, shape[2]), (2, 1), "{spec:?} {shape:?}");
                continue;
            };
            let got = run_gpu(&out, |rec, o| gpu_ops::max_pool(rec, &gx, o, spec));
            let want = cpu::max_pool(&x, spec).unwrap();
            assert_close(&got, &want, FP32_REL_L2, &format!("{spec:?} {shape:?}"));
        }
    }
}

#[test]
fn avg_pool_matches_reference() {
    let mut rng = Rng::new(12);
    let specs = [
        avg(3, 1, 1, true),
        avg(3, 1, 1, false),
        avg(3, 2, 1, true),
        avg(3, 2, 1, false),
        avg(2, 2, 0, true),
        avg(5, 3, 2, false),
        AvgPool2d::square(7),
    ];
    for shape in SHAPES {
        let x = rng.tensor(shape);
        let gx = upload(&x);
        for spec in &specs {
            let Ok(out) = spec.out_shape(shape) else {
                let side = shape[2].min(shape[3]) + 2 * spec.padding;
                assert!(side < spec.kernel, "{spec:?} {shape:?} was refused");
                continue;
            };
            let got = run_gpu(&out, |rec, o| gpu_ops::avg_pool(rec, &gx, o, spec));
            let want = cpu::avg_pool(&x, spec).unwrap();
            assert_close(&got, &want, FP32_REL_L2, &format!("{spec:?} {shape:?}"));
        }
    }
}

#[test]
fn avg_pool_7_head_on_7_8_and_14() {
    let mut rng = Rng::new(13);
    let spec = AvgPool2d::square(7);
    for (hw, side) in [(7, 1), (8, 1), (14, 2)] {
        let shape = [2, 5, hw, hw];
        let x = rng.tensor(&shape);
        let out = [2, 5, side, side];
        assert_eq!(spec.out_shape(&shape).unwrap(), out);
        let got = run_gpu(&out, |rec, o| gpu_ops::avg_pool(rec, &upload(&x), o, &spec));
        let want = cpu::avg_pool(&x, &spec).unwrap();
        assert_close(
            &got,
            &want,
            FP32_REL_L2,
            &format!("AvgPool2d(7) on {hw}×{hw}"),
        );
    }
}

#[test]
fn spatial_mean_matches_reference() {
    let mut rng = Rng::new(14);
    for shape in SHAPES.iter().chain(&[[1, 2, 56, 56], [2, 3, 3, 100]]) {
        // An offset keeps the means away from zero, so the relative error measures the sum.
        let x = rng.tensor_in(shape, -0.5, 1.5);
        let gx = upload(&x);
        for over in [MeanOver::HW, MeanOver::W, MeanOver::H] {
            let spec = SpatialMean { over };
            let out = spec.out_shape(shape).unwrap();
            let want = cpu::spatial_mean(&x, &spec).unwrap();
            for layout in Layout::ALL {
                let got = run_gpu(&out, |rec, o| {
                    gpu_ops::spatial_mean_as(rec, &gx, o, &spec, layout)
                });
                assert_close(
                    &got,
                    &want,
                    FP32_REL_L2,
                    &format!("{layout} {over:?} {shape:?}"),
                );
            }
        }
    }
}

#[test]
fn spatial_mean_shapes() {
    let x = [2, 3, 5, 7];
    let shape = |over| SpatialMean { over }.out_shape(&x).unwrap();
    assert_eq!(shape(MeanOver::HW), [2, 3, 1, 1]);
    assert_eq!(shape(MeanOver::W), [2, 3, 5, 1]);
    assert_eq!(shape(MeanOver::H), [2, 3, 1, 7]);
}

#[test]
fn reference_max_pool_by_hand() {
    // 4×4 plane 0..15, 3×3 s2 p1 → windows rows {0,1},{1,2,3} × cols likewise.
    let x = Tensor::from_fn(&[1, 1, 4, 4], |i| i as f32);
    let y = cpu::max_pool(&x, &max(3, 2, 1)).unwrap();
    assert_eq!(y, t(&[1, 1, 2, 2], &[5.0, 7.0, 13.0, 15.0]));
    // All negative: padding must not contribute a 0.
    let x = Tensor::from_fn(&[1, 1, 2, 2], |i| -1.0 - i as f32);
    let y = cpu::max_pool(&x, &max(3, 2, 1)).unwrap();
    assert_eq!(y, t(&[1, 1, 1, 1], &[-1.0]));
}

#[test]
fn reference_avg_pool_divisors_by_hand() {
    let ones = Tensor::from_fn(&[1, 1, 3, 3], |_| 1.0);
    // With padding counted the corner window holds 4 ones out of 9 positions.
    let y = cpu::avg_pool(&ones, &avg(3, 1, 1, true)).unwrap();
    let (c, e) = (4.0 / 9.0, 6.0 / 9.0);
    assert_eq!(y, t(&[1, 1, 3, 3], &[c, e, c, e, 1.0, e, c, e, c]));
    let y = cpu::avg_pool(&ones, &avg(3, 1, 1, false)).unwrap();
    assert_eq!(y, t(&[1, 1, 3, 3], &[1.0; 9]));
    // AvgPool2d(7) on 8×8 reads the top-left 7×7 window only.
    let x = Tensor::from_fn(&[1, 1, 8, 8], |i| {
        if i % 8 == 7 || i >= 56 {
            100.0
        } else {
            2.0
        }
    });
    let y = cpu::avg_pool(&x, &AvgPool2d::square(7)).unwrap();
    assert_eq!(y, t(&[1, 1, 1, 1], &[2.0]));
}

#[test]
fn reference_divisor_clips_to_the_padded_extent() {
    // PyTorch: window end min(start + k, size + p); the start may lie in the padding.
    let spec = avg(3, 2, 1, true);
    assert_eq!(spec.axis_count(-1, 4), 3);
    assert_eq!(spec.axis_count(3, 4), 2); // [3, 5) after clipping to 4 + 1
    let spec = avg(3, 2, 1, false);
    assert_eq!(spec.axis_count(-1, 4), 2);
    assert_eq!(spec.axis_count(3, 4), 1);
}

#[test]
fn bad_shapes_are_refused() {
    let err = |r: gaze::Result<[usize; 4]>| r.unwrap_err().to_string();
    let msg = err(max(3, 2, 1).out_shape(&[1, 3, 8]));
    assert!(
        msg.contains("max_pool") && msg.contains("[1, 3, 8]"),
        "{msg}"
    );
    let msg = err(max(3, 2, 2).out_shape(&[1, 3, 8, 8]));
    assert!(msg.contains("padding 2"), "{msg}");
    let msg = err(avg(7, 7, 0, true).out_shape(&[1, 3, 6, 9]));
    assert!(
        msg.contains("larger than the padded input") && msg.contains("[1, 3, 6, 9]"),
        "{msg}"
    );
    let msg = err(avg(3, 0, 1, true).out_shape(&[1, 3, 8, 8]));
    assert!(msg.contains("stride (0)"), "{msg}");
    let msg = err(max(2, 2, 1).out_shape(&[1, 3, 0, 4]));
    assert!(msg.contains("non-empty"), "{msg}");
    let msg = err(SpatialMean { over: MeanOver::HW }.out_shape(&[2, 3, 4]));
    assert!(msg.contains("spatial_mean"), "{msg}");
}

#[test]
fn wrong_output_shape_is_refused() {
    let x = upload(&Tensor::zeros(&[2, 3, 8, 8]));
    let out = gpu().empty(&[2, 3, 8, 8]).unwrap();
    let mut rec = gaze::gpu::Recorder::new(gpu());
    let msg = gpu_ops::max_pool(&mut rec, &x, &out, &max(3, 2, 1))
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("[2, 3, 4, 4]") && msg.contains("[2, 3, 8, 8]"),
        "{msg}"
    );
    let spec = SpatialMean { over: MeanOver::W };
    let msg = gpu_ops::spatial_mean(&mut rec, &x, &out, &spec)
        .unwrap_err()
        .to_string();
    assert!(msg.contains("[2, 3, 8, 1]"), "{msg}");
    assert!(cpu::avg_pool(&Tensor::zeros(&[2, 3, 2, 2]), &AvgPool2d::square(7)).is_err());
}
