//! Microbenchmarks of the device's peaks, the yardsticks of `gaze bench`: arithmetic (FMA) and
//! memory bandwidth (a copy).

use crate::gpu::Kernel;
use crate::{bindings, kernel, wgsl_struct};

wgsl_struct! {
    /// Loop iterations of 8 vec4 FMAs per invocation.
    pub struct FmaPeakParams { iters: u32, _pad0: u32, _pad1: u32, _pad2: u32 }
}

wgsl_struct! {
    /// Copies `n` elements with `threads` invocations.
    pub struct StreamCopyParams { n: u32, threads: u32, _pad0: u32, _pad1: u32 }
}

pub static FMA_PEAK: Kernel =
    kernel!("fma_peak", "fma_peak.wgsl"; FmaPeakParams; bindings![write sink]);
pub static STREAM_COPY: Kernel =
    kernel!("stream_copy", "stream_copy.wgsl"; StreamCopyParams; bindings![read x, write y]);
pub const KERNELS: &[&Kernel] = &[&FMA_PEAK, &STREAM_COPY];

#[cfg(not(target_arch = "wasm32"))]
mod measure {
    use super::{FmaPeakParams, StreamCopyParams, FMA_PEAK, STREAM_COPY};
    use crate::gpu::{Gpu, GpuTensor, Recorder};
    use crate::Result;

    /// Seconds one submission of `record(work)` takes, from submit to completion.
    fn timed(
        gpu: &Gpu,
        record: &dyn Fn(&mut Recorder, u32) -> Result<()>,
        work: u32,
    ) -> Result<f64> {
        let mut rec = Recorder::new(gpu);
        record(&mut rec, work)?;
        let start = std::time::Instant::now();
        rec.submit()?;
        gpu.wait()?;
        Ok(start.elapsed().as_secs_f64())
    }

    /// The best rate (work units per second) of three runs sized to take about 200 ms each:
    /// long enough that submission overhead and timer resolution do not count.
    fn best_rate(
        gpu: &Gpu,
        record: &dyn Fn(&mut Recorder, u32) -> Result<()>,
        max_work: u32,
    ) -> Result<f64> {
        timed(gpu, record, 1)?; // compiles the pipeline
        let mut work = 1u32;
        while timed(gpu, record, work)? < 0.05 && work < max_work {
            work = (work * 4).min(max_work);
        }
        let seconds = timed(gpu, record, work)?.max(1e-6);
        let target = (work as f64 * 0.2 / seconds).clamp(1.0, max_work as f64) as u32;
        let mut best = f64::INFINITY;
        for _ in 0..3 {
            best = best.min(timed(gpu, record, target)?);
        }
        Ok(target as f64 / best)
    }

    /// Measured arithmetic peak in GFLOP/s (`fma_peak.wgsl`).
    pub fn measure_gflops(gpu: &Gpu) -> Result<f64> {
        // FLOP per invocation and loop iteration of `fma_peak.wgsl` (8 vec4 FMAs).
        const FLOP_PER_ITER: f64 = 64.0;
        // Loop iterations per unit of work.
        const ITERS: u32 = 64;
        let threads: u32 = 64 * 1024;
        let sink = gpu.empty(&[threads as usize])?;
        let record = |rec: &mut Recorder, units: u32| {
            let grid = rec.grid(threads as u64)?;
            let params = FmaPeakParams {
                iters: ITERS * units,
                ..Default::default()
            };
            rec.dispatch(&FMA_PEAK, &[], &params, &[&sink], grid)
        };
        let units_per_second = best_rate(gpu, &record, 1 << 18)?;
        let iters_per_second = units_per_second * ITERS as f64;
        Ok(threads as f64 * iters_per_second * FLOP_PER_ITER / 1e9)
    }

    /// Measured memory bandwidth in GB/s (bytes read plus bytes written, `stream_copy.wgsl`) of
    /// a copy of 2 MiB, which a GPU's L2 or a CPU's last-level cache holds as it holds a
    /// model's activations at small batches, and of one of 64 MiB (or the largest one binding
    /// holds), past any cache: `(tensor bytes, GB/s)` for each.
    pub fn measure_copy_gbs(gpu: &Gpu) -> Result<Vec<(u64, f64)>> {
        [2u64 << 20, 64 << 20]
            .iter()
            .map(|&bytes| {
                let bytes = bytes.min(gpu.max_binding_bytes());
                Ok((bytes, copy_gbs(gpu, bytes)?))
            })
            .collect()
    }

    fn copy_gbs(gpu: &Gpu, bytes: u64) -> Result<f64> {
        let n = (bytes / gpu.precision().bytes()) as usize;
        let (x, y) = (gpu.empty(&[n])?, gpu.empty(&[n])?);
        let record = |rec: &mut Recorder, copies: u32| {
            (0..copies).try_for_each(|_| record_copy(rec, &x, &y))
        };
        let copies_per_second = best_rate(gpu, &record, 1 << 16)?;
        Ok(2.0 * x.bytes() as f64 * copies_per_second / 1e9)
    }

    /// Records one `y = x` of `stream_copy.wgsl` (tensors of the same size).
    pub fn record_copy(rec: &mut Recorder, x: &GpuTensor, y: &GpuTensor) -> Result<()> {
        const COPIES_PER_THREAD: usize = 4; // COPIES in stream_copy.wgsl
        let n = x.numel();
        if y.numel() != n {
            return Err(crate::Error::Invalid(format!(
                "stream_copy needs tensors of one size, got {:?} and {:?}",
                x.shape(),
                y.shape()
            )));
        }
        let threads = n.div_ceil(COPIES_PER_THREAD);
        let u = |v: usize| crate::kernels::u32_param("stream_copy", v);
        let params = StreamCopyParams {
            n: u(n)?,
            threads: u(threads)?,
            ..Default::default()
        };
        let grid = rec.grid(threads as u64)?;
        rec.dispatch(&STREAM_COPY, &[], &params, &[x, y], grid)
    }
}

#[cfg(not(target_arch = "wasm32"))]
pub use measure::{measure_copy_gbs, measure_gflops, record_copy};
