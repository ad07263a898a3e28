use clap::Args;

use super::run::Device;
use crate::classify::{decode, imagenet_labels, preprocess, top_k, IMAGENET_MEAN, IMAGENET_STD};
use crate::error::Error;
use crate::gpu::{Gpu, GpuOptions};
use crate::graph::{cpu, gpu::GpuGraph};
use crate::models;
use crate::weights::StateDict;
use crate::Result;

#[derive(Args)]
pub struct ClassifyArgs {
    #[arg(long)]
    arch: String,
    #[arg(long)]
    weights: String,
    /// JPEG or PNG photos.
    #[arg(required = true)]
    images: Vec<String>,
    #[arg(long, value_enum, default_value_t = Device::Gpu)]
    device: Device,
    #[arg(long = "opt")]
    opts: Vec<String>,
}

pub fn run(args: &ClassifyArgs, gpu_options: &GpuOptions) -> Result<()> {
    let sd = StateDict::load(&args.weights)?;
    let opts = models::parse_options(&args.opts)?;
    let graph = models::build(&args.arch, &sd, &[vec![1, 3, 224, 224]], &opts)?;
    let labels = imagenet_labels();
    let gpu = match args.device {
        Device::Gpu => Some(Gpu::new_blocking(gpu_options)?),
        Device::Cpu => None,
    };
    let gpu_graph = gpu.as_ref().map(|g| GpuGraph::new(g, &graph)).transpose()?;
    for path in &args.images {
        let bytes = std::fs::read(path).map_err(|source| Error::Io {
            path: path.clone(),
            source,
        })?;
        let x = preprocess(
            &decode(&bytes, path)?,
            256,
            224,
            IMAGENET_MEAN,
            IMAGENET_STD,
        )?;
        let logits = match (&gpu, &gpu_graph) {
            (Some(g), Some(m)) => m.run_blocking(g, &[x])?,
            _ => cpu::run(&graph, &[x])?,
        };
        if logits.numel() != labels.len() {
            return Err(Error::Invalid(format!(
                "the model has {} classes; `classify` names ImageNet's {} (use `gaze run` for other heads)",
                logits.numel(),
                labels.len()
            )));
        }
        super::say(path)?;
        for (i, p) in top_k(logits.data(), 5) {
            super::say(format!("  {:6.2}%  {} ({i})", p * 100.0, labels[i]))?;
        }
    }
    Ok(())
}
