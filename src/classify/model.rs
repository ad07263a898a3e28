//! A network or module with its weights on one device, run on inputs of any shape it accepts.
//! A graph is built (and on the GPU its weights uploaded) per per-image input shape, and each
//! graph runs any batch; the checkpoint stays on the host so that a new size can be built.

use std::cell::RefCell;
use std::rc::Rc;

use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::graph::gpu::GpuGraph;
use crate::graph::{cpu, AttentionTap, Graph, ValueId};
use crate::models::{self, Options};
use crate::tensor::Tensor;
use crate::weights::StateDict;

/// Where the weights come from.
pub enum Source {
    Checkpoint(StateDict),
    /// Deterministic stand-in weights of the official configuration (benchmarks, tests).
    Synthetic {
        seed: u64,
    },
}

impl Source {
    fn build(&self, arch: &str, inputs: &[Vec<usize>], options: &Options) -> Result<Graph<Tensor>> {
        match self {
            Source::Checkpoint(sd) => models::build(arch, sd, inputs, options),
            Source::Synthetic { seed } => models::build_synthetic(arch, *seed, inputs, options),
        }
    }

    /// What errors call the weights.
    pub fn name(&self) -> &str {
        match self {
            Source::Checkpoint(sd) => sd.source(),
            Source::Synthetic { .. } => "deterministic weights",
        }
    }
}

/// One graph, for inputs of one per-image shape: on the GPU only its device copy.
pub struct Built {
    per_image: Vec<Vec<usize>>,
    on: Backend,
}

enum Backend {
    // Boxed: a device graph is large.
    Gpu(Box<GpuGraph>),
    Cpu(Graph<Tensor>),
}

impl Built {
    /// The attention modules whose maps a run can keep.
    pub fn taps(&self) -> &[AttentionTap] {
        match &self.on {
            Backend::Gpu(g) => g.graph().taps(),
            Backend::Cpu(g) => g.taps(),
        }
    }

    fn tap_values(&self) -> Vec<ValueId> {
        match &self.on {
            Backend::Gpu(g) => g.graph().tap_values(),
            Backend::Cpu(g) => g.tap_values(),
        }
    }

    /// Inputs of one image each, zeros: what compiling or tuning a plan needs of them.
    fn zero_inputs(&self) -> Vec<Tensor> {
        self.per_image
            .iter()
            .map(|s| Tensor::zeros(&[&[1][..], s].concat()))
            .collect()
    }

    /// The output shape for these input shapes.
    pub fn output_shape(&self, inputs: &[Vec<usize>]) -> Result<Vec<usize>> {
        let refs: Vec<&[usize]> = inputs.iter().map(Vec::as_slice).collect();
        Ok(match &self.on {
            Backend::Gpu(g) => {
                let graph = g.graph();
                graph.shapes(&refs)?[graph.output()?].clone()
            }
            Backend::Cpu(g) => g.shapes(&refs)?[g.output()?].clone(),
        })
    }
}

/// The outputs of one run: the model's, and the tap values kept (in `taps` order of `built`).
pub struct Ran {
    pub output: Tensor,
    pub kept: Vec<Tensor>,
    pub kept_ids: Vec<ValueId>,
    pub built: Rc<Built>,
}

/// Graphs kept for other input sizes: each holds its weights on the device.
const GRAPHS_KEPT: usize = 2;

pub struct Model {
    arch: String,
    options: Options,
    source: Source,
    gpu: Option<Gpu>,
    built: RefCell<Vec<Rc<Built>>>,
}

impl Model {
    /// `arch` from `source` on `gpu` (the CPU reference when `None`), built first for inputs of
    /// `shapes` where they are known, so that what the weights or the size get wrong is said
    /// here.
    pub fn new(
        arch: &str,
        source: Source,
        options: &Options,
        gpu: Option<Gpu>,
        shapes: Option<&[Vec<usize>]>,
    ) -> Result<Self> {
        let model = Self {
            arch: arch.to_string(),
            options: options.clone(),
            source,
            gpu,
            built: RefCell::new(Vec::new()),
        };
        if let Some(shapes) = shapes {
            model.built_for(shapes)?;
        }
        Ok(model)
    }

    pub fn arch(&self) -> &str {
        &self.arch
    }

    pub fn gpu(&self) -> Option<&Gpu> {
        self.gpu.as_ref()
    }

    /// Where the model runs, for display: the adapter and its backend, or the CPU reference.
    pub fn device(&self) -> String {
        match &self.gpu {
            Some(gpu) => format!(
                "{} ({}), tensors stored as {}",
                gpu.adapter_name(),
                gpu.backend(),
                gpu.precision()
            ),
            None => "CPU reference (no GPU)".into(),
        }
    }

    pub fn source_name(&self) -> &str {
        self.source.name()
    }

    /// How many inputs the model takes (AFF and iAFF: `x`, then `residual`).
    pub fn input_count(&self) -> usize {
        models::input_count(&self.arch)
    }

    /// The graph for inputs of these shapes (their batch aside), built if none is kept.
    pub fn built_for(&self, shapes: &[Vec<usize>]) -> Result<Rc<Built>> {
        let per_image: Vec<Vec<usize>> = shapes
            .iter()
            .map(|s| s[1.min(s.len())..].to_vec())
            .collect();
        let mut built = self.built.borrow_mut();
        if let Some(i) = built.iter().position(|b| b.per_image == per_image) {
            let found = built.remove(i);
            built.insert(0, found.clone());
            return Ok(found);
        }
        let graph = self.source.build(&self.arch, shapes, &self.options)?;
        let on = match &self.gpu {
            Some(gpu) => Backend::Gpu(Box::new(GpuGraph::new(gpu, &graph)?)),
            None => Backend::Cpu(graph),
        };
        let made = Rc::new(Built { per_image, on });
        built.truncate(GRAPHS_KEPT - 1);
        built.insert(0, made.clone());
        Ok(made)
    }

    /// One inference; with `taps`, the attention maps' values are kept and read back too.
    pub async fn run(&self, inputs: &[Tensor], taps: bool) -> Result<Ran> {
        let shapes: Vec<Vec<usize>> = inputs.iter().map(|t| t.shape().to_vec()).collect();
        let built = self.built_for(&shapes)?;
        let keep = if taps { built.tap_values() } else { Vec::new() };
        let (output, kept) = match (&built.on, &self.gpu) {
            (Backend::Gpu(g), Some(gpu)) => g.run_keeping(gpu, inputs, &keep).await?,
            (Backend::Cpu(g), _) => cpu::run_keeping(g, inputs, &keep)?,
            (Backend::Gpu(_), None) => {
                return Err(Error::Invalid("a GPU graph without a GPU".into()))
            }
        };
        Ok(Ran {
            output,
            kept,
            kept_ids: keep,
            built,
        })
    }

    /// Measures the candidate kernels of every conv of the graphs built so far (at batch 1)
    /// that the device's tuning cache lacks, caches the fastest, and recompiles those graphs'
    /// plans to run them. Nothing to do on the CPU.
    pub async fn tune(&self) -> Result<Vec<crate::tune::Measured>> {
        let Some(gpu) = &self.gpu else {
            return Ok(Vec::new());
        };
        let built: Vec<Rc<Built>> = self.built.borrow().clone();
        let mut measured = Vec::new();
        for b in built {
            if let Backend::Gpu(g) = &b.on {
                measured.extend(g.tune(gpu, &b.zero_inputs()).await?);
            }
        }
        Ok(measured)
    }

    /// Every dispatch of the newest graph's plan at batch 1: its op and kernel variant.
    pub fn kernel_variants(&self) -> Result<Vec<(String, String)>> {
        let (Some(gpu), Some(b)) = (&self.gpu, self.built.borrow().first().cloned()) else {
            return Ok(Vec::new());
        };
        let Backend::Gpu(g) = &b.on else {
            return Ok(Vec::new());
        };
        let mut rec = crate::gpu::Recorder::new(gpu);
        g.record(gpu, &mut rec, &b.zero_inputs())?;
        Ok(rec.dispatch_variants())
    }

    /// Gives the device's memory back now: every graph's buffers, then the device itself. The
    /// model cannot run afterwards.
    pub fn release(&self) {
        self.built.borrow_mut().clear();
        if let Some(gpu) = &self.gpu {
            gpu.destroy();
        }
    }
}
