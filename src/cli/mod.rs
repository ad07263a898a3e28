//! The `gaze` command line.

mod bench;
mod classify;
mod devices;
mod eval;
mod inspect;
mod run;
mod serve;
mod tune;

use clap::{Args, Parser, Subcommand};

use crate::gpu::{option_from_env, Gpu, GpuOptions, Precision};
use crate::graph::fuse::Fusion;
use crate::tune::TuneMode;
use crate::{Error, Result};

#[derive(Parser)]
#[command(
    name = "gaze",
    version,
    about = "WebGPU runtime for attention-augmented CNNs"
)]
pub struct Cli {
    /// Use the adapter whose name contains this text (case-insensitive); also `GAZE_ADAPTER`.
    #[arg(long, global = true)]
    adapter: Option<String>,
    /// How the GPU stores tensors: f32, or f16 (half the bytes; arithmetic stays f32; needs an
    /// adapter with shader-f16).
    #[arg(long, global = true, default_value = "f32")]
    precision: Precision,
    /// How plans choose kernel variants: off (a heuristic by device type), cache (choices
    /// `gaze tune` measured on this adapter, the heuristic elsewhere) or on (measure what is not
    /// cached, then cache it). Default: `GAZE_TUNE`, else cache.
    #[arg(long, global = true, value_name = "MODE")]
    tune: Option<TuneMode>,
    /// Whether plans fuse ops into their neighbours' kernels: on (each pass where it pays:
    /// Coordinate Attention's pools into the depthwise conv before it everywhere; its
    /// multiply into the 1×1 conv after it on GPUs, and on CPU devices with subgroups where
    /// its gates fit a uniform window; on GPUs its pool finish, conv1 and gates as one
    /// kernel; SAN's relation into the concatenation its conv_w reads, everywhere), off,
    /// or everywhere (each pass on any device). Default: `GAZE_FUSION`, else on.
    #[arg(long, global = true, value_name = "on|off|everywhere")]
    fusion: Option<Fusion>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// List the GPU adapters with their backend, limits and features.
    Devices,
    /// Run a model or module on .npy inputs and write its output as .npy.
    Run(run::RunArgs),
    /// Print the top-5 classes of photos: an ImageNet model (resize 256, center crop 224), or a
    /// model of a models.json manifest with its own labels and preprocessing.
    Classify(classify::ClassifyArgs),
    /// Time a model: cold start, warm latency, per-op GPU time, GFLOP/s against the device peak.
    Bench(bench::BenchArgs),
    /// Accuracy of a classifier over a dataset's test images (Fashion-MNIST).
    Eval(eval::EvalArgs),
    /// Time every kernel variant of each conv, pool and small kernel of a model on this
    /// device, cache the fastest (per adapter, driver and gaze version), and print what was
    /// chosen and measured.
    Tune(tune::TuneArgs),
    /// Serve the web demo (built by `bash web/build.sh`) on 127.0.0.1 and print its URL.
    Serve(serve::ServeArgs),
    /// List a checkpoint's format, the entry its weights came from, its tensors and the
    /// architecture they point to.
    Inspect {
        /// A .safetensors or torch.save checkpoint.
        file: String,
        #[command(flatten)]
        key: EntryKey,
    },
}

/// Deterministic inputs of `shapes` to time a model on `gpu`, each first checked to fit one of
/// its buffers: a huge `--size` or `--batch` is refused by name, not by the host's allocator.
pub fn synthetic_inputs(gpu: &Gpu, shapes: &[Vec<usize>]) -> Result<Vec<crate::tensor::Tensor>> {
    shapes
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let what = || format!("the input {s:?} (--batch, --size)");
            gpu.check_fits(what, s, gpu.precision())?;
            Ok(crate::weights::synthetic::tensor(
                &format!("input{i}"),
                s,
                1,
            ))
        })
        .collect()
}

/// Which model a command runs: `--arch` with `--weights`, or a model of a models.json.
#[derive(Args)]
pub struct ModelSource {
    /// The architecture, with --weights, instead of --manifest.
    #[arg(
        long,
        required_unless_present = "manifest",
        conflicts_with = "manifest"
    )]
    arch: Option<String>,
    /// Its checkpoint: .safetensors or torch.save.
    #[arg(
        long,
        required_unless_present = "manifest",
        conflicts_with = "manifest"
    )]
    weights: Option<String>,
    /// A models.json (e.g. web/models/models.json): its model's weights, options, labels and
    /// preprocessing, exactly as the web page uses them.
    #[arg(long)]
    manifest: Option<String>,
    /// Which model of the manifest (by id, name or arch; default: the first).
    #[arg(long, requires = "manifest")]
    model: Option<String>,
    #[command(flatten)]
    pub key: EntryKey,
}

/// What a `ModelSource` names.
pub enum ChosenModel<'a> {
    Weights {
        arch: &'a str,
        weights: &'a str,
    },
    /// A manifest's entry, its weights path resolved against the manifest.
    Entry {
        entry: Box<crate::classify::ModelEntry>,
        weights: String,
    },
}

impl ModelSource {
    pub fn choose(&self) -> Result<ChosenModel<'_>> {
        let Some(manifest) = &self.manifest else {
            let (Some(arch), Some(weights)) = (&self.arch, &self.weights) else {
                return Err(Error::Invalid(
                    "give --arch and --weights, or --manifest".into(),
                ));
            };
            return Ok(ChosenModel::Weights { arch, weights });
        };
        let entries = crate::classify::read_manifest(manifest)?;
        let entry = crate::classify::find_model(&entries, self.model.as_deref(), manifest)?;
        Ok(ChosenModel::Entry {
            weights: entry.weights_path(manifest),
            entry: Box::new(entry.clone()),
        })
    }
}

/// Which entry of a torch.save container holds the weights.
#[derive(Args, Clone, Debug, Default)]
pub struct EntryKey {
    /// The entry of a training checkpoint that holds the weights (e.g. `state_dict_ema`).
    /// Default: the file itself when it is a state dict, else the first of state_dict,
    /// model_state_dict, model, net, module, state_dict_ema, model_ema that holds tensors.
    #[arg(long, value_name = "NAME")]
    pub key: Option<String>,
}

impl EntryKey {
    pub fn load(&self, path: &str) -> Result<crate::weights::StateDict> {
        crate::weights::StateDict::load_entry(path, self.key.as_deref())
    }
}

impl Cli {
    fn gpu_options(&self) -> Result<GpuOptions> {
        let tune = match self.tune {
            Some(mode) => mode,
            None => option_from_env("GAZE_TUNE")?,
        };
        let fusion = match self.fusion {
            Some(fusion) => fusion,
            None => option_from_env("GAZE_FUSION")?,
        };
        Ok(GpuOptions {
            adapter: self.adapter.clone(),
            precision: self.precision,
            tune,
            fusion,
            ..Default::default()
        })
    }
}

/// Runs the command line; the caller turns an error into a message and a non-zero exit.
pub fn run(cli: Cli) -> Result<()> {
    match &cli.command {
        Command::Devices => devices::run(&cli.gpu_options()?),
        Command::Run(args) => run::run(args, &cli.gpu_options()?),
        Command::Inspect { file, key } => inspect::run(file, key),
        Command::Classify(args) => classify::run(args, &cli.gpu_options()?),
        Command::Bench(args) => bench::run(args, &cli.gpu_options()?),
        Command::Eval(args) => eval::run(args, &cli.gpu_options()?),
        Command::Tune(args) => tune::run(args, &cli.gpu_options()?),
        Command::Serve(args) => serve::run(args),
    }
}

/// Prints a line to stdout; a closed pipe (`gaze inspect f | head`) ends the command with an
/// error instead of a panic.
pub(crate) fn say(line: impl std::fmt::Display) -> Result<()> {
    use std::io::Write;
    writeln!(std::io::stdout().lock(), "{line}").map_err(|source| crate::Error::Io {
        path: "stdout".into(),
        source,
    })
}
