//! The compiled plan: a warm run creates no device object, natively; each input shape or
//! batch gets its own plan, and a few are kept.

mod common;

use gaze::graph::gpu::GpuGraph;
use gaze::Tensor;

/// The object count is the device's: tests that read it must not run side by side.
fn serial() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

fn model(shape: &[usize]) -> GpuGraph {
    let graph = gaze::models::build_synthetic(
        "triplet_attention",
        3,
        &[shape.to_vec()],
        &Default::default(),
    )
    .unwrap();
    GpuGraph::new(common::gpu(), &graph).unwrap()
}

fn input(shape: &[usize]) -> Tensor {
    Tensor::from_fn(shape, |i| (i % 13) as f32 / 6.0 - 1.0)
}

/// Device objects created by one run of `model` on `shape`, and its output.
fn objects_of_run(model: &GpuGraph, shape: &[usize]) -> (u64, Tensor) {
    let gpu = common::gpu();
    let before = gpu.objects_created();
    let out = model.run_blocking(gpu, &[input(shape)]).unwrap();
    (gpu.objects_created() - before, out)
}

#[test]
fn a_warm_run_creates_no_object_and_gives_the_same_output() {
    let _s = serial();
    let shape = [2, 8, 9, 11];
    let model = model(&shape);
    let (cold, first) = objects_of_run(&model, &shape);
    assert!(cold > 0, "the first run compiles the plan");
    for _ in 0..3 {
        let (warm, again) = objects_of_run(&model, &shape);
        assert_eq!(warm, 0, "a warm run created {warm} objects");
        assert_eq!(again.data(), first.data());
    }
    // Reading the attention maps as well needs its own staging buffer once, then none.
    let taps = model.graph().tap_values();
    let gpu = common::gpu();
    let run = |model: &GpuGraph| {
        let before = gpu.objects_created();
        pollster::block_on(model.run_keeping(gpu, &[input(&shape)], &taps)).unwrap();
        gpu.objects_created() - before
    };
    assert!(run(&model) > 0);
    assert_eq!(run(&model), 0);
}

#[test]
fn each_batch_has_its_plan_and_three_are_kept() {
    let _s = serial();
    // A module built for 9×11 maps takes any batch.
    let shapes = [[1, 8, 9, 11], [3, 8, 9, 11], [2, 8, 9, 11], [4, 8, 9, 11]];
    let model = model(&shapes[0]);
    let reference: Vec<Tensor> = shapes
        .iter()
        .map(|s| {
            gaze::graph::cpu::run(
                &gaze::models::build_synthetic(
                    "triplet_attention",
                    3,
                    &[s.to_vec()],
                    &Default::default(),
                )
                .unwrap(),
                &[input(s)],
            )
            .unwrap()
        })
        .collect();
    // The first three shapes, then the first three again: every second visit is warm.
    for round in 0..2 {
        for (s, want) in shapes[..3].iter().zip(&reference) {
            let (objects, got) = objects_of_run(&model, s);
            // FP32_REL_L2: the kernels' tolerance against the reference (tests/common).
            common::assert_close(&got, want, common::FP32_REL_L2, &format!("{s:?}"));
            assert_eq!(
                objects == 0,
                round == 1,
                "{s:?} in round {round}: {objects} objects"
            );
        }
    }
    // A fourth shape pushes out the least recently used plan (the first shape's).
    assert!(objects_of_run(&model, &shapes[3]).0 > 0);
    assert_eq!(objects_of_run(&model, &shapes[2]).0, 0);
    assert!(objects_of_run(&model, &shapes[0]).0 > 0);
}
