//! Per-layer convolution throughput against the device's FMA peak.
//!
//! `cargo run --release --example conv_layers [-- --iters N]`
//!
//! Times `kernels::conv::conv2d` (bias + ReLU epilogue, batch 1) on the ResNet-50 and
//! MobileNetV2 layer shapes that dominate those networks, and prints GFLOP/s (2 FLOP per MAC)
//! next to the peak that `gaze bench` also uses. The first run of each layer compiles its
//! pipeline and is reported separately; the rest are timed from submit to completion and the
//! best is kept.

use std::time::Instant;

use gaze::gpu::{Gpu, GpuOptions, GpuTensor, Recorder};
use gaze::kernels::conv::{conv2d, kernel_for, ConvKernel};
use gaze::kernels::peak;
use gaze::ops::conv::{Conv2d, Epilogue};
use gaze::ops::Activation;
use gaze::{Result, Tensor};

/// One layer: name, Cin, Cout, kernel, stride, groups, input side (padding k/2).
struct Layer {
    name: &'static str,
    cin: usize,
    cout: usize,
    k: usize,
    stride: usize,
    groups: usize,
    side: usize,
}

const fn layer(name: &'static str, [cin, cout, k, stride, groups, side]: [usize; 6]) -> Layer {
    Layer {
        name,
        cin,
        cout,
        k,
        stride,
        groups,
        side,
    }
}

/// [Cin, Cout, k, stride, groups, side] of each layer.
const LAYERS: &[Layer] = &[
    layer("resnet50 1×1 256→64 @56²", [256, 64, 1, 1, 1, 56]),
    layer("resnet50 3×3 64→64 @56²", [64, 64, 3, 1, 1, 56]),
    layer("resnet50 1×1 64→256 @56²", [64, 256, 1, 1, 1, 56]),
    layer("resnet50 3×3 512→512 @7²", [512, 512, 3, 1, 1, 7]),
    layer("resnet50 stem 7×7 s2 3→64 @224²", [3, 64, 7, 2, 1, 224]),
    layer("resnet50 1×1 s2 512→1024 @28²", [512, 1024, 1, 2, 1, 28]),
    layer("mbv2 1×1 24→144 @56²", [24, 144, 1, 1, 1, 56]),
    layer("mbv2 1×1 960→160 @7²", [960, 160, 1, 1, 1, 7]),
    layer("mbv2 dw 3×3 s1 144 @56²", [144, 144, 3, 1, 144, 56]),
    layer("mbv2 dw 3×3 s2 96 @112²", [96, 96, 3, 2, 96, 112]),
];

/// Deterministic values in [-1, 1).
fn tensor(shape: &[usize], seed: u64) -> Tensor {
    let mut s = seed;
    Tensor::from_fn(shape, |_| {
        s = s
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((s >> 40) as f32 / (1u64 << 23) as f32) - 1.0
    })
}

/// The kernel and its tile, e.g. `gemm 32×16`.
fn describe(plan: ConvKernel) -> String {
    match plan {
        ConvKernel::Gemm(t) => format!("gemm {}×{}", 4 * t.channels, 4 * t.pixels),
        ConvKernel::General(t) => format!("general {}×{}", 4 * t.channels, 4 * t.pixels),
        ConvKernel::Depthwise { stride } => format!("depthwise s{stride}"),
    }
}

fn time_once(gpu: &Gpu, run: &dyn Fn(&mut Recorder) -> Result<()>) -> Result<f64> {
    let mut rec = Recorder::new(gpu);
    run(&mut rec)?;
    let start = Instant::now();
    rec.submit()?;
    gpu.wait()?;
    Ok(start.elapsed().as_secs_f64())
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let iters = match args.iter().position(|a| a == "--iters") {
        Some(i) => args
            .get(i + 1)
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| gaze::Error::Invalid("--iters needs a count".into()))?,
        None => 5,
    };
    let gpu = Gpu::new_blocking(&GpuOptions::default())?;
    let peak = peak::measure_gflops(&gpu)?;
    println!(
        "{} — FMA peak {peak:.2} GFLOP/s, best of {iters} runs",
        gpu.adapter_name()
    );
    println!(
        "{:<34} {:>10} {:>10} {:>9} {:>8} {:>7}  kernel (channels × pixels per invocation)",
        "layer", "MMAC", "first ms", "best ms", "GFLOP/s", "% peak"
    );
    for layer in LAYERS {
        let pad = layer.k / 2;
        let spec = Conv2d::new(layer.stride, pad)
            .with_groups(layer.groups)
            .with_act(Activation::Relu);
        let xs = [1, layer.cin, layer.side, layer.side];
        let ws = [layer.cout, layer.cin / layer.groups, layer.k, layer.k];
        let out_shape = spec.output_shape(&xs, &ws)?;
        let x = gpu.upload(&tensor(&xs, 1))?;
        let w = gpu.upload(&tensor(&ws, 2))?;
        let b = gpu.upload(&tensor(&[layer.cout], 3))?;
        let out: GpuTensor = gpu.empty(&out_shape)?;
        let ep = Epilogue::with_bias(&b);
        let run = |rec: &mut Recorder| conv2d(rec, &x, &w, &ep, &out, &spec);
        let first = time_once(&gpu, &run)?;
        let best = (0..iters)
            .map(|_| time_once(&gpu, &run))
            .collect::<Result<Vec<f64>>>()?
            .into_iter()
            .fold(f64::INFINITY, f64::min);
        let macs = (out_shape.iter().product::<usize>() * ws[1] * ws[2] * ws[3]) as f64;
        let gflops = 2.0 * macs / best / 1e9;
        println!(
            "{:<34} {:>10.1} {:>10.1} {:>9.2} {:>8.2} {:>6.1}%  {}",
            layer.name,
            macs / 1e6,
            first * 1e3,
            best * 1e3,
            gflops,
            100.0 * gflops / peak,
            describe(kernel_for(&xs, &ws, &spec)?)
        );
    }
    Ok(())
}
