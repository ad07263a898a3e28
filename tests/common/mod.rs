//! Shared by the kernel tests: the GPU, a deterministic generator and the comparison.
#![allow(dead_code)]

use std::sync::OnceLock;

use gaze::gpu::{Gpu, GpuOptions, GpuTensor, Recorder};
use gaze::Tensor;

/// Relative L2 error allowed between a kernel and the CPU reference, both in float32.
/// Each output is a sum of at most a few thousand products; float32 rounding of such sums,
/// accumulated in different orders on the two sides, stays near 1e-6 relative in L2, and the
/// transcendental functions of lavapipe and Rust agree to a few ulp. 1e-5 leaves a 10x margin
/// while a wrong index, tap or channel shows up as errors of 1e-2 and more.
pub const FP32_REL_L2: f64 = 1e-5;

/// Relative L2 error allowed between a kernel or module run with f16 storage and the CPU
/// reference rounding the same values to f16 (`cpu::run_at`). Both round the same inputs and
/// weights and compute in f32; they differ only where sums taken in another order fall on
/// either side of an f16 rounding boundary: one f16 step (at most 2^-11 = 4.9e-4 relative) at a
/// few elements. 2.5e-4 allows a quarter of all elements to differ so; measured 0 to 3.4e-5,
/// while a wrong index or a lost conversion gives 1e-2 and more.
pub const F16_SAME_ROUNDING_REL_L2: f64 = 2.5e-4;

/// Relative L2 error allowed between a network or module run with f16 storage and the float32
/// reference. Every input, weight and op output is rounded once to f16 (relative error at most
/// 4.9e-4, about 2.8e-4 RMS); the errors of successive layers add up partly, and normalized
/// layers keep the gain near one. Measured: 3.1 to 6.1e-4 on the modules, 4.4 to 14e-4 on
/// ResNet-18-TA, MobileNetV2-CA and AFF-ResNet-18 with stand-in weights. 3e-3 is six f16 unit
/// roundoffs. (Networks that amplify rounding errors need more: tests/parity.rs scales its f16
/// tolerance by each case's own float32 sensitivity.)
pub const F16_REL_L2: f64 = 3e-3;

/// Test devices choose kernels by the heuristic alone, whatever a developer has tuned on this
/// machine (tests that tune make their own device); tests/conv.rs runs every variant.
pub fn untuned() -> GpuOptions {
    GpuOptions {
        tune: gaze::tune::TuneMode::Off,
        ..Default::default()
    }
}

/// The test device. A missing adapter fails the test: CI has lavapipe, so a skip would hide
/// a broken setup.
pub fn gpu() -> &'static Gpu {
    static GPU: OnceLock<Gpu> = OnceLock::new();
    GPU.get_or_init(|| match Gpu::new_blocking(&untuned()) {
        Ok(gpu) => gpu,
        Err(e) => panic!("GPU tests need an adapter (lavapipe in CI): {e}"),
    })
}

/// The test device storing tensors as f16 (lavapipe has shader-f16, so CI runs these).
pub fn gpu_f16() -> &'static Gpu {
    static GPU: OnceLock<Gpu> = OnceLock::new();
    GPU.get_or_init(|| {
        let options = GpuOptions {
            precision: gaze::gpu::Precision::F16,
            ..untuned()
        };
        Gpu::new_blocking(&options)
            .unwrap_or_else(|e| panic!("f16 tests need an adapter with shader-f16: {e}"))
    })
}

/// A device storing tensors at `precision` whose storage bindings are capped at `bytes`, so
/// splitting is exercised on any adapter without allocating gigabytes.
pub fn gpu_with_binding_limit(bytes: u64, precision: gaze::Precision) -> Gpu {
    let options = GpuOptions {
        limit_overrides: gaze::gpu::LimitOverrides {
            max_storage_buffer_binding_size: Some(bytes),
        },
        precision,
        ..Default::default()
    };
    Gpu::new_blocking(&options)
        .unwrap_or_else(|e| panic!("GPU tests need an adapter (lavapipe in CI): {e}"))
}

/// SplitMix64: a small deterministic generator, so every failure reproduces from its seed.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [-1, 1).
    pub fn uniform(&mut self) -> f32 {
        ((self.next_u64() >> 40) as f64 / (1u64 << 24) as f64 * 2.0 - 1.0) as f32
    }

    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    pub fn tensor(&mut self, shape: &[usize]) -> Tensor {
        Tensor::from_fn(shape, |_| self.uniform())
    }

    /// Values in [lo, hi), e.g. positive scales.
    pub fn tensor_in(&mut self, shape: &[usize], lo: f32, hi: f32) -> Tensor {
        Tensor::from_fn(shape, |_| lo + (hi - lo) * (self.uniform() + 1.0) / 2.0)
    }
}

/// The parity rule of ../shared/parity/README.md: a float32 result may be max(1e-4, 20 ×
/// PyTorch float32's own relative error) from PyTorch's float64 output. Twenty times leaves room
/// for a different but equally valid summation order; the floor covers outputs PyTorch happens to
/// compute almost exactly.
pub fn parity_tolerance(torch_fp32_rel_l2: f64) -> f64 {
    (20.0 * torch_fp32_rel_l2).max(1e-4)
}

pub fn rel_l2(got: &[f32], want: &[f32]) -> f64 {
    let (mut num, mut den) = (0.0f64, 0.0f64);
    for (g, w) in got.iter().zip(want) {
        num += (*g as f64 - *w as f64).powi(2);
        den += (*w as f64).powi(2);
    }
    num.sqrt() / den.sqrt().max(1e-30)
}

/// Fails on a shape mismatch, any NaN or infinity, or a relative L2 error above `tol`.
pub fn assert_close(got: &Tensor, want: &Tensor, tol: f64, what: &str) {
    assert_eq!(got.shape(), want.shape(), "{what}: shape");
    assert!(
        want.data().iter().all(|v| v.is_finite()),
        "{what}: the reference is not finite"
    );
    if let Some(i) = got.data().iter().position(|v| !v.is_finite()) {
        panic!("{what}: GPU output {i} is {}", got.data()[i]);
    }
    let err = rel_l2(got.data(), want.data());
    assert!(
        err <= tol,
        "{what}: relative L2 error {err:.3e} > {tol:.1e}"
    );
}

pub fn upload(t: &Tensor) -> GpuTensor {
    gpu().upload(t).expect("upload")
}

/// Allocates the output, records `f` as one submission, and reads the output back.
pub fn run_gpu(
    shape: &[usize],
    f: impl FnOnce(&mut Recorder, &GpuTensor) -> gaze::Result<()>,
) -> Tensor {
    run_on(gpu(), shape, f)
}

pub fn run_on(
    gpu: &Gpu,
    shape: &[usize],
    f: impl FnOnce(&mut Recorder, &GpuTensor) -> gaze::Result<()>,
) -> Tensor {
    let out = gpu.empty(shape).expect("alloc output");
    let mut rec = Recorder::new(gpu);
    f(&mut rec, &out).expect("record");
    rec.submit().expect("submit");
    gpu.read_blocking(&out).expect("read back")
}

/// One synthetic attention module (`gaze::models::build_synthetic`) on `shape`, end to end:
/// its graph has the node `kinds` and a first attention tap with `maps` (label, offset, rows,
/// cols); the GPU records `dispatches` dispatches, and its output and kept gates equal the CPU
/// reference's within FP32_REL_L2, every map a `rows × cols` slice of an image's gates.
pub fn check_attention_graph(
    module: &str,
    shape: &[usize],
    kinds: &[&str],
    maps: &[(&str, usize, usize, usize)],
    dispatches: usize,
) {
    use gaze::graph::gpu::GpuGraph;
    let shape = shape.to_vec();
    let graph =
        gaze::models::build_synthetic(module, 3, std::slice::from_ref(&shape), &Default::default())
            .unwrap();
    let got_kinds: Vec<&str> = graph
        .nodes()
        .iter()
        .map(|n| n.op.kind())
        .filter(|&kind| kind != "constant")
        .collect();
    assert_eq!(got_kinds, kinds);
    let tap = &graph.taps()[0];
    let got_maps: Vec<(&str, usize, usize, usize)> = tap
        .maps
        .iter()
        .map(|m| (m.label, m.offset, m.rows, m.cols))
        .collect();
    assert_eq!(got_maps, maps);

    let x = Rng::new(28).tensor(&shape);
    let keep = [tap.maps[0].value];
    let (want, want_gates) =
        gaze::graph::cpu::run_keeping(&graph, std::slice::from_ref(&x), &keep).unwrap();
    let model = GpuGraph::new(gpu(), &graph).unwrap();
    let mut rec = Recorder::new(gpu());
    model
        .record(gpu(), &mut rec, std::slice::from_ref(&x))
        .unwrap();
    assert_eq!(rec.dispatch_count(), dispatches);
    drop(rec);
    let (got, got_gates) = pollster::block_on(model.run_keeping(gpu(), &[x], &keep)).unwrap();
    assert_close(&got, &want, FP32_REL_L2, &format!("{module} graph"));
    assert_close(&got_gates[0], &want_gates[0], FP32_REL_L2, "gates");
    let per_image: usize = maps.iter().map(|m| m.2 * m.3).sum();
    for m in &tap.maps {
        assert_eq!(m.per_image, per_image);
        let slice = m.read(got_gates[0].data(), 1).unwrap();
        assert_eq!(slice.len(), m.rows * m.cols);
    }
}

/// Fails unless the error message `err` contains every one of `parts`.
pub fn assert_names(err: &str, parts: &[&str]) {
    for p in parts {
        assert!(err.contains(p), "`{err}` should name {p}");
    }
}
