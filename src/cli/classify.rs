use clap::Args;

use super::run::Device;
use crate::classify::{find_model, read_manifest, Classification, Classifier, Preprocess};
use crate::error::{Context, Error};
use crate::gpu::{Gpu, GpuOptions, Precision};
use crate::models;
use crate::Result;

#[derive(Args)]
pub struct ClassifyArgs {
    /// The architecture (with --weights); ImageNet preprocessing, and ImageNet's class names
    /// for a 1000-class head.
    #[arg(
        long,
        required_unless_present = "manifest",
        conflicts_with = "manifest"
    )]
    arch: Option<String>,
    #[arg(
        long,
        required_unless_present = "manifest",
        conflicts_with = "manifest"
    )]
    weights: Option<String>,
    #[command(flatten)]
    key: super::EntryKey,
    /// A models.json (e.g. web/models/models.json): its model's weights, labels and
    /// preprocessing, exactly as the web page uses them.
    #[arg(long)]
    manifest: Option<String>,
    /// Which model of the manifest (by id, name or arch; default: the first).
    #[arg(long, requires = "manifest")]
    model: Option<String>,
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
    let Some(manifest) = &args.manifest else {
        let (Some(arch), Some(weights)) = (&args.arch, &args.weights) else {
            return Err(Error::Invalid(
                "give --arch and --weights, or --manifest".into(),
            ));
        };
        let sd = args.key.load(weights)?;
        return Classifier::new(arch, sd, &opts, None, Preprocess::ImageNet, gpu);
    };
    let entries = read_manifest(manifest)?;
    let entry = find_model(&entries, args.model.as_deref(), manifest)?;
    let sd = args.key.load(&entry.weights_path(manifest))?;
    let merged = entry.options_with(opts);
    let labels = Some(entry.labels.clone());
    Classifier::new(&entry.arch, sd, &merged, labels, entry.preprocess()?, gpu)
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
