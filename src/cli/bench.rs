//! `gaze bench`: cold start, warm latency, per-op GPU time, achieved against measured peak.

use std::collections::BTreeMap;
use std::time::Instant;

use clap::Args;

use crate::error::Error;
use crate::gpu::{Gpu, GpuOptions};
use crate::graph::gpu::GpuGraph;
use crate::graph::Graph;
use crate::kernels::peak;
use crate::models;
use crate::tensor::Tensor;
use crate::weights::StateDict;
use crate::Result;

#[derive(Args)]
pub struct BenchArgs {
    #[arg(long)]
    arch: String,
    /// Checkpoint; without one, deterministic weights of the official configuration.
    #[arg(long)]
    weights: Option<String>,
    #[arg(long, default_value_t = 1)]
    batch: usize,
    /// Input height and width.
    #[arg(long, num_args = 2, value_names = ["H", "W"], default_values_t = [224, 224])]
    size: Vec<usize>,
    /// Warm runs timed after the first.
    #[arg(long, default_value_t = 10)]
    iters: usize,
    /// Print one JSON object instead of a report.
    #[arg(long)]
    json: bool,
    #[arg(long = "opt")]
    opts: Vec<String>,
}

/// Input shapes: images for networks, 64-channel maps for standalone modules.
fn input_shapes(arch: &str, batch: usize, h: usize, w: usize) -> Vec<Vec<usize>> {
    let modules = [
        "triplet_attention",
        "coord_attention",
        "ms_cam",
        "aff",
        "iaff",
        "san_sam",
    ];
    let c = if modules.contains(&arch) { 64 } else { 3 };
    vec![vec![batch, c, h, w]; models::input_count(arch)]
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i]
}

pub fn run(args: &BenchArgs, gpu_options: &GpuOptions) -> Result<()> {
    let (h, w) = (args.size[0], args.size[1]);
    if args.batch == 0 || args.iters == 0 || h == 0 || w == 0 {
        return Err(Error::Invalid(
            "--batch, --iters and --size must be at least 1".into(),
        ));
    }
    let opts = models::parse_options(&args.opts)?;
    let shapes = input_shapes(&args.arch, args.batch, h, w);
    let graph: Graph<Tensor> = match &args.weights {
        Some(path) => models::build(&args.arch, &StateDict::load(path)?, &shapes, &opts)?,
        None => models::build_synthetic(&args.arch, 0, &shapes, &opts)?,
    };
    let inputs: Vec<Tensor> = shapes
        .iter()
        .enumerate()
        .map(|(i, s)| crate::weights::synthetic::tensor(&format!("input{i}"), s, 1))
        .collect();
    let gpu = Gpu::new_blocking(gpu_options)?;

    let start = Instant::now();
    let model = GpuGraph::new(&gpu, &graph)?;
    model.run_blocking(&gpu, &inputs)?;
    let cold_ms = start.elapsed().as_secs_f64() * 1e3;
    let mut times: Vec<f64> = (0..args.iters)
        .map(|_| {
            let t = Instant::now();
            model
                .run_blocking(&gpu, &inputs)
                .map(|_| t.elapsed().as_secs_f64() * 1e3)
        })
        .collect::<Result<_>>()?;
    times.sort_by(f64::total_cmp);
    let (median_ms, p90_ms) = (percentile(&times, 0.5), percentile(&times, 0.9));

    let refs: Vec<&[usize]> = shapes.iter().map(Vec::as_slice).collect();
    let value_shapes = graph.shapes(&refs)?;
    let macs: u64 = graph
        .nodes()
        .iter()
        .zip(&value_shapes)
        .map(|(n, out)| n.op.macs(out))
        .sum();
    let gflops = 2.0 * macs as f64 / (median_ms / 1e3) / 1e9;
    let peak_gflops = peak::measure_gflops(&gpu)?;
    let plan = model.memory_plan(&shapes)?;
    let weight_bytes: u64 = graph.weights().map(|t| t.numel() as u64 * 4).sum();

    // Per-op GPU time: dispatches grouped by the model part that issued them.
    let mut by_part: BTreeMap<String, f64> = BTreeMap::new();
    let profile = model.run_profiled(&gpu, &inputs);
    if let Ok(profile) = &profile {
        for d in profile {
            *by_part.entry(d.label.clone()).or_default() += d.ms;
        }
    }
    let gpu_total: f64 = by_part.values().sum();
    let kernels = largest(by_kernel(&by_part), usize::MAX);
    let ops = largest(by_part, 10);
    let pct = |ms: f64| {
        if gpu_total > 0.0 {
            100.0 * ms / gpu_total
        } else {
            0.0
        }
    };

    if args.json {
        let report = serde_json::json!({
            "arch": args.arch,
            "adapter": gpu.adapter_name(),
            "batch": args.batch,
            "size": [h, w],
            "iters": args.iters,
            "cold_ms": cold_ms,
            "median_ms": median_ms,
            "p90_ms": p90_ms,
            "throughput_ips": args.batch as f64 / (median_ms / 1e3),
            "gmacs": macs as f64 / 1e9,
            "gflops": gflops,
            "peak_gflops": peak_gflops,
            "peak_buffer_bytes": plan.peak_bytes(),
            "unplanned_buffer_bytes": plan.unplanned_bytes,
            "weight_bytes": weight_bytes,
            "gpu_ms": gpu_total,
            "ops": ops.iter().map(|(name, ms)| serde_json::json!({"name": name, "ms": ms, "pct": pct(*ms)})).collect::<Vec<_>>(),
            "kernels": kernels.iter().map(|(name, ms)| serde_json::json!({"name": name, "ms": ms, "pct": pct(*ms)})).collect::<Vec<_>>(),
        });
        return super::say(report);
    }
    super::say(format!(
        "{} on {} ({}), batch {}, {h}×{w}",
        args.arch,
        gpu.adapter_name(),
        gpu.backend(),
        args.batch
    ))?;
    super::say(format!(
        "  cold start (upload, pipelines, first run): {cold_ms:.1} ms"
    ))?;
    super::say(format!(
        "  warm latency over {} runs: median {median_ms:.2} ms, p90 {p90_ms:.2} ms",
        args.iters
    ))?;
    super::say(format!(
        "  throughput: {:.1} images/s",
        args.batch as f64 / (median_ms / 1e3)
    ))?;
    super::say(format!(
        "  compute: {:.3} GMAC, {gflops:.2} GFLOP/s achieved, device peak {peak_gflops:.2} GFLOP/s (FMA microbenchmark) = {:.1}%",
        macs as f64 / 1e9,
        100.0 * gflops / peak_gflops
    ))?;
    super::say(format!(
        "  buffers: {:.1} MiB planned (one buffer per tensor: {:.1} MiB), weights {:.1} MiB",
        plan.peak_bytes() as f64 / 1048576.0,
        plan.unplanned_bytes as f64 / 1048576.0,
        weight_bytes as f64 / 1048576.0
    ))?;
    match profile {
        Ok(_) => {
            super::say(format!(
                "  GPU time per op (timestamp queries, {gpu_total:.2} ms in all), top {}:",
                ops.len()
            ))?;
            for (name, ms) in &ops {
                super::say(format!("    {ms:9.3} ms {:5.1}%  {name}", pct(*ms)))?;
            }
            super::say("  GPU time per kernel:".to_string())?;
            for (name, ms) in &kernels {
                super::say(format!("    {ms:9.3} ms {:5.1}%  {name}", pct(*ms)))?;
            }
        }
        Err(e) => super::say(format!("  GPU time per op: not available ({e})"))?,
    }
    Ok(())
}

/// Per-op times summed by kernel: a label is `"<model part> <kernel>"`.
fn by_kernel(by_part: &BTreeMap<String, f64>) -> BTreeMap<String, f64> {
    let mut totals: BTreeMap<String, f64> = BTreeMap::new();
    for (label, ms) in by_part {
        let kernel = label.rsplit(' ').next().unwrap_or(label);
        *totals.entry(kernel.to_string()).or_default() += ms;
    }
    totals
}

/// The `n` largest times, largest first.
fn largest(times: BTreeMap<String, f64>, n: usize) -> Vec<(String, f64)> {
    let mut sorted: Vec<(String, f64)> = times.into_iter().collect();
    sorted.sort_by(|a, b| b.1.total_cmp(&a.1));
    sorted.truncate(n);
    sorted
}
