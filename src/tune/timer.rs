//! Timing a conv kernel on the device: GPU timestamps where the adapter has them, else the
//! wall clock from submission until the work is done.

use super::{ConvCase, Timer};
use crate::error::Result;
use crate::gpu::{Gpu, GpuTensor, Recorder, Recording};
use crate::kernels::conv::{conv2d_with, ConvKernel};
use crate::ops::conv::Epilogue;
use crate::weights::synthetic;

/// Dispatches per timed submission: the median of their timestamps, or the wall clock's
/// share of each (which spreads the submission's own cost over several).
const REPEATS: usize = 3;

/// Milliseconds on a monotonic clock.
pub(crate) fn now_ms() -> f64 {
    #[cfg(not(target_arch = "wasm32"))]
    {
        use std::sync::OnceLock;
        static START: OnceLock<std::time::Instant> = OnceLock::new();
        START
            .get_or_init(std::time::Instant::now)
            .elapsed()
            .as_secs_f64()
            * 1e3
    }
    #[cfg(target_arch = "wasm32")]
    {
        js_sys::Reflect::get(&js_sys::global(), &"performance".into())
            .ok()
            .and_then(|p| {
                let now = js_sys::Reflect::get(&p, &"now".into()).ok()?;
                let now: js_sys::Function = now.into();
                now.call0(&p).ok()?.as_f64()
            })
            .unwrap_or_else(js_sys::Date::now)
    }
}

/// A conv's operands on the device, random like real activations and weights.
struct Operands {
    case: ConvCase,
    x: GpuTensor,
    w: GpuTensor,
    out: GpuTensor,
}

/// Times kernels on `gpu`, keeping the operands of the conv it last timed.
pub struct GpuTimer<'g> {
    gpu: &'g Gpu,
    operands: Option<Operands>,
    warm: Vec<ConvKernel>,
}

impl<'g> GpuTimer<'g> {
    pub fn new(gpu: &'g Gpu) -> Self {
        Self {
            gpu,
            operands: None,
            warm: Vec::new(),
        }
    }

    fn operands(&mut self, case: &ConvCase) -> Result<&Operands> {
        if self.operands.as_ref().is_none_or(|o| o.case != *case) {
            let out = case.spec.output_shape(&case.input, &case.weight)?;
            let gpu = self.gpu;
            self.warm.clear();
            self.operands = Some(Operands {
                case: case.clone(),
                x: gpu.upload(&synthetic::tensor("tune.x", &case.input, 0))?,
                w: gpu.upload(&synthetic::tensor("tune.weight", &case.weight, 0))?,
                out: gpu.empty(&out)?,
            });
        }
        Ok(self.operands.as_ref().expect("set above"))
    }

    /// Waits for the submitted work: natively by polling, in the browser by reading a value
    /// back (the mapping completes after everything submitted before it).
    async fn settle(&self, out: &GpuTensor) -> Result<()> {
        #[cfg(not(target_arch = "wasm32"))]
        {
            let _ = out;
            self.gpu.wait()
        }
        #[cfg(target_arch = "wasm32")]
        {
            self.gpu.read(&out.view(&[1])?).await.map(|_| ())
        }
    }
}

impl Timer for GpuTimer<'_> {
    fn done_with(&mut self, case: &ConvCase) {
        if self.operands.as_ref().is_some_and(|o| o.case == *case) {
            self.operands = None;
            self.warm.clear();
        }
    }

    async fn time(&mut self, case: &ConvCase, kernel: ConvKernel) -> Result<f64> {
        let gpu = self.gpu;
        let (x, w, out) = {
            let ops = self.operands(case)?;
            (ops.x.clone(), ops.w.clone(), ops.out.clone())
        };
        let record = |repeats: usize| -> Result<Recording> {
            let mut rec = Recorder::new(gpu);
            rec.set_label("tune");
            let none = Epilogue::default();
            for _ in 0..repeats {
                conv2d_with(&mut rec, &x, &w, &none, &out, &case.spec, kernel)?;
            }
            rec.finish()
        };
        if !self.warm.contains(&kernel) {
            // The first run of a pipeline pays for the driver's lazy work: one dispatch, so a
            // slow variant on a software device costs little.
            let warm_up = record(1)?;
            warm_up.submit(gpu)?;
            self.settle(&out).await?;
            self.warm.push(kernel);
        }
        let recording = record(REPEATS)?;
        #[cfg(not(target_arch = "wasm32"))]
        if gpu.features().contains(wgpu::Features::TIMESTAMP_QUERY) {
            let mut ms: Vec<f64> = recording
                .submit_profiled(gpu)?
                .iter()
                .map(|d| d.ms)
                .collect();
            ms.sort_by(f64::total_cmp);
            return Ok(ms[ms.len() / 2]);
        }
        let started = now_ms();
        recording.submit(gpu)?;
        self.settle(&out).await?;
        Ok((now_ms() - started) / REPEATS as f64)
    }
}
