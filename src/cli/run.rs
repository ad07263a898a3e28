use clap::{Args, ValueEnum};

use crate::gpu::{Gpu, GpuOptions};
use crate::graph::{cpu, gpu::GpuGraph};
use crate::models;
use crate::{npy, Result};

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Device {
    /// The WGSL kernels on the chosen adapter.
    Gpu,
    /// The CPU reference (at `--precision f16`, rounding every stored value as the GPU does).
    Cpu,
}

#[derive(Args)]
pub struct RunArgs {
    /// Architecture name (see `gaze run --help` or the README).
    #[arg(long)]
    arch: String,
    /// Checkpoint: .safetensors, or .pth/.pt/.pth.tar written by torch.save.
    #[arg(long)]
    weights: String,
    #[command(flatten)]
    key: super::EntryKey,
    /// Float32 NCHW .npy; AFF and iAFF take two: x (the branch output), then residual.
    #[arg(long, required = true)]
    input: Vec<String>,
    /// Where to write the float32 .npy output.
    #[arg(long)]
    output: String,
    #[arg(long, value_enum, default_value_t = Device::Gpu)]
    device: Device,
    /// Architecture options as key=value (e.g. small_input=true, sa_type=patchwise).
    #[arg(long = "opt")]
    opts: Vec<String>,
}

pub fn run(args: &RunArgs, gpu_options: &GpuOptions) -> Result<()> {
    let inputs = args
        .input
        .iter()
        .map(|p| npy::read(p))
        .collect::<Result<Vec<_>>>()?;
    let sd = args.key.load(&args.weights)?;
    let opts = models::parse_options(&args.opts)?;
    let shapes: Vec<Vec<usize>> = inputs.iter().map(|t| t.shape().to_vec()).collect();
    let graph = models::build(&args.arch, &sd, &shapes, &opts)?;
    let output = match args.device {
        Device::Cpu => cpu::run_at(&graph, &inputs, gpu_options.precision)?,
        Device::Gpu => {
            let gpu = Gpu::new_blocking(gpu_options)?;
            GpuGraph::new(&gpu, &graph)?.run_blocking(&gpu, &inputs)?
        }
    };
    if let Some(i) = output.data().iter().position(|v| !v.is_finite()) {
        eprintln!(
            "warning: the output holds non-finite values (first at index {i}: {}); the input or weights contain NaN or Inf, or {}",
            output.data()[i],
            gpu_options.precision.overflow()
        );
    }
    npy::write(&args.output, &output)
}
