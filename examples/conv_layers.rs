//! Per-layer convolution throughput against the device's FMA peak.
//!
//! `cargo run --release --example conv_layers [-- --iters N] [--sweep] [--only TEXT]`
//!
//! Times `kernels::conv::conv2d_with` (bias + ReLU epilogue, batch 1) on the ResNet-50 and
//! MobileNetV2 layer shapes that dominate those networks, and prints GFLOP/s (2 FLOP per MAC)
//! and the share of the peak that `gaze bench` also uses, for the kernel `conv2d` picks on
//! this device and, where that is a subgroup kernel, for the kernel it picks without
//! subgroups. The two run alternately, so both see the same machine load; each is timed from
//! submit to completion after a first run that compiles its pipeline, and the best is kept.
//! `--sweep` also times every shared tile of each GEMM-shaped layer (the model's pick marked);
//! `--only TEXT` keeps the layers whose name contains TEXT.

use std::time::Instant;

use gaze::gpu::{Gpu, GpuOptions, GpuTensor, Recorder};
use gaze::kernels::conv::{conv2d_with, kernel_for, subgroup_lanes, ConvKernel, Tile};
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
    layer("resnet50 3×3 128→128 @28²", [128, 128, 3, 1, 1, 28]),
    layer("resnet50 3×3 256→256 @14²", [256, 256, 3, 1, 1, 14]),
    layer("resnet50 1×1 1024→256 @14²", [1024, 256, 1, 1, 1, 14]),
    layer("resnet50 3×3 512→512 @7²", [512, 512, 3, 1, 1, 7]),
    layer("resnet50 1×1 512→2048 @7²", [512, 2048, 1, 1, 1, 7]),
    layer("resnet50 stem 7×7 s2 3→64 @224²", [3, 64, 7, 2, 1, 224]),
    layer("resnet50 1×1 s2 512→1024 @28²", [512, 1024, 1, 2, 1, 28]),
    layer("mbv2 1×1 16→96 @112²", [16, 96, 1, 1, 1, 112]),
    layer("mbv2 1×1 24→144 @56²", [24, 144, 1, 1, 1, 56]),
    layer("mbv2 1×1 144→24 @56²", [144, 24, 1, 1, 1, 56]),
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

/// The kernel and its tile, e.g. `conv2d_gemm_sg 64x8` (ConvKernel's own name).
fn describe(plan: ConvKernel) -> String {
    plan.to_string()
}

fn time_once(gpu: &Gpu, run: &dyn Fn(&mut Recorder) -> Result<()>) -> Result<f64> {
    let mut rec = Recorder::new(gpu);
    run(&mut rec)?;
    let start = Instant::now();
    rec.submit()?;
    gpu.wait()?;
    Ok(start.elapsed().as_secs_f64())
}

/// A layer's operands on the device.
struct Setup {
    spec: Conv2d,
    xs: [usize; 4],
    ws: [usize; 4],
    x: GpuTensor,
    w: GpuTensor,
    b: GpuTensor,
    out: GpuTensor,
    macs: f64,
}

impl Setup {
    fn new(gpu: &Gpu, layer: &Layer) -> Result<Self> {
        let spec = Conv2d::new(layer.stride, layer.k / 2)
            .with_groups(layer.groups)
            .with_act(Activation::Relu);
        let xs = [1, layer.cin, layer.side, layer.side];
        let ws = [layer.cout, layer.cin / layer.groups, layer.k, layer.k];
        let out_shape = spec.output_shape(&xs, &ws)?;
        let macs = (out_shape.iter().product::<usize>() * ws[1] * ws[2] * ws[3]) as f64;
        Ok(Self {
            spec,
            xs,
            ws,
            x: gpu.upload(&tensor(&xs, 1))?,
            w: gpu.upload(&tensor(&ws, 2))?,
            b: gpu.upload(&tensor(&[layer.cout], 3))?,
            out: gpu.empty(&out_shape)?,
            macs,
        })
    }

    fn run(&self, rec: &mut Recorder, plan: ConvKernel) -> Result<()> {
        let ep = Epilogue::with_bias(&self.b);
        conv2d_with(rec, &self.x, &self.w, &ep, &self.out, &self.spec, plan)
    }

    fn gflops(&self, seconds: f64) -> f64 {
        2.0 * self.macs / seconds / 1e9
    }
}

/// Best times of `plans` over `iters` rounds that run each once in turn; the first run of each
/// (which compiles its pipeline) is not counted.
fn race(gpu: &Gpu, setup: &Setup, plans: &[ConvKernel], iters: usize) -> Result<Vec<f64>> {
    for &plan in plans {
        time_once(gpu, &|rec| setup.run(rec, plan))?;
    }
    let mut best = vec![f64::INFINITY; plans.len()];
    for _ in 0..iters {
        for (b, &plan) in best.iter_mut().zip(plans) {
            *b = b.min(time_once(gpu, &|rec| setup.run(rec, plan))?);
        }
    }
    Ok(best)
}

/// Every shared tile the model may pick for a GEMM-shaped layer.
fn candidate_tiles(plan: ConvKernel) -> Vec<ConvKernel> {
    let wrap = |t| match plan {
        ConvKernel::Gemm(_) => ConvKernel::Gemm(t),
        _ => ConvKernel::General(t),
    };
    [4, 8, 12, 16]
        .into_iter()
        .flat_map(|c| [1, 2, 4].map(|p| Tile::shared(c, p)))
        .filter(|t| t.channels * t.pixels <= 64)
        .map(wrap)
        .collect()
}

fn sweep(gpu: &Gpu, setup: &Setup, plan: ConvKernel, iters: usize) -> Result<()> {
    if matches!(plan, ConvKernel::Depthwise { .. }) {
        return Ok(());
    }
    let mut plans = candidate_tiles(plan);
    if !plans.contains(&plan) {
        plans.push(plan);
    }
    let times = race(gpu, setup, &plans, iters)?;
    for (p, t) in plans.iter().zip(times) {
        let mark = if *p == plan { "  ← picked" } else { "" };
        println!("    {:<22} {:>9.2} ms{mark}", describe(*p), t * 1e3);
    }
    Ok(())
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
    let sweeping = args.iter().any(|a| a == "--sweep");
    let only = match args.iter().position(|a| a == "--only") {
        Some(i) => args
            .get(i + 1)
            .cloned()
            .ok_or_else(|| gaze::Error::Invalid("--only needs a text".into()))?,
        None => String::new(),
    };
    let gpu = Gpu::new_blocking(&GpuOptions::default())?;
    let lanes = subgroup_lanes(&gpu);
    let peak = peak::measure_gflops(&gpu)?;
    println!(
        "{} — FMA peak {peak:.2} GFLOP/s, subgroup kernels: {}, best of {iters} runs",
        gpu.adapter_name(),
        lanes.map_or("no".to_string(), |l| format!("{l} lanes")),
    );
    println!(
        "{:<34} {:>7}  {:<18} {:>8} {:>7} {:>6}  {:<18} {:>8} {:>7} {:>6} {:>6}",
        "layer",
        "MMAC",
        "kernel",
        "ms",
        "GFLOP/s",
        "%peak",
        "without subgroups",
        "ms",
        "GFLOP/s",
        "%peak",
        "gain"
    );
    for layer in LAYERS.iter().filter(|l| l.name.contains(&only)) {
        let setup = Setup::new(&gpu, layer)?;
        let plan = kernel_for(&setup.xs, &setup.ws, &setup.spec, lanes)?;
        let plain = kernel_for(&setup.xs, &setup.ws, &setup.spec, None)?;
        let plans: Vec<ConvKernel> = if plan == plain {
            vec![plan]
        } else {
            vec![plan, plain]
        };
        let best = race(&gpu, &setup, &plans, iters)?;
        let column = |t: f64| {
            let g = setup.gflops(t);
            format!("{:>8.2} {g:>7.2} {:>5.1}%", t * 1e3, 100.0 * g / peak)
        };
        let (plain_text, gain) = match best.get(1) {
            Some(&t) => (column(t), format!("{:>5.2}×", t / best[0])),
            None => ("(same kernel)".to_string(), String::new()),
        };
        println!(
            "{:<34} {:>7.1}  {:<18} {}  {:<18} {plain_text} {gain}",
            layer.name,
            setup.macs / 1e6,
            describe(plan),
            column(best[0]),
            describe(plain),
        );
        if sweeping && lanes.is_some() {
            sweep(&gpu, &setup, plan, iters)?;
        }
    }
    Ok(())
}
