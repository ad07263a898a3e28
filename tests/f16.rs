//! `--precision f16`: tensors stored as f16, arithmetic in f32. The attention modules and
//! SAN's (with its softmax and concat) run through their module graphs, the convolution
//! routes, pools and classifiers through whole networks; then storage and the split path.

mod common;

use common::*;
use gaze::gpu::{Gpu, Recorder};
use gaze::graph::{cpu, gpu::GpuGraph};
use gaze::kernels::elementwise as gpu_ops;
use gaze::models::{self, Options};
use gaze::ops::elementwise::{Binary, BinaryOp};
use gaze::ops::Activation;
use gaze::{Precision, Tensor};

fn options(pairs: &[&str]) -> Options {
    let pairs: Vec<String> = pairs.iter().map(|s| s.to_string()).collect();
    models::parse_options(&pairs).unwrap()
}

/// `arch` with stand-in weights on random inputs of `shapes`: the f16 GPU output and the
/// inputs.
fn run_f16(
    arch: &str,
    shapes: &[Vec<usize>],
    opts: &[&str],
) -> (gaze::graph::Graph<Tensor>, Vec<Tensor>, Tensor) {
    let graph = models::build_synthetic(arch, 3, shapes, &options(opts)).unwrap();
    let mut rng = Rng::new(5);
    let xs: Vec<Tensor> = shapes.iter().map(|s| rng.tensor(s)).collect();
    let model = GpuGraph::new(gpu_f16(), &graph).unwrap();
    let got = model.run_blocking(gpu_f16(), &xs).unwrap();
    (graph, xs, got)
}

#[test]
fn modules_at_f16_round_as_the_reference_does() {
    let cases: &[(&str, &[usize], usize, &[&str])] = &[
        ("triplet_attention", &[2, 32, 14, 10], 1, &[]),
        ("coord_attention", &[2, 64, 12, 12], 1, &[]),
        ("ms_cam", &[2, 64, 8, 8], 1, &[]),
        ("aff", &[2, 64, 8, 8], 2, &[]),
        ("iaff", &[2, 64, 8, 8], 2, &[]),
        ("san_sam", &[2, 32, 10, 9], 1, &["sa_type=pairwise"]),
        ("san_sam", &[2, 32, 10, 9], 1, &["sa_type=patchwise"]),
    ];
    for (arch, shape, inputs, opts) in cases {
        let shapes = vec![shape.to_vec(); *inputs];
        let (graph, xs, got) = run_f16(arch, &shapes, opts);
        let what = format!("{arch} {opts:?} at f16");
        let rounded = cpu::run_at(&graph, &xs, Precision::F16).unwrap();
        assert_close(&got, &rounded, F16_SAME_ROUNDING_REL_L2, &what);
        let exact = cpu::run(&graph, &xs).unwrap();
        assert_close(&got, &exact, F16_REL_L2, &format!("{what} against f32"));
    }
}

/// An f16 device whose tuning cache runs every layout op that `graph` plans for `xs` with an
/// output per invocation, as a GPU does without measurements.
fn per_output_at_f16(graph: &gaze::graph::Graph<Tensor>, xs: &[Tensor]) -> Gpu {
    use gaze::gpu::GpuOptions;
    use gaze::tune::{Choice, OpCase, TuneCache, TuneMode};
    let options = |cache: String| GpuOptions {
        precision: Precision::F16,
        tune: TuneMode::Cache,
        tune_cache: Some(cache),
        ..Default::default()
    };
    let probe = Gpu::new_blocking(&options(r#"{"format": 1, "adapters": []}"#.into())).unwrap();
    GpuGraph::new(&probe, graph)
        .unwrap()
        .run_blocking(&probe, xs)
        .unwrap();
    let mut cache = TuneCache::in_memory();
    for case in probe.tuning().planned() {
        if let OpCase::Layout { .. } = case {
            let choice = Choice {
                variant: gaze::kernels::Layout::PerOutput.to_string(),
                ms: Default::default(),
            };
            cache.put(
                probe.tuning().key(),
                &case.signature(Precision::F16),
                choice,
            );
        }
    }
    Gpu::new_blocking(&options(cache.to_json().unwrap())).unwrap()
}

/// The attention modules' gates and products with an output per invocation (the GPU layout)
/// round at f16 as the reference does, like the tiled kernels above.
#[test]
fn per_output_layouts_at_f16_round_as_the_reference_does() {
    for (arch, shape) in [
        ("triplet_attention", [2, 32, 14, 10]),
        ("coord_attention", [2, 64, 12, 12]),
    ] {
        let graph = models::build_synthetic(arch, 3, &[shape.to_vec()], &options(&[])).unwrap();
        let xs = [Rng::new(5).tensor(&shape)];
        let g = per_output_at_f16(&graph, &xs);
        let model = GpuGraph::new(&g, &graph).unwrap();
        let got = model.run_blocking(&g, &xs).unwrap();
        let mut rec = Recorder::new(&g);
        model.record(&g, &mut rec, &xs).unwrap();
        let flat = rec
            .dispatch_variants()
            .iter()
            .filter(|d| d.1.ends_with("_flat"))
            .count();
        assert_eq!(flat, 2, "{arch}: the gates and the product per output");
        let rounded = cpu::run_at(&graph, &xs, Precision::F16).unwrap();
        let what = format!("{arch} per output at f16");
        assert_close(&got, &rounded, F16_SAME_ROUNDING_REL_L2, &what);
    }
}

/// Every convolution route (1×1 GEMM, general, depthwise, strided, with subgroups where the
/// device has them), the pools and the classifier, through three networks.
#[test]
fn networks_at_f16_stay_near_float32() {
    let cases: &[(&str, [usize; 4], &[&str])] = &[
        ("resnet18_ta", [1, 3, 224, 224], &[]),
        ("mobilenet_v2_ca", [2, 3, 64, 64], &[]),
        ("aff_resnet18", [2, 3, 32, 32], &["small_input=true"]),
    ];
    for (arch, shape, opts) in cases {
        let (graph, xs, got) = run_f16(arch, &[shape.to_vec()], opts);
        let exact = cpu::run(&graph, &xs).unwrap();
        assert_close(
            &got,
            &exact,
            F16_REL_L2,
            &format!("{arch} at f16 against f32"),
        );
    }
}

/// Tensors are stored as f16 (half the bytes) and read back exactly as rounded, an odd
/// number of values included (buffers hold whole 4-byte words).
#[test]
fn f16_tensors_take_half_the_bytes_and_round_trip() {
    let g = gpu_f16();
    assert_eq!(g.precision(), Precision::F16);
    let x = Rng::new(3).tensor_in(&[3, 5, 7], -70000.0, 70000.0);
    let on_gpu = g.upload(&x).unwrap();
    assert_eq!(on_gpu.bytes(), 2 * 105);
    let back = g.read_blocking(&on_gpu).unwrap();
    for (got, v) in back.data().iter().zip(x.data()) {
        // Past 65504 f16 holds only infinity: the overflow is visible, not clamped.
        assert_eq!(*got, half::f16::from_f32(*v).to_f32());
    }
    let y = Rng::new(4).tensor(&[3, 5, 7]);
    g.write(&on_gpu, &y).unwrap();
    let back = g.read_blocking(&on_gpu).unwrap();
    assert_close(&back, &y, 2.0f64.powi(-11), "write then read at f16");
}

const MUL_RELU: Binary = Binary {
    op: BinaryOp::Mul,
    act: Activation::Relu,
};

fn stored(t: &Tensor) -> Tensor {
    Tensor::from_fn(t.shape(), |i| Precision::F16.round(t.data()[i]))
}

fn reference(a: &Tensor, b: &Tensor) -> Tensor {
    gaze::reference::elementwise::binary(a, b, &MUL_RELU).unwrap()
}

fn binary_mul(g: &Gpu, a: &Tensor, b: &Tensor) -> gaze::Result<Tensor> {
    let spec = MUL_RELU;
    let (ga, gb) = (g.upload(a)?, g.upload(b)?);
    let out = g.empty(a.shape())?;
    let mut rec = Recorder::new(g);
    gpu_ops::binary(&mut rec, &ga, &gb, &out, &spec)?;
    rec.submit()?;
    g.read_blocking(&out)
}

/// Splitting a batch larger than a binding works at f16 whether chunks are bound in place or
/// copied; a chunk that would start inside a 4-byte word (an odd number of f16 values per
/// image) is refused with an error naming the shape, not copied wrongly.
#[test]
fn f16_batches_split_or_are_refused_clearly() {
    let g = gpu_with_binding_limit(1 << 18, Precision::F16);
    let mut rng = Rng::new(9);
    // 118,300 bytes an image: chunks start off the 256-byte alignment and are copied;
    // 131,072 bytes an image: bound in place.
    for shape in [[6, 7, 65, 130], [6, 8, 64, 128]] {
        let (a, b) = (rng.tensor(&shape), rng.tensor(&shape));
        assert!(2 * a.numel() as u64 > g.max_binding_bytes());
        let got = binary_mul(&g, &a, &b).unwrap();
        let want = stored(&reference(&stored(&a), &stored(&b)));
        assert_close(
            &got,
            &want,
            F16_SAME_ROUNDING_REL_L2,
            &format!("{shape:?} split"),
        );
    }
    // 10,201 values (20,402 bytes) an image, 3 images a 64 KiB binding: the second chunk
    // would start mid-word.
    let g = gpu_with_binding_limit(1 << 16, Precision::F16);
    let shape = [8, 1, 101, 101];
    let (a, b) = (rng.tensor(&shape), rng.tensor(&shape));
    match binary_mul(&g, &a, &b) {
        Ok(_) => panic!("an odd number of f16 values an image was split"),
        Err(e) => {
            let msg = e.to_string();
            assert!(
                msg.contains("[8, 1, 101, 101]") && msg.contains("f16"),
                "{msg}"
            );
        }
    }
}
