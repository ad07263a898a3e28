//! A microbenchmark of the device's arithmetic peak, the yardstick of `gaze bench`.

use crate::gpu::Kernel;
use crate::kernel;

pub static FMA_PEAK: Kernel = kernel!("fma_peak", "fma_peak.wgsl");
pub const KERNELS: &[&Kernel] = &[&FMA_PEAK];

/// Measured peak in GFLOP/s: the best of a few timed runs, each sized to take about 200 ms.
#[cfg(not(target_arch = "wasm32"))]
pub fn measure_gflops(gpu: &crate::gpu::Gpu) -> crate::Result<f64> {
    use crate::gpu::Recorder;
    use crate::Result;
    // FLOP per invocation and loop iteration of `fma_peak.wgsl` (8 vec4 FMAs).
    const FLOP_PER_ITER: f64 = 64.0;
    let threads: u32 = 64 * 1024;
    let sink = gpu.empty(&[threads as usize])?;
    let run = |iters: u32| -> Result<f64> {
        let mut rec = Recorder::new(gpu);
        let grid = rec.grid(threads as u64)?;
        rec.dispatch(&FMA_PEAK, &[], &[iters, 0, 0, 0], &[&sink], grid)?;
        let start = std::time::Instant::now();
        rec.submit()?;
        gpu.wait()?;
        Ok(start.elapsed().as_secs_f64())
    };
    run(16)?; // compiles the pipeline
    let mut iters = 64u32;
    while run(iters)? < 0.05 && iters < 1 << 20 {
        iters *= 4;
    }
    let target = (iters as f64 * 0.2 / run(iters)?.max(1e-6)).clamp(64.0, (1 << 24) as f64) as u32;
    let best = (0..3)
        .map(|_| run(target))
        .collect::<Result<Vec<f64>>>()?
        .into_iter()
        .fold(f64::INFINITY, f64::min);
    Ok(threads as f64 * target as f64 * FLOP_PER_ITER / best / 1e9)
}
