//! The `gaze` command line.

mod devices;

use clap::{Parser, Subcommand};

use crate::gpu::{Gpu, GpuOptions};
use crate::Result;

#[derive(Parser)]
#[command(name = "gaze", version, about = "WebGPU runtime for attention-augmented CNNs")]
pub struct Cli {
    /// Use the adapter whose name contains this text (case-insensitive); also `GAZE_ADAPTER`.
    #[arg(long, global = true)]
    adapter: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// List the GPU adapters with their backend, limits and features.
    Devices,
}

impl Cli {
    fn gpu_options(&self) -> GpuOptions {
        GpuOptions {
            adapter: self.adapter.clone(),
            ..Default::default()
        }
    }

    #[allow(dead_code)]
    fn open_gpu(&self) -> Result<Gpu> {
        Gpu::new_blocking(&self.gpu_options())
    }
}

/// Runs the command line; the caller turns an error into a message and a non-zero exit.
pub fn run(cli: Cli) -> Result<()> {
    match &cli.command {
        Command::Devices => devices::run(&cli.gpu_options()),
    }
}
