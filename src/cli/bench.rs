//! `gaze bench`: cold start, warm latency, per-op GPU time, achieved against measured peak.

use std::collections::BTreeMap;
use std::time::Instant;

use clap::Args;
use serde::Serialize;

use crate::error::{Context, Error};
use crate::gpu::{Gpu, GpuOptions};
use crate::graph::gpu::{GpuGraph, HostCost};
use crate::graph::Graph;
use crate::kernels::peak;
use crate::models;
use crate::tensor::Tensor;
use crate::tune::TuneMode;
use crate::Result;

#[derive(Args)]
pub struct BenchArgs {
    #[arg(long)]
    arch: String,
    /// Checkpoint; without one, deterministic weights of the official configuration.
    #[arg(long)]
    weights: Option<String>,
    #[command(flatten)]
    key: super::EntryKey,
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
    /// Also time this architecture (deterministic weights, same batch and size), run for run
    /// alternately with --arch, and report the median of the paired latency ratios: a
    /// machine's drift then moves both sides of each ratio alike.
    #[arg(long, value_name = "ARCH")]
    against: Option<String>,
    /// Time the baseline (--against, or --arch itself) on a second device whose plans choose
    /// kernels with this tuning mode (off: the heuristic): the paired ratio is then what the
    /// tuner's choices gain.
    #[arg(long, value_name = "MODE")]
    against_tune: Option<TuneMode>,
    /// Ops listed by GPU time.
    #[arg(long, default_value_t = 10)]
    top: usize,
}

/// A model on the device with its inputs.
struct Loaded {
    graph: Graph<Tensor>,
    model: GpuGraph,
    shapes: Vec<Vec<usize>>,
    inputs: Vec<Tensor>,
}

/// The model's graph on the host, with its input shapes.
fn host_graph(
    arch: &str,
    weights: Option<&str>,
    args: &BenchArgs,
) -> Result<(Graph<Tensor>, Vec<Vec<usize>>)> {
    let opts = models::parse_options(&args.opts)?;
    let shapes = input_shapes(arch, args.batch, args.size[0], args.size[1]);
    let graph = match weights {
        Some(path) => models::build(arch, &args.key.load(path)?, &shapes, &opts)?,
        None => models::build_synthetic(arch, 0, &shapes, &opts)?,
    };
    Ok((graph, shapes))
}

impl Loaded {
    /// Puts a host graph on the device and runs it once: the time this takes is the cold
    /// start it returns. With tuning on, what the plan has not cached is measured first.
    fn new(gpu: &Gpu, (graph, shapes): (Graph<Tensor>, Vec<Vec<usize>>)) -> Result<(Self, Cold)> {
        let inputs = super::synthetic_inputs(gpu, &shapes)?;
        let start = Instant::now();
        let model = GpuGraph::new(gpu, &graph)?;
        let tuning_ms = if gpu.tuning().mode() == TuneMode::On {
            let tuned = Instant::now();
            pollster::block_on(model.tune(gpu, &inputs))?;
            Some(tuned.elapsed().as_secs_f64() * 1e3)
        } else {
            None
        };
        model.run_blocking(gpu, &inputs)?;
        let cold_ms = start.elapsed().as_secs_f64() * 1e3 - tuning_ms.unwrap_or(0.0);
        let loaded = Self {
            graph,
            model,
            shapes,
            inputs,
        };
        Ok((loaded, Cold { cold_ms, tuning_ms }))
    }

    /// Wall-clock milliseconds of one run, output read back, and its host cost.
    fn time(&self, gpu: &Gpu) -> Result<(f64, HostCost)> {
        let t = Instant::now();
        let (_, cost) = self.model.run_measured(gpu, &self.inputs)?;
        Ok((t.elapsed().as_secs_f64() * 1e3, cost))
    }
}

/// What the first run cost: the cold start, and the tuning before it (tuning on).
struct Cold {
    cold_ms: f64,
    tuning_ms: Option<f64>,
}

/// Paired timing against a baseline model: its median and the median of the per-round ratios.
struct Paired {
    arch: String,
    tune: String,
    median_ms: f64,
    ratio: f64,
}

/// How many command buffers `encode_warm_ms` is the median of.
const ENCODE_REPS: usize = 50;

/// The warm runs of `main`: wall-clock latencies and host costs.
#[derive(Default)]
struct Runs {
    times: Vec<f64>,
    costs: Vec<HostCost>,
}

impl Runs {
    fn push(&mut self, (ms, cost): (f64, HostCost)) -> f64 {
        self.times.push(ms);
        self.costs.push(cost);
        ms
    }

    /// The median time to write the inputs, encode and submit one run.
    fn host_ms(&self) -> f64 {
        median(&mut self.costs.iter().map(|c| c.host_ms).collect::<Vec<_>>())
    }

    /// Device objects created per run, on average.
    fn objects_per_run(&self) -> f64 {
        let total: u64 = self.costs.iter().map(|c| c.objects).sum();
        total as f64 / self.costs.len().max(1) as f64
    }
}

/// `iters` warm latencies of `main` and, given a baseline, the two timed alternately, each
/// round's pair in either order, neither always running on a warmer machine.
fn time_runs(
    gpu: &Gpu,
    main: &Loaded,
    baseline: Option<(&str, &Gpu, &Loaded)>,
    iters: usize,
) -> Result<(Runs, Option<Paired>)> {
    let mut runs = Runs::default();
    let Some((arch, base_gpu, base)) = baseline else {
        for _ in 0..iters {
            runs.push(main.time(gpu)?);
        }
        return Ok((runs, None));
    };
    let (mut base_times, mut ratios) = (Vec::new(), Vec::new());
    for round in 0..iters {
        let (t, tb) = if round % 2 == 0 {
            let t = runs.push(main.time(gpu)?);
            (t, base.time(base_gpu)?.0)
        } else {
            let tb = base.time(base_gpu)?.0;
            (runs.push(main.time(gpu)?), tb)
        };
        base_times.push(tb);
        ratios.push(t / tb);
    }
    let base_ms = median(&mut base_times);
    let paired = Paired {
        tune: base_gpu.tuning().mode().to_string(),
        arch: arch.to_string(),
        median_ms: base_ms,
        ratio: median(&mut ratios),
    };
    Ok((runs, Some(paired)))
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

/// Sorts `v` and returns its median.
fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    percentile(v, 0.5)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i]
}

/// What `gaze bench` measured: its JSON, field for field (`--json`), and what the report shows.
#[derive(Serialize)]
struct Report {
    arch: String,
    adapter: String,
    backend: String,
    precision: &'static str,
    batch: usize,
    size: [usize; 2],
    iters: usize,
    /// The tuning mode plans chose kernels with (GAZE_TUNE, --tune).
    tune: String,
    /// Whether plans fuse ops into their neighbours' kernels (GAZE_FUSION: on or off).
    fusion: &'static str,
    cold_ms: f64,
    /// Measuring the kernels the tuning cache lacked, before the cold start (tuning on).
    #[serde(skip_serializing_if = "Option::is_none")]
    tuning_ms: Option<f64>,
    median_ms: f64,
    p90_ms: f64,
    host_ms: f64,
    /// Encoding and finishing one run's command buffer, back to back with the CPU's caches
    /// warm (`GpuGraph::encode_warm_times`).
    encode_warm_ms: f64,
    objects_per_run: f64,
    throughput_ips: f64,
    gmacs: f64,
    gflops: f64,
    peak_gflops: f64,
    peak_buffer_bytes: u64,
    unplanned_buffer_bytes: u64,
    weight_bytes: u64,
    gpu_ms: f64,
    peak_gbs: f64,
    copy_gbs: Vec<CopyRate>,
    ops: Vec<UsageRow>,
    kernels: Vec<UsageRow>,
    /// Every dispatch of one inference in order: the op, its kernel variant and its GPU time.
    variants: Vec<VariantRow>,
    /// What the attention modules' own dispatches take (none: the model has no modules).
    #[serde(skip_serializing_if = "Option::is_none")]
    attention: Option<AttentionCost>,
    against: Option<Against>,
    /// Why per-op GPU times are missing (no timestamp queries); None when they were measured.
    #[serde(skip_serializing_if = "Option::is_none")]
    profile_error: Option<String>,
}

/// The copy microbenchmark at one tensor size.
#[derive(Serialize)]
struct CopyRate {
    bytes: u64,
    gbs: f64,
}

/// GPU time of an op or a kernel, and the bandwidth its bound tensors need.
#[derive(Serialize)]
struct UsageRow {
    name: String,
    ms: f64,
    pct: f64,
    bytes: u64,
    gbs: f64,
}

/// One dispatch: the op that issued it (`<model part> <kernel>`), the kernel variant it ran
/// and its GPU time where timestamps were measured.
#[derive(Serialize)]
struct VariantRow {
    op: String,
    variant: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    ms: Option<f64>,
}

/// The dispatches of the attention modules (the model parts under a tap's block: pools,
/// gates, their small convs, the apply or combine): how many, the bytes of the tensors they
/// bind, read or written once each, and their GPU time where timestamps were measured.
#[derive(Serialize)]
struct AttentionCost {
    dispatches: usize,
    bytes: u64,
    /// What the convs that do part of the modules' work (fusion) bind beyond plain convs.
    fused_conv_bytes: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    ms: Option<f64>,
}

/// The paired timing against `--against`.
#[derive(Serialize)]
struct Against {
    arch: String,
    /// The baseline device's tuning mode.
    tune: String,
    median_ms: f64,
    ratio: f64,
    ratio_of_medians: f64,
}

pub fn run(args: &BenchArgs, gpu_options: &GpuOptions) -> Result<()> {
    let report = measure(args, gpu_options)?;
    if args.json {
        let json = serde_json::to_string(&report).context("bench report")?;
        return super::say(json);
    }
    render(&report)
}

/// Times the model and measures the device: everything the report shows.
fn measure(args: &BenchArgs, gpu_options: &GpuOptions) -> Result<Report> {
    let (h, w) = (args.size[0], args.size[1]);
    if args.batch == 0 || args.iters == 0 || h == 0 || w == 0 {
        return Err(Error::Invalid(
            "--batch, --iters and --size must be at least 1".into(),
        ));
    }
    // Both graphs first, so that a bad --against fails before any upload.
    let main = host_graph(&args.arch, args.weights.as_deref(), args)?;
    let against = match (&args.against, args.against_tune) {
        (Some(arch), _) => Some(arch.as_str()),
        (None, Some(_)) => Some(args.arch.as_str()),
        (None, None) => None,
    };
    let baseline = match against {
        Some(arch) => Some((arch, host_graph(arch, None, args)?)),
        None => None,
    };
    let gpu = Gpu::new_blocking(gpu_options)?;
    // A baseline with its own tuning mode needs its own device (its own choices).
    let base_gpu = match args.against_tune {
        Some(tune) => Some(Gpu::new_blocking(&GpuOptions {
            tune,
            ..gpu_options.clone()
        })?),
        None => None,
    };
    let base_device = base_gpu.as_ref().unwrap_or(&gpu);
    // The baseline goes up second: it would otherwise warm the pipeline cache for --arch.
    let (main, cold) = Loaded::new(&gpu, main)?;
    let baseline = match baseline {
        Some((arch, host)) => Some((arch, Loaded::new(base_device, host)?.0)),
        None => None,
    };
    let baseline = baseline.as_ref().map(|(arch, b)| (*arch, base_device, b));
    let (runs, paired) = time_runs(&gpu, &main, baseline, args.iters)?;
    let (host_ms, objects_per_run) = (runs.host_ms(), runs.objects_per_run());
    let encode_warm_ms = median(&mut main.model.encode_warm_times(
        &gpu,
        &main.inputs,
        ENCODE_REPS,
    )?);
    let mut times = runs.times;
    let median_ms = median(&mut times);
    let p90_ms = percentile(&times, 0.9);
    let Loaded {
        graph,
        model,
        shapes,
        inputs,
    } = main;

    let refs: Vec<&[usize]> = shapes.iter().map(Vec::as_slice).collect();
    let value_shapes = graph.shapes(&refs)?;
    let macs = graph.macs(&value_shapes);
    let gflops = 2.0 * macs as f64 / (median_ms / 1e3) / 1e9;
    let peak_gflops = peak::measure_gflops(&gpu)?;
    let plan = model.memory_plan(&gpu, &shapes)?;
    let weight_bytes: u64 = graph
        .constants()
        .iter()
        .map(|t| t.numel() as u64 * gpu.precision().bytes())
        .sum();
    let copies = peak::measure_copy_gbs(&gpu)?;
    let peak_gbs = copies.iter().map(|c| c.1).fold(0.0, f64::max);

    // Per-op GPU time: dispatches grouped by the model part that issued them.
    let mut by_part: BTreeMap<String, Usage> = BTreeMap::new();
    let profile = model.run_profiled(&gpu, &inputs);
    if let Ok(profile) = &profile {
        for d in profile {
            let u = by_part.entry(d.label.clone()).or_default();
            u.ms += d.ms;
            u.bytes += d.bytes;
        }
    }
    let gpu_ms: f64 = by_part.values().map(|u| u.ms).sum();
    let mut rec = crate::gpu::Recorder::new(&gpu);
    model.record(&gpu, &mut rec, &inputs)?;
    let variants = variant_rows(&rec, profile.as_deref().ok());
    let fused_conv_bytes = model.fused_conv_bytes(&gpu, &inputs)?;
    let attention = attention_cost(&graph, &rec, profile.as_deref().ok()).map(|a| AttentionCost {
        fused_conv_bytes,
        ..a
    });
    let rows = |usage: Vec<(String, Usage)>| -> Vec<UsageRow> {
        usage
            .into_iter()
            .map(|(name, u)| UsageRow {
                name,
                ms: u.ms,
                pct: if gpu_ms > 0.0 {
                    100.0 * u.ms / gpu_ms
                } else {
                    0.0
                },
                bytes: u.bytes,
                gbs: u.gbs(),
            })
            .collect()
    };
    Ok(Report {
        arch: args.arch.clone(),
        adapter: gpu.adapter_name().to_string(),
        backend: gpu.backend(),
        precision: gpu.precision().name(),
        batch: args.batch,
        size: [h, w],
        iters: args.iters,
        tune: gpu.tuning().mode().to_string(),
        fusion: model.fusion().name(),
        cold_ms: cold.cold_ms,
        tuning_ms: cold.tuning_ms,
        median_ms,
        p90_ms,
        host_ms,
        encode_warm_ms,
        objects_per_run,
        throughput_ips: args.batch as f64 / (median_ms / 1e3),
        gmacs: macs as f64 / 1e9,
        gflops,
        peak_gflops,
        peak_buffer_bytes: plan.peak_bytes(),
        unplanned_buffer_bytes: plan.unplanned_bytes,
        weight_bytes,
        gpu_ms,
        peak_gbs,
        copy_gbs: copies
            .iter()
            .map(|&(bytes, gbs)| CopyRate { bytes, gbs })
            .collect(),
        kernels: rows(largest(by_kernel(&by_part), usize::MAX)),
        ops: rows(largest(by_part, args.top)),
        variants,
        attention,
        against: paired.map(|p| Against {
            tune: p.tune,
            ratio_of_medians: median_ms / p.median_ms,
            arch: p.arch,
            median_ms: p.median_ms,
            ratio: p.ratio,
        }),
        profile_error: profile.err().map(|e| e.to_string()),
    })
}

/// Every dispatch of one inference with its kernel variant, and its time from `profile` (the
/// same dispatches, in order) where there is one.
fn variant_rows(
    rec: &crate::gpu::Recorder,
    profile: Option<&[crate::gpu::DispatchTime]>,
) -> Vec<VariantRow> {
    rec.dispatch_variants()
        .into_iter()
        .enumerate()
        .map(|(i, (op, variant))| VariantRow {
            ms: profile.and_then(|p| p.get(i)).map(|d| d.ms),
            op,
            variant,
        })
        .collect()
}

/// The attention modules' share of the recorded dispatches (`profile`: the same dispatches,
/// in order, timed); None for a model without modules.
fn attention_cost(
    graph: &Graph<Tensor>,
    rec: &crate::gpu::Recorder,
    profile: Option<&[crate::gpu::DispatchTime]>,
) -> Option<AttentionCost> {
    let blocks: Vec<&str> = graph.taps().iter().map(|t| t.block.as_str()).collect();
    if blocks.is_empty() {
        return None;
    }
    // A module built alone has the empty prefix: all of it is the module.
    let inside = |part: &str| {
        blocks.iter().any(|b| {
            part.strip_prefix(b)
                .is_some_and(|rest| b.is_empty() || rest.is_empty() || rest.starts_with('.'))
        })
    };
    let mut cost = AttentionCost {
        dispatches: 0,
        bytes: 0,
        fused_conv_bytes: 0,
        ms: profile.map(|_| 0.0),
    };
    for (i, (part, bytes)) in rec.dispatch_bytes().into_iter().enumerate() {
        if inside(&part) {
            cost.dispatches += 1;
            cost.bytes += bytes;
            if let (Some(ms), Some(d)) = (cost.ms.as_mut(), profile.and_then(|p| p.get(i))) {
                *ms += d.ms;
            }
        }
    }
    Some(cost)
}

/// The text report of `gaze bench`.
fn render(r: &Report) -> Result<()> {
    let say = super::say;
    say(format!(
        "{} on {} ({}), batch {}, {}×{}, tensors stored as {}",
        r.arch, r.adapter, r.backend, r.batch, r.size[0], r.size[1], r.precision
    ))?;
    let tuned = r
        .tuning_ms
        .map(|ms| format!("; measuring the uncached kernels took {ms:.0} ms first"))
        .unwrap_or_default();
    say(format!(
        "  kernels chosen with tuning {} (GAZE_TUNE: off = heuristic, cache, on){tuned}",
        r.tune
    ))?;
    say(format!(
        "  cold start (upload, pipelines, first run): {:.1} ms",
        r.cold_ms
    ))?;
    say(format!(
        "  warm latency over {} runs: median {:.2} ms, p90 {:.2} ms",
        r.iters, r.median_ms, r.p90_ms
    ))?;
    say(format!(
        "  host, per warm run: {:.3} ms to write the input, encode and submit (median); \
         {:.1} device objects created",
        r.host_ms, r.objects_per_run
    ))?;
    say(format!(
        "  host, back to back: {:.3} ms to encode and finish a run's command buffer (median; \
         caches warm, no GPU work in between)",
        r.encode_warm_ms
    ))?;
    if let Some(p) = &r.against {
        say(format!(
            "  against {} with tuning {} (runs alternated): median {:.2} ms; ratio {:.3} (median of {} paired ratios; ratio of medians {:.3})",
            p.arch, p.tune, p.median_ms, p.ratio, r.iters, p.ratio_of_medians
        ))?;
    }
    say(format!("  throughput: {:.1} images/s", r.throughput_ips))?;
    if let Some(a) = &r.attention {
        let ms =
            a.ms.map(|ms| format!(", {ms:.2} ms of GPU time"))
                .unwrap_or_default();
        say(format!(
            "  attention modules (fusion {}): {} dispatches binding {:.2} MiB{ms}, and {:.2} MiB \
             more bound by the convs they are fused into",
            r.fusion,
            a.dispatches,
            a.bytes as f64 / 1048576.0,
            a.fused_conv_bytes as f64 / 1048576.0
        ))?;
    }
    say(format!(
        "  compute: {:.3} GMAC, {:.2} GFLOP/s achieved, device peak {:.2} GFLOP/s (FMA microbenchmark) = {:.1}%",
        r.gmacs,
        r.gflops,
        r.peak_gflops,
        100.0 * r.gflops / r.peak_gflops
    ))?;
    let mib = |b: u64| b as f64 / 1048576.0;
    say(format!(
        "  buffers: {:.1} MiB planned (one buffer per tensor: {:.1} MiB), weights {:.1} MiB",
        mib(r.peak_buffer_bytes),
        mib(r.unplanned_buffer_bytes),
        mib(r.weight_bytes)
    ))?;
    let copies: Vec<String> = r
        .copy_gbs
        .iter()
        .map(|c| format!("{:.2} GB/s copying {} MiB", c.gbs, c.bytes >> 20))
        .collect();
    say(format!(
        "  memory: device bandwidth {:.2} GB/s ({}); below, each op's GB/s counts the \
         tensors it binds, read or written once, and its % is of that peak",
        r.peak_gbs,
        copies.join(", ")
    ))?;
    match &r.profile_error {
        Some(e) => say(format!("  GPU time per op: not available ({e})"))?,
        None => render_profile(r)?,
    }
    say("  kernel variant of every dispatch:".to_string())?;
    for v in &r.variants {
        let ms = v.ms.map(|ms| format!("{ms:9.3} ms")).unwrap_or_default();
        say(format!("    {ms:>12}  {:<28} {}", v.variant, v.op))?;
    }
    Ok(())
}

/// The per-op and per-kernel GPU times of the report.
fn render_profile(r: &Report) -> Result<()> {
    let say = super::say;
    say(format!(
        "  GPU time per op (timestamp queries, {:.2} ms in all), top {}:",
        r.gpu_ms,
        r.ops.len()
    ))?;
    let line = |u: &UsageRow| {
        format!(
            "    {:9.3} ms {:5.1}% {:8.2} GB/s {:5.1}%  {}",
            u.ms,
            u.pct,
            u.gbs,
            100.0 * u.gbs / r.peak_gbs,
            u.name
        )
    };
    for u in &r.ops {
        say(line(u))?;
    }
    say("  GPU time per kernel:".to_string())?;
    for u in &r.kernels {
        say(line(u))?;
    }
    Ok(())
}

/// GPU time and bound tensor bytes of a group of dispatches.
#[derive(Clone, Copy, Default)]
struct Usage {
    ms: f64,
    bytes: u64,
}

impl Usage {
    /// The bound bytes moved per second: the bandwidth the dispatches would need if their
    /// time were all memory traffic, each tensor read or written once.
    fn gbs(&self) -> f64 {
        if self.ms > 0.0 {
            self.bytes as f64 / (self.ms / 1e3) / 1e9
        } else {
            0.0
        }
    }
}

/// Per-op usage summed by kernel: a label is `"<model part> <kernel>"`.
fn by_kernel(by_part: &BTreeMap<String, Usage>) -> BTreeMap<String, Usage> {
    let mut totals: BTreeMap<String, Usage> = BTreeMap::new();
    for (label, u) in by_part {
        let kernel = label.rsplit(' ').next().unwrap_or(label);
        let total = totals.entry(kernel.to_string()).or_default();
        total.ms += u.ms;
        total.bytes += u.bytes;
    }
    totals
}

/// The `n` largest by time, largest first.
fn largest(usage: BTreeMap<String, Usage>, n: usize) -> Vec<(String, Usage)> {
    let mut sorted: Vec<(String, Usage)> = usage.into_iter().collect();
    sorted.sort_by(|a, b| b.1.ms.total_cmp(&a.1.ms));
    sorted.truncate(n);
    sorted
}
