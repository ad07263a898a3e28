use clap::{Args, ValueEnum};

use super::run::Device;
use super::ChosenModel;
use crate::datasets::{fashion_mnist_test, normalized_batch, Feed, ImageSet, FASHION_MNIST_DIR};
use crate::error::{Context, Error};
use crate::gpu::{Gpu, GpuOptions};
use crate::graph::{cpu, gpu::GpuGraph};
use crate::models;
use crate::Result;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Dataset {
    FashionMnist,
}

#[derive(Args)]
pub struct EvalArgs {
    #[command(flatten)]
    source: super::ModelSource,
    #[arg(long, value_enum)]
    dataset: Dataset,
    /// Directory of the dataset files.
    #[arg(long, default_value = FASHION_MNIST_DIR)]
    data_dir: String,
    #[arg(long, value_enum, default_value_t = Device::Gpu)]
    device: Device,
    #[arg(long, default_value_t = 100)]
    batch: usize,
    /// Only the first N test images (all 10,000 by default), for a quick check of a slow model.
    #[arg(long)]
    limit: Option<usize>,
    #[arg(long = "opt")]
    opts: Vec<String>,
    /// Another run's predictions (one byte per test image, as web/models/*.predictions from
    /// PyTorch) to count the images where the two disagree.
    #[arg(long)]
    compare: Option<String>,
}

/// The class indices of `path`, one byte per image, checked against the image count.
fn read_predictions(path: &str, total: usize) -> Result<Vec<u8>> {
    let bytes = std::fs::read(path).map_err(|source| Error::Io {
        path: path.to_string(),
        source,
    })?;
    if bytes.len() != total {
        return Err(Error::Invalid(format!(
            "{path}: {} predictions for {total} test images",
            bytes.len()
        )));
    }
    Ok(bytes)
}

/// What `gaze eval` runs: the command line's arch and weights, or a manifest's model.
struct EvalModel {
    arch: String,
    weights: String,
    opts: models::Options,
    feed: Feed,
}

impl EvalModel {
    fn new(args: &EvalArgs, set: &ImageSet) -> Result<Self> {
        let opts = models::parse_options(&args.opts)?;
        match args.source.choose()? {
            ChosenModel::Weights { arch, weights } => Ok(Self {
                arch: arch.to_string(),
                weights: weights.to_string(),
                opts,
                feed: Feed::fashion_mnist(),
            }),
            ChosenModel::Entry { entry, weights } => {
                let name = entry.id.as_deref().unwrap_or(&entry.name);
                Ok(Self {
                    arch: entry.arch.clone(),
                    weights,
                    opts: entry.options_with(opts),
                    feed: Feed::to_input(
                        set,
                        entry.input,
                        entry.replicate,
                        (&entry.mean, &entry.std),
                        name,
                    )?,
                })
            }
        }
    }
}

pub fn run(args: &EvalArgs, gpu_options: &GpuOptions) -> Result<()> {
    let Dataset::FashionMnist = args.dataset;
    let set = fashion_mnist_test(&args.data_dir)?;
    let total = match args.limit {
        Some(0) => return Err(Error::Invalid("--limit 0: no image to evaluate".into())),
        Some(n) => n.min(set.labels.len()),
        None => set.labels.len(),
    };
    let batch = args.batch.clamp(1, total.max(1));
    let reference = args
        .compare
        .as_deref()
        .map(|p| read_predictions(p, set.labels.len()))
        .transpose()?;
    let model = EvalModel::new(args, &set)?;
    let sd = args.source.key.load(&model.weights)?;
    let feed = &model.feed;
    let (rows, cols) = (set.rows * feed.scale, set.cols * feed.scale);
    let build = |n: usize| {
        let shape = vec![n, feed.channels, rows, cols];
        models::build(&model.arch, &sd, &[shape], &model.opts)
    };
    let gpu = match args.device {
        Device::Gpu => Some(Gpu::new_blocking(gpu_options)?),
        Device::Cpu => None,
    };
    let bar = indicatif::ProgressBar::new(total as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{bar:40} {pos}/{len} images [{elapsed_precise}, {per_sec}]",
        )
        .context("the progress bar")?,
    );
    let (mut correct, mut differ) = (0, 0);
    let mut models_by_size: Vec<(usize, crate::graph::Graph<crate::Tensor>, Option<GpuGraph>)> =
        Vec::new();
    for start in (0..total).step_by(batch) {
        let n = batch.min(total - start);
        if !models_by_size.iter().any(|m| m.0 == n) {
            let graph = build(n)?;
            let on_gpu = gpu.as_ref().map(|g| GpuGraph::new(g, &graph)).transpose()?;
            models_by_size.push((n, graph, on_gpu));
        }
        let (_, graph, on_gpu) = models_by_size
            .iter()
            .find(|m| m.0 == n)
            .ok_or_else(|| Error::Invalid("no model".into()))?;
        let x = normalized_batch(&set, start..start + n, feed);
        let logits = match (&gpu, on_gpu) {
            (Some(g), Some(m)) => m.run_blocking(g, &[x])?,
            _ => cpu::run_at(graph, &[x], gpu_options.precision)?,
        };
        let classes = logits.numel() / n;
        for (i, row) in logits.data().chunks_exact(classes).enumerate() {
            let best = row
                .iter()
                .enumerate()
                .max_by(|a, b| a.1.total_cmp(b.1))
                .map_or(0, |(j, _)| j);
            correct += usize::from(best == set.labels[start + i] as usize);
            if let Some(reference) = &reference {
                differ += usize::from(best != reference[start + i] as usize);
            }
        }
        bar.inc(n as u64);
    }
    bar.finish_and_clear();
    if let (Some(path), Some(reference)) = (&args.compare, &reference) {
        let theirs = (0..total)
            .filter(|&i| reference[i] == set.labels[i])
            .count();
        super::say(format!(
            "{path} accuracy: {:.4} ({theirs}/{total})",
            theirs as f64 / total as f64
        ))?;
        super::say(format!("differ from {path}: {differ}/{total} predictions"))?;
    }
    super::say(format!(
        "accuracy: {:.4} ({correct}/{total})",
        correct as f64 / total as f64
    ))
}
