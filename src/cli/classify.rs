use clap::Args;

use super::run::Device;
use super::ChosenModel;
use crate::classify::{Classification, Classifier, Preprocess};
use crate::error::{Context, Error};
use crate::gpu::{Gpu, GpuOptions, Precision};
use crate::models;
use crate::Result;

#[derive(Args)]
pub struct ClassifyArgs {
    #[command(flatten)]
    source: super::ModelSource,
    /// JPEG or PNG photos.
    #[arg(required = true)]
    images: Vec<String>,
    #[arg(long, value_enum, default_value_t = Device::Gpu)]
    device: Device,
    #[arg(long = "opt")]
    opts: Vec<String>,
    /// One JSON object per image: top-5, every class probability and the attention maps
    /// (as the web page draws them).
    #[arg(long)]
    json: bool,
}

fn read(path: &str) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|source| Error::Io {
        path: path.to_string(),
        source,
    })
}

fn classifier(args: &ClassifyArgs, gpu: Option<Gpu>) -> Result<Classifier> {
    let opts = models::parse_options(&args.opts)?;
    let key = &args.source.key;
    match args.source.choose()? {
        ChosenModel::Weights { arch, weights } => {
            let sd = key.load(weights)?;
            Classifier::new(arch, sd, &opts, None, Preprocess::ImageNet, gpu)
        }
        ChosenModel::Entry { entry, weights } => {
            let sd = key.load(&weights)?;
            let merged = entry.options_with(opts);
            let labels = Some(entry.labels.clone());
            Classifier::new(&entry.arch, sd, &merged, labels, entry.preprocess()?, gpu)
        }
    }
}

/// One line of `gaze classify --json`.
#[derive(serde::Serialize)]
struct ClassifyLine<'a> {
    image: &'a str,
    device: &'a str,
    top: &'a [crate::classify::Prediction],
    probabilities: &'a [f32],
    attention: &'a [crate::classify::AttentionReading],
}

fn report(path: &str, c: &Classification, device: &str, json: bool) -> Result<()> {
    if json {
        let line = ClassifyLine {
            image: path,
            device,
            top: &c.top,
            probabilities: &c.probabilities,
            attention: &c.attention,
        };
        let json = serde_json::to_string(&line).context("classify report")?;
        return super::say(json);
    }
    super::say(path)?;
    for p in &c.top {
        super::say(format!(
            "  {:6.2}%  {} ({})",
            p.probability * 100.0,
            p.label,
            p.index
        ))?;
    }
    Ok(())
}

pub fn run(args: &ClassifyArgs, gpu_options: &GpuOptions) -> Result<()> {
    let gpu = match args.device {
        Device::Gpu => Some(Gpu::new_blocking(gpu_options)?),
        Device::Cpu if gpu_options.precision != Precision::F32 => {
            return Err(Error::Invalid(format!(
                "classify on the CPU runs f32; --precision {} applies to --device gpu",
                gpu_options.precision
            )))
        }
        Device::Cpu => None,
    };
    let model = classifier(args, gpu)?;
    let device = model.device();
    for path in &args.images {
        let c = pollster::block_on(model.classify_image(&read(path)?, path, args.json))?;
        report(path, &c, &device, args.json)?;
    }
    Ok(())
}
