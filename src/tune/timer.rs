//! Timing a conv kernel on the device: GPU timestamps where the adapter has them, else the
//! wall clock from submission until the work is done.

use super::{OpCase, Timer, Variant};
use crate::error::{Error, Result};
use crate::gpu::{Gpu, GpuTensor, Recorder, Recording};
use crate::graph::gpu::encode;
use crate::graph::output_shape;
use crate::kernels::conv::conv2d_with;
use crate::kernels::coord::coord_pool_as;
use crate::kernels::triplet::triplet_pool_as;
use crate::ops::conv::Epilogue;
use crate::ops::coord::CoordPool;
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

/// An op's operands on the device, random like real activations and weights, in the graph's
/// order (a conv's x then its weight; a pool's x).
struct Operands {
    case: OpCase,
    inputs: Vec<GpuTensor>,
    out: GpuTensor,
}

/// Times variants on `gpu`, keeping the operands of the op it last timed.
pub struct GpuTimer<'g> {
    gpu: &'g Gpu,
    operands: Option<Operands>,
    warm: Vec<Variant>,
}

impl<'g> GpuTimer<'g> {
    pub fn new(gpu: &'g Gpu) -> Self {
        Self {
            gpu,
            operands: None,
            warm: Vec::new(),
        }
    }

    fn operands(&mut self, case: &OpCase) -> Result<&Operands> {
        if self.operands.as_ref().is_none_or(|o| o.case != *case) {
            let gpu = self.gpu;
            let random = |key: &str, shape: &[usize]| gpu.upload(&synthetic::tensor(key, shape, 0));
            let shapes: Vec<Vec<usize>> = match case {
                OpCase::Conv(c) => vec![c.input.clone(), c.weight.clone()],
                OpCase::TripletPool { input, .. } | OpCase::CoordPool { input } => {
                    vec![input.clone()]
                }
                OpCase::Layout { inputs, .. } => inputs.clone(),
            };
            let out = match case {
                OpCase::Conv(c) => c.spec.output_shape(&c.input, &c.weight)?,
                OpCase::TripletPool { input, spec } => spec.out_shape(input)?.to_vec(),
                OpCase::CoordPool { input } => CoordPool.out_shape(input)?.to_vec(),
                OpCase::Layout { op, inputs } => {
                    let ins: Vec<&[usize]> = inputs.iter().map(Vec::as_slice).collect();
                    output_shape(op, &ins)?
                }
            };
            let inputs = shapes
                .iter()
                .enumerate()
                .map(|(i, shape)| random(&format!("tune.operand{i}"), shape))
                .collect::<Result<Vec<_>>>()?;
            self.warm.clear();
            self.operands = Some(Operands {
                case: case.clone(),
                inputs,
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

/// Records `variant` of the op `case` on its operands.
fn record_op(rec: &mut Recorder, case: &OpCase, variant: Variant, ops: &Operands) -> Result<()> {
    let x = &ops.inputs[0];
    match (case, variant, ops.inputs.get(1)) {
        (OpCase::Conv(c), Variant::Conv(kernel), Some(w)) => {
            let none = Epilogue::default();
            conv2d_with(rec, x, w, &none, &ops.out, &c.spec, kernel)
        }
        (OpCase::TripletPool { spec, .. }, Variant::Pool(kernel), _) => {
            triplet_pool_as(rec, x, &ops.out, spec, kernel)
        }
        (OpCase::CoordPool { .. }, Variant::Pool(kernel), _) => {
            coord_pool_as(rec, x, &ops.out, &CoordPool, kernel)
        }
        (OpCase::Layout { op, .. }, Variant::Layout(layout), _) => {
            let ins: Vec<&GpuTensor> = ops.inputs.iter().collect();
            rec.force_layout(Some(layout));
            let recorded = encode(rec, op, &ins, &ops.out);
            rec.force_layout(None);
            recorded
        }
        _ => Err(Error::Invalid(format!(
            "{variant} is no variant of {}",
            case.signature(rec.gpu().precision())
        ))),
    }
}

impl Timer for GpuTimer<'_> {
    fn done_with(&mut self, case: &OpCase) {
        if self.operands.as_ref().is_some_and(|o| o.case == *case) {
            self.operands = None;
            self.warm.clear();
        }
    }

    async fn time(&mut self, case: &OpCase, variant: Variant) -> Result<f64> {
        let gpu = self.gpu;
        let cold = !self.warm.contains(&variant);
        let (warm_up, recording, out) = {
            let ops = self.operands(case)?;
            let record = |repeats: usize| -> Result<Recording> {
                let mut rec = Recorder::new(gpu);
                rec.set_label("tune");
                for _ in 0..repeats {
                    record_op(&mut rec, case, variant, ops)?;
                }
                rec.finish()
            };
            let warm_up = if cold { Some(record(1)?) } else { None };
            (warm_up, record(REPEATS)?, ops.out.clone())
        };
        if let Some(warm_up) = warm_up {
            // The first run of a pipeline pays for the driver's lazy work: one dispatch, so a
            // slow variant on a software device costs little.
            warm_up.submit(gpu)?;
            self.settle(&out).await?;
            self.warm.push(variant);
        }
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
