//! Runs a graph on the GPU: weights uploaded once, buffers planned by liveness, every
//! dispatch of one inference in one submission, only the output read back.

use std::sync::Mutex;

use super::fuse::{self, Fusion};
use super::plan::{plan, FusedEdges, MemoryPlan};
use super::{conv_operands, Graph, Op, Operands, ValueId};
use crate::error::{Error, Result};
use crate::gpu::{Gpu, GpuTensor, Precision, Readback, Recorder, Recording, UNIFORM_WINDOW_BYTES};
use crate::kernels as k;
use crate::kernels::conv::PoolParts;
use crate::ops::conv::Conv2d;
use crate::ops::tensor_ops::Concat;
use crate::tensor::Tensor;

/// What one inference cost the host (`GpuGraph::run_measured`).
#[derive(Clone, Copy, Debug)]
pub struct HostCost {
    /// Milliseconds to write the inputs, encode and submit, apart from GPU time.
    pub host_ms: f64,
    /// Device objects created, the readback included.
    pub objects: u64,
}

/// The graph compiled for one set of input shapes: its buffers, planned once, and the whole
/// inference recorded once on them, replayed by every run.
struct Plan {
    id: u64,
    input_shapes: Vec<Vec<usize>>,
    keep: Vec<ValueId>,
    values: Vec<GpuTensor>,
    /// Recorded on the first run (`GpuGraph::record` callers record their own).
    recording: Option<Recording>,
    /// Staging buffers of earlier runs, by the values they read; one is taken out while a run
    /// reads through it.
    readbacks: Vec<Readback>,
    /// For each node, what a fusion pass made of it in this plan (`fuse`).
    fused: Vec<Option<Fused>>,
}

impl Plan {
    /// One inference's command buffer: the recorded steps, then the copies into `readback`.
    fn command_buffer(&self, gpu: &Gpu, readback: &Readback) -> wgpu::CommandBuffer {
        let mut encoder = gpu
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                label: Some("gaze inference"),
            });
        if let Some(recording) = &self.recording {
            recording.encode(&mut encoder);
        }
        readback.copy(&mut encoder);
        encoder.finish()
    }
}

/// What a fusion pass made of a node in one plan.
#[derive(Clone)]
enum Fused {
    /// A conv that also writes the partial sums of the Coordinate Attention pool of its
    /// output.
    PoolingConv(PoolParts),
    /// A Coordinate Attention pool finished from those partial sums.
    PoolFromPartials(PoolParts),
    /// Runs inside a later node's kernel: nothing of its own to record.
    Absorbed,
    /// A 1×1 conv that reads Coordinate Attention's x and gates and multiplies them as it
    /// loads, in place of the absorbed apply's output.
    GatedConv { x: ValueId, gates: ValueId },
    /// Coordinate Attention's gates computed from the partial sums of x's conv, with the
    /// absorbed pool and conv1 (`conv`, its `weight` and `bias`) in the same kernel.
    Excite {
        partials: PoolParts,
        x: ValueId,
        conv: Conv2d,
        weight: ValueId,
        bias: ValueId,
    },
    /// A concatenation whose input `index` the absorbed `producer` (a SAN subtraction or
    /// patch gather) computes into its slot, from the producer's `inputs`.
    ConcatComputing {
        index: usize,
        producer: Op,
        inputs: Vec<ValueId>,
    },
}

/// The fusion passes' decisions for one plan.
struct Fusions {
    /// Each with the most rows of its strips.
    pooling_convs: Vec<(ValueId, usize)>,
    /// The pools that read those convs' parts, each with its conv.
    parts_pools: Vec<(ValueId, ValueId)>,
    gated_convs: Vec<fuse::GatedConv>,
    excites: Vec<fuse::Excite>,
    san_concats: Vec<fuse::InConcat>,
}

impl Fusions {
    /// What the fused kernels change that the graph's edges do not show: a gated conv reads
    /// the apply's operands, and the apply's output is never written; a concatenation reads
    /// the operands of the relation it computes, which is never written apart.
    fn edges<T>(&self, graph: &Graph<T>) -> FusedEdges {
        let gated = (self.gated_convs.iter()).flat_map(|g| [(g.x, g.conv), (g.gates, g.conv)]);
        let concats = (self.san_concats.iter()).flat_map(|s| {
            let operands = &graph.nodes()[s.producer].inputs;
            operands.iter().map(move |&v| (v, s.concat))
        });
        let applies = self.gated_convs.iter().map(|g| (g.apply, g.x));
        let relations = self.san_concats.iter().map(|s| (s.producer, s.concat));
        FusedEdges {
            reads: gated.chain(concats).collect(),
            unwritten: applies.chain(relations).collect(),
        }
    }
}

/// Plans kept for other input shapes or batches; the least recently used goes first. Each
/// holds its activation buffers, so the bound is small.
const PLANS_KEPT: usize = 3;

/// Staging buffers kept per plan (one per set of values read back: with and without maps).
const READBACKS_KEPT: usize = 4;

/// A submitted inference whose values are yet to be read.
struct Submitted {
    plan: u64,
    readback: Readback,
}

/// A graph whose weights live on one device, ready to run any number of times.
pub struct GpuGraph {
    graph: Graph<GpuTensor>,
    fusion: Fusion,
    /// Most recently used first.
    plans: Mutex<Vec<Plan>>,
    next_plan: std::sync::atomic::AtomicU64,
}

impl GpuGraph {
    /// The graph on `gpu`, its plans fused as the device's options say (all passes by
    /// default).
    pub fn new(gpu: &Gpu, graph: &Graph<Tensor>) -> Result<Self> {
        Self::with_fusion(gpu, graph, gpu.fusion())
    }

    pub fn with_fusion(gpu: &Gpu, graph: &Graph<Tensor>, fusion: Fusion) -> Result<Self> {
        Ok(Self {
            fusion,
            graph: graph.map_constants(|t| gpu.upload(t))?,
            plans: Mutex::new(Vec::new()),
            next_plan: Default::default(),
        })
    }

    /// Buffers for these input shapes, planned and allocated once and reused while the shapes
    /// stay the same.
    fn prepare(&self, gpu: &Gpu, input_shapes: &[Vec<usize>], keep: &[ValueId]) -> Result<Plan> {
        let refs: Vec<&[usize]> = input_shapes.iter().map(Vec::as_slice).collect();
        let shapes = self.graph.shapes(&refs)?;
        let precision = gpu.precision();
        for (node, shape) in self.graph.nodes().iter().zip(&shapes) {
            let what = || format!("`{}`, of shape {shape:?},", node.name);
            gpu.check_fits(what, shape, precision)?;
        }
        let fusions = self.fusions(gpu, &shapes, keep);
        let plan = plan(
            &self.graph,
            &shapes,
            keep,
            precision,
            &fusions.edges(&self.graph),
        )?;
        // A gated conv may read its gates through a uniform window, which must lie inside
        // their buffer.
        let windows: Vec<usize> = (fusions.gated_convs.iter())
            .filter_map(|g| plan.slot_of[g.gates])
            .collect();
        let buffers: Vec<GpuTensor> = (plan.slot_bytes.iter().enumerate())
            .map(|(slot, &b)| {
                let b = match windows.contains(&slot) {
                    true => b.max(UNIFORM_WINDOW_BYTES),
                    false => b,
                };
                gpu.empty(&[(b / precision.bytes()) as usize])
            })
            .collect::<Result<_>>()?;
        let values = self
            .graph
            .nodes()
            .iter()
            .enumerate()
            .map(|(i, node)| match (node.op, plan.slot_of[i]) {
                (Op::Constant(c), _) => Ok(self.graph.constants()[c].clone()),
                (_, Some(slot)) => buffers[slot].view(&shapes[i]),
                (_, None) => Err(Error::Invalid(format!("value {i} has no buffer"))),
            })
            .collect::<Result<_>>()?;
        let fused = self.fused_nodes(gpu, &shapes, &fusions)?;
        Ok(Plan {
            id: self
                .next_plan
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            input_shapes: input_shapes.to_vec(),
            keep: keep.to_vec(),
            values,
            recording: None,
            readbacks: Vec::new(),
            fused,
        })
    }

    /// What the fusion passes change in the plan for these value shapes on `gpu`, keeping the
    /// values `kept` intact.
    fn fusions(&self, gpu: &Gpu, shapes: &[Vec<usize>], kept: &[ValueId]) -> Fusions {
        let pooling_convs = match self.fusion.coord_pools {
            true => fuse::coord_pools(&self.graph, shapes, gpu),
            false => Vec::new(),
        };
        let parts_pools = fuse::pools_reading_parts(&self.graph, &pooling_convs);
        let excites = match self.fusion.excites_on(gpu) {
            true => {
                let pooled: Vec<ValueId> = parts_pools.iter().map(|&(pool, _)| pool).collect();
                fuse::coord_excites(&self.graph, shapes, &pooled, kept)
            }
            false => Vec::new(),
        };
        let san_concats = match self.fusion.san_concat {
            true => fuse::san_concats(&self.graph, kept),
            false => Vec::new(),
        };
        Fusions {
            gated_convs: fuse::coord_applies(&self.graph, shapes, gpu, self.fusion.coord_apply),
            pooling_convs,
            parts_pools,
            excites,
            san_concats,
        }
    }

    /// Each node's part in the fusions, with the partial sums' buffers they share.
    fn fused_nodes(
        &self,
        gpu: &Gpu,
        shapes: &[Vec<usize>],
        fusions: &Fusions,
    ) -> Result<Vec<Option<Fused>>> {
        let nodes = self.graph.nodes();
        let mut fused = vec![None; nodes.len()];
        for &(conv, max_rows) in &fusions.pooling_convs {
            let shape = k::conv::coord_partials_shape(&shapes[conv], max_rows)?;
            let sums = gpu.empty_at(&shape, Precision::F32)?;
            fused[conv] = Some(Fused::PoolingConv(PoolParts { sums, max_rows }));
        }
        for &(pool, conv) in &fusions.parts_pools {
            if let Some(Fused::PoolingConv(sums)) = &fused[conv] {
                fused[pool] = Some(Fused::PoolFromPartials(sums.clone()));
            }
        }
        for e in &fusions.excites {
            let (Some(Fused::PoolFromPartials(partials)), Op::Conv { spec, .. }) =
                (fused[e.pool].take(), nodes[e.conv].op)
            else {
                return Err(Error::Invalid(
                    "an excite fusion without a fused pool and a conv: a fusion pass bug".into(),
                ));
            };
            let conv_inputs = &nodes[e.conv].inputs;
            fused[e.gates] = Some(Fused::Excite {
                partials,
                x: nodes[e.pool].inputs[0],
                conv: spec,
                weight: conv_inputs[1],
                bias: conv_inputs[2],
            });
            fused[e.pool] = Some(Fused::Absorbed);
            fused[e.conv] = Some(Fused::Absorbed);
        }
        for g in &fusions.gated_convs {
            fused[g.apply] = Some(Fused::Absorbed);
            fused[g.conv] = Some(Fused::GatedConv {
                x: g.x,
                gates: g.gates,
            });
        }
        for s in &fusions.san_concats {
            let producer = &nodes[s.producer];
            fused[s.producer] = Some(Fused::Absorbed);
            fused[s.concat] = Some(Fused::ConcatComputing {
                index: s.index,
                producer: producer.op,
                inputs: producer.inputs.clone(),
            });
        }
        Ok(fused)
    }

    /// The memory plan for these input shapes on `gpu`, its fusions included.
    pub fn memory_plan(&self, gpu: &Gpu, input_shapes: &[Vec<usize>]) -> Result<MemoryPlan> {
        let refs: Vec<&[usize]> = input_shapes.iter().map(Vec::as_slice).collect();
        let shapes = self.graph.shapes(&refs)?;
        let fusions = self.fusions(gpu, &shapes, &self.kept_with(&[]));
        plan(
            &self.graph,
            &shapes,
            &self.kept_with(&[]),
            gpu.precision(),
            &fusions.edges(&self.graph),
        )
    }

    /// The values a plan keeps intact: the attention taps always (small maps), so reading them
    /// or not from one inference to the next does not replan and reallocate, plus `extra`.
    fn kept_with(&self, extra: &[ValueId]) -> Vec<ValueId> {
        let mut kept = self.graph.tap_values();
        kept.extend_from_slice(extra);
        kept.sort_unstable();
        kept.dedup();
        kept
    }

    /// Runs `f` on the plan for these inputs (made, or moved to the front of the cache, first)
    /// after writing the inputs into it.
    fn with_plan<R>(
        &self,
        gpu: &Gpu,
        inputs: &[Tensor],
        keep: &[ValueId],
        f: impl FnOnce(&mut Plan) -> Result<R>,
    ) -> Result<R> {
        if let Some(&v) = keep.iter().find(|&&v| v >= self.graph.nodes().len()) {
            return Err(Error::Invalid(format!("no value {v} to keep")));
        }
        let input_shapes: Vec<Vec<usize>> = inputs.iter().map(|t| t.shape().to_vec()).collect();
        let mut plans = self
            .plans
            .lock()
            .map_err(|_| Error::Gpu("a previous run panicked".into()))?;
        let fits =
            |p: &Plan| p.input_shapes == input_shapes && keep.iter().all(|v| p.keep.contains(v));
        match plans.iter().position(fits) {
            Some(i) => {
                let found = plans.remove(i);
                plans.insert(0, found);
            }
            None => {
                // The old plans' buffers go before the new one's are allocated.
                plans.truncate(PLANS_KEPT - 1);
                let plan = self.prepare(gpu, &input_shapes, &self.kept_with(keep))?;
                plans.insert(0, plan);
            }
        }
        let plan = &mut plans[0];
        for (i, node) in self.graph.nodes().iter().enumerate() {
            if let Op::Input(j) = node.op {
                gpu.write(&plan.values[i], &inputs[j])?;
            }
        }
        f(plan)
    }

    /// Records every dispatch of the graph on `rec`, reading and writing `values`.
    fn record_on(&self, rec: &mut Recorder, plan: &Plan) -> Result<()> {
        let values = &plan.values;
        for (i, node) in self.graph.nodes().iter().enumerate() {
            if let Op::Input(_) = node.op {
                continue;
            }
            let ins: Vec<&GpuTensor> = node.inputs.iter().map(|&v| &values[v]).collect();
            rec.set_label(&node.name);
            match &plan.fused[i] {
                None => encode(rec, &node.op, &ins, &values[i])?,
                Some(fused) => encode_fused(rec, &node.op, &ins, &values[i], fused, values)?,
            }
        }
        Ok(())
    }

    /// Records the whole inference on `rec` after writing the inputs; returns the output tensor.
    pub fn record(&self, gpu: &Gpu, rec: &mut Recorder, inputs: &[Tensor]) -> Result<GpuTensor> {
        self.with_plan(gpu, inputs, &[], |plan| {
            self.record_on(rec, plan)?;
            Ok(plan.values[self.graph.output()?].clone())
        })
    }

    /// Writes the inputs and submits the plan's recorded inference (recording it on the first
    /// run) with copies of the output and `keep` into a staging buffer; creates no device object
    /// once this plan has run with the same `keep`.
    fn submit(&self, gpu: &Gpu, inputs: &[Tensor], keep: &[ValueId]) -> Result<Submitted> {
        let output = self.graph.output()?;
        self.with_plan(gpu, inputs, keep, |plan| {
            if plan.recording.is_none() {
                let mut rec = Recorder::new(gpu);
                self.record_on(&mut rec, plan)?;
                plan.recording = Some(rec.finish()?);
            }
            let read: Vec<&GpuTensor> = std::iter::once(output)
                .chain(keep.iter().copied())
                .map(|v| &plan.values[v])
                .collect();
            let readback = match plan.readbacks.iter().position(|r| r.reads(&read)) {
                Some(i) => plan.readbacks.swap_remove(i),
                None => Readback::new(gpu, &read),
            };
            gpu.queue.submit([plan.command_buffer(gpu, &readback)]);
            gpu.check_lost()?;
            Ok(Submitted {
                plan: plan.id,
                readback,
            })
        })
    }

    /// Reads a submitted inference back and returns its staging buffer to its plan.
    async fn read(&self, gpu: &Gpu, submitted: Submitted) -> Result<Vec<Tensor>> {
        let values = submitted.readback.read(gpu).await?;
        if let Ok(mut plans) = self.plans.lock() {
            if let Some(plan) = plans.iter_mut().find(|p| p.id == submitted.plan) {
                if plan.readbacks.len() < READBACKS_KEPT {
                    plan.readbacks.push(submitted.readback);
                }
            }
        }
        Ok(values)
    }

    /// The bytes the fused convs of the plan for `inputs` bind beyond an unfused conv's: the
    /// partial sums they write for the pools after them.
    pub fn fused_conv_bytes(&self, gpu: &Gpu, inputs: &[Tensor]) -> Result<u64> {
        self.with_plan(gpu, inputs, &[], |plan| {
            Ok(self
                .graph
                .nodes()
                .iter()
                .zip(&plan.fused)
                .map(|(_, fused)| match fused {
                    Some(Fused::PoolingConv(parts)) => parts.sums.bytes(),
                    // The gates, which the conv binds and the absorbed apply did.
                    Some(Fused::GatedConv { gates, .. }) => plan.values[*gates].bytes(),
                    _ => 0,
                })
                .sum())
        })
    }

    /// The fusion passes its plans run.
    pub fn fusion(&self) -> Fusion {
        self.fusion
    }

    /// Drops every compiled plan: the next run compiles again, with the kernels the device
    /// chooses now (after tuning).
    pub fn replan(&self) {
        if let Ok(mut plans) = self.plans.lock() {
            plans.clear();
        }
    }

    /// Compiles the plan for `inputs` (one run), times the candidate kernels of every conv in
    /// it that has no cached choice, caches the fastest, and recompiles if anything was
    /// measured.
    pub async fn tune(&self, gpu: &Gpu, inputs: &[Tensor]) -> Result<Vec<crate::tune::Measured>> {
        self.run(gpu, inputs).await?;
        let measured = crate::tune::tune_untuned(gpu).await?;
        if !measured.is_empty() {
            self.replan();
        }
        Ok(measured)
    }

    /// The graph this runs (its taps name the values `run_keeping` can return).
    pub fn graph(&self) -> &Graph<GpuTensor> {
        &self.graph
    }

    /// One inference that also reads back the values `keep` (e.g. attention maps).
    pub async fn run_keeping(
        &self,
        gpu: &Gpu,
        inputs: &[Tensor],
        keep: &[ValueId],
    ) -> Result<(Tensor, Vec<Tensor>)> {
        let submitted = self.submit(gpu, inputs, keep)?;
        let mut values = self.read(gpu, submitted).await?;
        let out = values.remove(0);
        Ok((out, values))
    }

    /// One inference: one submission, then the output read back.
    pub async fn run(&self, gpu: &Gpu, inputs: &[Tensor]) -> Result<Tensor> {
        Ok(self.run_keeping(gpu, inputs, &[]).await?.0)
    }

    /// One inference with every dispatch timed by timestamp queries.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn run_profiled(
        &self,
        gpu: &Gpu,
        inputs: &[Tensor],
    ) -> Result<Vec<crate::gpu::DispatchTime>> {
        let mut rec = Recorder::new(gpu);
        self.record(gpu, &mut rec, inputs)?;
        rec.finish()?.submit_profiled(gpu)
    }

    #[cfg(not(target_arch = "wasm32"))]
    pub fn run_blocking(&self, gpu: &Gpu, inputs: &[Tensor]) -> Result<Tensor> {
        pollster::block_on(self.run(gpu, inputs))
    }

    /// The milliseconds of `reps` encodings of the compiled inference for `inputs`, each with
    /// its command buffer finished, done back to back and never submitted: the host's part of
    /// `run_measured`'s `host_ms` with the CPU's caches warm. On a software adapter the
    /// kernels run on the CPU's own cores between runs, and evict what this work reads.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn encode_warm_times(&self, gpu: &Gpu, inputs: &[Tensor], reps: usize) -> Result<Vec<f64>> {
        self.run_blocking(gpu, inputs)?;
        self.with_plan(gpu, inputs, &[], |plan| {
            // A staging buffer of its own: this measures outside the timed runs.
            let readback = Readback::new(gpu, &[&plan.values[self.graph.output()?]]);
            let times = (0..reps)
                .map(|_| {
                    let start = std::time::Instant::now();
                    drop(plan.command_buffer(gpu, &readback));
                    start.elapsed().as_secs_f64() * 1e3
                })
                .collect();
            Ok(times)
        })
    }

    /// `run_blocking`, with what the run cost the host: the time to write the inputs, encode
    /// and submit (not the GPU's time), and the device objects it created.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn run_measured(&self, gpu: &Gpu, inputs: &[Tensor]) -> Result<(Tensor, HostCost)> {
        let objects = gpu.objects_created();
        let start = std::time::Instant::now();
        let submitted = self.submit(gpu, inputs, &[])?;
        let host_ms = start.elapsed().as_secs_f64() * 1e3;
        let mut values = pollster::block_on(self.read(gpu, submitted))?;
        let cost = HostCost {
            host_ms,
            objects: gpu.objects_created() - objects,
        };
        Ok((values.remove(0), cost))
    }
}

/// Records `op` on operands `ins` (in the graph's order) into `out`, on the kernels the device
/// chooses (or the recorder forces).
pub(crate) fn encode(
    rec: &mut Recorder,
    op: &Op,
    ins: &[&GpuTensor],
    out: &GpuTensor,
) -> Result<()> {
    let x = || ins[0];
    let mut o = Operands::after_x(ins);
    match *op {
        Op::Input(_) | Op::Constant(_) | Op::Reshape(_) => Ok(()),
        Op::Conv {
            spec,
            bias,
            residual,
        } => {
            let (weight, ep) = conv_operands(ins, bias, residual)?;
            k::conv::conv2d(rec, x(), weight, &ep, out, &spec)
        }
        Op::Affine(spec) => {
            k::elementwise::channel_affine(rec, x(), o.take()?, o.take()?, out, &spec)
        }
        Op::Unary(s) => k::elementwise::unary(rec, x(), out, &s),
        Op::Binary(s) => k::elementwise::binary(rec, ins[0], ins[1], out, &s),
        Op::Blend(s) => k::elementwise::blend(rec, ins[0], ins[1], ins[2], out, &s),
        Op::MaxPool(s) => k::pool::max_pool(rec, x(), out, &s),
        Op::AvgPool(s) => k::pool::avg_pool(rec, x(), out, &s),
        Op::Mean(s) => k::pool::spatial_mean(rec, x(), out, &s),
        Op::Linear { spec, bias } => {
            let weight = *o.take()?;
            k::linear::linear(rec, x(), weight, o.take_if(bias)?.copied(), out, &spec)
        }
        Op::Softmax(s) => k::linear::softmax(rec, x(), out, &s),
        Op::Concat(s) => k::tensor_ops::concat(rec, ins, out, &s),
        Op::Subtraction(s) => k::san::subtraction2(rec, ins[0], ins[1], out, &s),
        Op::Aggregation(spec) => {
            let w = *o.take()?;
            let scale_shift = o.take_pair_if(spec.epilogue.affine)?.map(|(s, t)| (*s, *t));
            k::san::aggregation(rec, x(), w, scale_shift, out, &spec)
        }
        Op::PatchGather(spec) => {
            let scale_shift = o.take_pair_if(spec.epilogue.affine)?.map(|(s, t)| (*s, *t));
            k::san::patch_gather(rec, x(), scale_shift, out, &spec)
        }
        Op::TripletPool(s) => k::triplet::triplet_pool(rec, x(), out, &s),
        Op::TripletGates(spec) => {
            k::triplet::triplet_gates(rec, x(), o.take()?, o.take()?, out, &spec)
        }
        Op::TripletCombine { spec, residual } => {
            k::triplet::triplet_combine(rec, ins[0], ins[1], residual.then(|| ins[2]), out, &spec)
        }
        Op::CoordPool(s) => k::coord::coord_pool(rec, x(), out, &s),
        Op::CoordGates(spec) => k::coord::coord_gates(rec, x(), o.take()?, o.take()?, out, &spec),
        Op::CoordApply(s) => k::coord::coord_apply(rec, ins[0], ins[1], out, &s),
    }
}

/// A node that a fusion pass changed (`fused`), its operands `ins` and the plan's `values`.
fn encode_fused(
    rec: &mut Recorder,
    op: &Op,
    ins: &[&GpuTensor],
    out: &GpuTensor,
    fused: &Fused,
    values: &[GpuTensor],
) -> Result<()> {
    match (fused, *op) {
        (Fused::Absorbed, _) => Ok(()),
        (Fused::PoolFromPartials(partials), Op::CoordPool(spec)) => {
            k::coord::coord_pool_finish(rec, ins[0].shape(), partials, out, &spec)
        }
        (
            Fused::PoolingConv(partials),
            Op::Conv {
                spec,
                bias,
                residual,
            },
        ) => {
            let (weight, ep) = conv_operands(ins, bias, residual)?;
            k::conv::conv2d_pooling(rec, ins[0], weight, &ep, out, &spec, partials)
        }
        (
            Fused::GatedConv { x, gates },
            Op::Conv {
                spec,
                bias,
                residual,
            },
        ) => {
            let (weight, ep) = conv_operands(ins, bias, residual)?;
            let (x, gates) = (&values[*x], &values[*gates]);
            k::conv::conv2d_gated(rec, x, weight, &ep, out, &spec, gates)
        }
        (
            Fused::Excite {
                partials,
                x,
                conv,
                weight,
                bias,
            },
            Op::CoordGates(spec),
        ) => {
            let (x, weight, bias) = (values[*x].shape(), &values[*weight], &values[*bias]);
            let gates = (ins[1], ins[2]);
            k::coord::coord_excite(rec, x, partials, weight, bias, conv, gates, out, &spec)
        }
        (
            Fused::ConcatComputing {
                index,
                producer,
                inputs,
            },
            Op::Concat(concat),
        ) => {
            let operands: Vec<&GpuTensor> = inputs.iter().map(|&v| &values[v]).collect();
            encode_into_concat(rec, producer, &operands, ins, *index, out, &concat)
        }
        _ => Err(Error::Invalid(format!(
            "no such fused form of {}: a fusion pass bug",
            op.kind()
        ))),
    }
}

/// A concatenation (`ins`, into `out`) whose input `index` `producer` computes into its slot
/// from `operands`.
fn encode_into_concat(
    rec: &mut Recorder,
    producer: &Op,
    operands: &[&GpuTensor],
    ins: &[&GpuTensor],
    index: usize,
    out: &GpuTensor,
    concat: &Concat,
) -> Result<()> {
    let mut o = Operands::after_x(operands);
    match *producer {
        Op::Subtraction(s) => k::san::concat_with_subtraction(
            rec,
            operands[0],
            operands[1],
            &s,
            ins,
            index,
            out,
            concat,
        ),
        Op::PatchGather(spec) => {
            let scale_shift = o.take_pair_if(spec.epilogue.affine)?.map(|(s, t)| (*s, *t));
            k::san::concat_with_patch_gather(
                rec,
                operands[0],
                scale_shift,
                &spec,
                ins,
                index,
                out,
                concat,
            )
        }
        _ => Err(Error::Invalid(format!(
            "{} cannot compute a concatenation's input: a fusion pass bug",
            producer.kind()
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gpu::GpuOptions;

    /// The demo reads the attention maps on some inferences and not on others; neither may
    /// replan and reallocate the buffers (the output buffer would change).
    #[test]
    fn reading_the_taps_or_not_keeps_the_buffers() {
        let gpu = Gpu::new_blocking(&GpuOptions::default())
            .expect("GPU tests need an adapter (lavapipe in CI)");
        let shape = vec![1, 6, 9, 11];
        let graph = crate::models::build_synthetic(
            "triplet_attention",
            3,
            std::slice::from_ref(&shape),
            &Default::default(),
        )
        .unwrap();
        let model = GpuGraph::new(&gpu, &graph).unwrap();
        let x = Tensor::from_fn(&shape, |i| (i % 17) as f32 / 8.0 - 1.0);
        let output_buffer = || {
            let mut rec = Recorder::new(&gpu);
            let out = model
                .record(&gpu, &mut rec, std::slice::from_ref(&x))
                .unwrap();
            rec.submit().unwrap();
            out.buffer
        };
        let taps = graph.tap_values();
        let with_taps = || {
            let run = model.run_keeping(&gpu, std::slice::from_ref(&x), &taps);
            pollster::block_on(run).unwrap();
        };
        with_taps();
        let first = output_buffer();
        with_taps();
        assert!(first == output_buffer());
    }
}
