//! `gaze tune`: measures the kernel variants of a model's convs on this device and caches the
//! fastest, so that plans on this adapter use them (`GAZE_TUNE=cache`, the default).

use std::time::Instant;

use clap::Args;
use serde::Serialize;

use crate::error::{Context, Error};
use crate::gpu::{Gpu, GpuOptions};
use crate::graph::gpu::GpuGraph;
use crate::models;
use crate::tune::{Choice, TuneMode};
use crate::Result;

#[derive(Args)]
pub struct TuneArgs {
    #[arg(long)]
    arch: String,
    #[arg(long, default_value_t = 1)]
    batch: usize,
    /// Input height and width.
    #[arg(long, num_args = 2, value_names = ["H", "W"], default_values_t = [224, 224])]
    size: Vec<usize>,
    #[arg(long = "opt")]
    opts: Vec<String>,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    json: bool,
}

/// What `gaze tune` did: its JSON (`--json`), and what the table shows.
#[derive(Serialize)]
struct Report {
    arch: String,
    adapter: String,
    driver: String,
    precision: &'static str,
    batch: usize,
    size: [usize; 2],
    /// Where the choices are cached (none: nowhere, the platform has no cache dir).
    cache: Option<String>,
    /// Time spent measuring, pipelines compiled for it included.
    tuning_ms: f64,
    convs: Vec<ConvRow>,
}

/// One distinct tunable op of the plan (a conv, a Triplet Attention pool).
#[derive(Serialize)]
struct ConvRow {
    signature: String,
    /// The variant plans now run it on.
    variant: String,
    /// The variant the heuristic picks without measurements.
    heuristic: String,
    /// Measured now (false: the cache already had it).
    measured: bool,
    /// Milliseconds per candidate variant, as measured (now or when cached).
    ms: std::collections::BTreeMap<String, f64>,
}

pub fn run(args: &TuneArgs, gpu_options: &GpuOptions) -> Result<()> {
    let (h, w) = (args.size[0], args.size[1]);
    if args.batch == 0 || h == 0 || w == 0 {
        return Err(Error::Invalid(
            "--batch and --size must be at least 1".into(),
        ));
    }
    let opts = models::parse_options(&args.opts)?;
    let shapes = vec![vec![args.batch, 3, h, w]; models::input_count(&args.arch)];
    let graph = models::build_synthetic(&args.arch, 0, &shapes, &opts)?;
    let gpu = Gpu::new_blocking(&GpuOptions {
        tune: TuneMode::On,
        ..gpu_options.clone()
    })?;
    let inputs = super::synthetic_inputs(&gpu, &shapes)?;
    let model = GpuGraph::new(&gpu, &graph)?;
    let started = Instant::now();
    let measured = pollster::block_on(model.tune(&gpu, &inputs))?;
    let tuning_ms = started.elapsed().as_secs_f64() * 1e3;
    // The plan again, now on the chosen kernels: what it runs is what is reported.
    model.run_blocking(&gpu, &inputs)?;
    let convs = gpu
        .tuning()
        .planned()
        .into_iter()
        .map(|case| {
            let signature = case.signature(gpu.precision());
            let Choice { variant, ms } = gpu.tuning().cached(&signature).ok_or_else(|| {
                Error::Invalid(format!("no tuned choice was cached for {signature}"))
            })?;
            Ok(ConvRow {
                measured: measured.iter().any(|m| m.signature == signature),
                heuristic: case.heuristic(&gpu)?.to_string(),
                signature,
                variant,
                ms,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let report = Report {
        arch: args.arch.clone(),
        adapter: gpu.adapter_name().to_string(),
        driver: gpu.tuning().key().driver.clone(),
        precision: gpu.precision().name(),
        batch: args.batch,
        size: [h, w],
        cache: gpu.tuning().cache_path().map(|p| p.display().to_string()),
        tuning_ms,
        convs,
    };
    if args.json {
        return super::say(serde_json::to_string(&report).context("tune report")?);
    }
    render(&report)
}

fn render(r: &Report) -> Result<()> {
    let say = super::say;
    let measured = r.convs.iter().filter(|c| c.measured).count();
    say(format!(
        "{} on {} ({}), batch {}, {}×{}, {}: {} distinct convs, {} measured in {:.1} s, {} cached before",
        r.arch,
        r.adapter,
        r.driver,
        r.batch,
        r.size[0],
        r.size[1],
        r.precision,
        r.convs.len(),
        measured,
        r.tuning_ms / 1e3,
        r.convs.len() - measured
    ))?;
    let differ = r.convs.iter().filter(|c| c.variant != c.heuristic).count();
    say(format!(
        "  the heuristic would have picked another kernel for {differ} of them"
    ))?;
    for c in &r.convs {
        let mark = if c.variant == c.heuristic {
            ""
        } else {
            "  (heuristic: "
        };
        let close = if mark.is_empty() {
            String::new()
        } else {
            format!("{})", c.heuristic)
        };
        say(format!(
            "  {}\n    chose {}{mark}{close}",
            c.signature, c.variant
        ))?;
        let mut timings: Vec<(&String, &f64)> = c.ms.iter().collect();
        timings.sort_by(|a, b| a.1.total_cmp(b.1));
        let line: Vec<String> = timings
            .iter()
            .map(|(v, ms)| format!("{v} {ms:.3} ms"))
            .collect();
        say(format!("    measured: {}", line.join(", ")))?;
    }
    match &r.cache {
        Some(path) => say(format!("choices cached in {path}")),
        None => say("choices kept for this run only (no cache dir on this platform)".to_string()),
    }
}
