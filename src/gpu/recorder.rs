//! Records the dispatches of one inference as a list of steps, which `Recording` turns into
//! device objects once (one uniform buffer for every step's parameters, one bind group per
//! dispatch) and then encodes into one command buffer as often as it is run.

use super::buffer::DeviceBuffer;
use super::{BindingElem, Constants, Gpu, GpuTensor, Kernel, WgslStruct, UNIFORM_WINDOW_BYTES};
use crate::error::{Error, Result};
use crate::kernels::Layout;

/// Threads per workgroup of every 1-D kernel; `WG` in `shaders/common.wgsl` says the same.
pub const WG: u32 = 64;

/// A dispatch as recorded: what its bind group will hold.
struct PendingDispatch {
    pipeline: wgpu::ComputePipeline,
    kernel: &'static str,
    /// The kernel's `Params` bytes, padded to 16-byte rows.
    params: Vec<u8>,
    /// Tensor bindings 1..: buffer, offset and size.
    buffers: Vec<(DeviceBuffer, u64, u64)>,
    workgroups: [u32; 3],
    /// The model part (node name) that issued it.
    part: String,
    label: String,
    variant: String,
    bytes: u64,
}

/// A buffer-to-buffer copy between dispatches (batch chunks of tensors larger than one binding).
#[derive(Clone)]
struct BufferCopy {
    src: DeviceBuffer,
    src_offset: u64,
    dst: DeviceBuffer,
    dst_offset: u64,
    bytes: u64,
}

enum PendingStep {
    Dispatch(PendingDispatch),
    Copy(BufferCopy),
}

/// A dispatch ready to encode. (The label and bytes serve profiles, which wasm lacks.)
#[cfg_attr(target_arch = "wasm32", allow(dead_code))]
struct Dispatch {
    pipeline: wgpu::ComputePipeline,
    bind_group: wgpu::BindGroup,
    /// The buffers the bind group binds, held as long as it is (a scratch buffer of a split
    /// batch has no other owner, and a browser destroys a buffer whose handle is dropped).
    _bound: Vec<DeviceBuffer>,
    workgroups: [u32; 3],
    label: String,
    variant: String,
    bytes: u64,
}

enum Step {
    Dispatch(Dispatch),
    Copy(BufferCopy),
}

/// GPU time of one dispatch, from timestamp queries.
#[derive(Clone, Debug)]
pub struct DispatchTime {
    /// `<model part> <kernel>`
    pub label: String,
    /// The kernel with its specialization (`ConvKernel`'s name for a conv).
    pub variant: String,
    pub ms: f64,
    /// The bytes of the tensors it binds: its memory traffic if it reads or writes each once.
    pub bytes: u64,
}

/// Two timestamps per dispatch, as many dispatches as one query set holds.
#[cfg(not(target_arch = "wasm32"))]
const DISPATCHES_PER_SET: u32 = wgpu::QUERY_SET_MAX_QUERIES / 2;

/// Collects the dispatches of one inference (and the copies between them), in order.
pub struct Recorder<'g> {
    gpu: &'g Gpu,
    steps: Vec<PendingStep>,
    dispatches: usize,
    label: String,
    /// The layout every small kernel recorded here runs on, whatever the device would choose.
    layout: Option<Layout>,
}

/// Recorded steps turned into device objects: encoded and submitted any number of times
/// without creating another object. Holding it keeps every buffer it binds alive.
pub struct Recording {
    steps: Vec<Step>,
    /// Every dispatch's parameters, each at an offset its binding may start at.
    _uniform: Option<DeviceBuffer>,
}

impl<'g> Recorder<'g> {
    pub fn new(gpu: &'g Gpu) -> Self {
        Self {
            gpu,
            steps: Vec::new(),
            dispatches: 0,
            label: String::new(),
            layout: None,
        }
    }

    /// Makes every small kernel recorded from now on run on `layout` (the tuner timing one
    /// variant), or on the device's choice again with `None`.
    pub fn force_layout(&mut self, layout: Option<Layout>) {
        self.layout = layout;
    }

    pub fn forced_layout(&self) -> Option<Layout> {
        self.layout
    }

    /// Names the model part whose dispatches follow (shown in profiles).
    pub fn set_label(&mut self, label: &str) {
        self.label.clear();
        self.label.push_str(label);
    }

    pub fn gpu(&self) -> &'g Gpu {
        self.gpu
    }

    /// How many dispatches were recorded so far.
    pub fn dispatch_count(&self) -> usize {
        self.dispatches
    }

    /// Workgroup counts that cover `threads` invocations of a `WG`-wide kernel, spilling into
    /// the y dimension past the device's per-dimension limit (kernels use `flat_id`).
    pub fn grid(&self, threads: u64) -> Result<[u32; 3]> {
        let groups = threads.div_ceil(WG as u64).max(1);
        let max = self.gpu.limits().max_compute_workgroups_per_dimension as u64;
        let x = groups.min(max);
        let y = groups.div_ceil(x);
        if y > max {
            return Err(Error::Limit {
                what: format!("a dispatch of {threads} invocations"),
                needed: groups,
                limit: max * max,
                unit: "workgroups",
            });
        }
        Ok([x as u32, y as u32, 1])
    }

    /// Records one dispatch of `kernel`. Binding 0 is the uniform `params`, which must be the
    /// kernel's own `Params` type; bindings 1.. are `buffers`, in the order the kernel declares.
    pub fn dispatch<P: WgslStruct>(
        &mut self,
        kernel: &'static Kernel,
        constants: &Constants,
        params: &P,
        buffers: &[&GpuTensor],
        workgroups: [u32; 3],
    ) -> Result<()> {
        let variant = kernel.name.to_string();
        self.dispatch_variant(variant, kernel, constants, params, buffers, workgroups)
    }

    /// `dispatch`, naming the variant of `kernel` it runs (profiles and `gaze bench` show it).
    pub fn dispatch_variant<P: WgslStruct>(
        &mut self,
        variant: String,
        kernel: &'static Kernel,
        constants: &Constants,
        params: &P,
        buffers: &[&GpuTensor],
        workgroups: [u32; 3],
    ) -> Result<()> {
        if P::LAYOUT.name != kernel.params.name || buffers.len() != kernel.bindings.len() {
            return Err(Error::Invalid(format!(
                "kernel `{}` takes {} and {} bindings, but was given {} and {} (a launcher bug)",
                kernel.name,
                kernel.params.name,
                kernel.bindings.len(),
                P::LAYOUT.name,
                buffers.len()
            )));
        }
        let pipeline = self.gpu.pipeline(kernel, constants)?;
        for t in buffers {
            if t.bytes() > self.gpu.max_binding_bytes() {
                return Err(Error::Limit {
                    what: format!(
                        "kernel `{}` binding a tensor of shape {:?}",
                        kernel.name,
                        t.shape()
                    ),
                    needed: t.bytes(),
                    limit: self.gpu.max_binding_bytes(),
                    unit: "bytes",
                });
            }
        }
        // Uniform bindings are sized in 16-byte rows.
        let mut bytes = bytemuck::bytes_of(params).to_vec();
        bytes.resize(bytes.len().div_ceil(16).max(1) * 16, 0);
        let label = if self.label.is_empty() {
            kernel.name.to_string()
        } else {
            format!("{} {}", self.label, kernel.name)
        };
        self.steps.push(PendingStep::Dispatch(PendingDispatch {
            pipeline,
            kernel: kernel.name,
            params: bytes,
            buffers: buffers
                .iter()
                .zip(kernel.bindings)
                .map(|(t, binding)| bound_range(self.gpu, kernel, t, binding.elem))
                .collect::<Result<_>>()?,
            workgroups,
            part: self.label.clone(),
            label,
            variant,
            bytes: distinct_bytes(buffers),
        }));
        self.dispatches += 1;
        Ok(())
    }

    /// Every dispatch recorded so far: its label (`<model part> <kernel>`) and variant.
    pub fn dispatch_variants(&self) -> Vec<(String, String)> {
        self.steps
            .iter()
            .filter_map(|s| match s {
                PendingStep::Dispatch(d) => Some((d.label.clone(), d.variant.clone())),
                PendingStep::Copy(_) => None,
            })
            .collect()
    }

    /// Every dispatch recorded so far: the model part (node name) that issued it and the
    /// bytes of the tensors it binds.
    pub fn dispatch_bytes(&self) -> Vec<(String, u64)> {
        self.steps
            .iter()
            .filter_map(|s| match s {
                PendingStep::Dispatch(d) => Some((d.part.clone(), d.bytes)),
                PendingStep::Copy(_) => None,
            })
            .collect()
    }

    /// Records a copy of `bytes` bytes between device tensors (offsets in bytes, from each
    /// tensor's start).
    pub fn copy(
        &mut self,
        src: &GpuTensor,
        src_offset: u64,
        dst: &GpuTensor,
        dst_offset: u64,
        bytes: u64,
    ) -> Result<()> {
        let (from, to) = (src.offset + src_offset, dst.offset + dst_offset);
        let word = wgpu::COPY_BUFFER_ALIGNMENT;
        if [from, to, bytes].iter().any(|v| !v.is_multiple_of(word)) {
            return Err(Error::Invalid(format!(
                "cannot copy {bytes} bytes of a tensor of shape {:?} from byte {from} to byte \
                 {to}: buffer copies move whole {word}-byte words (an odd number of f16 values \
                 per image; use --precision f32 for this shape)",
                src.shape()
            )));
        }
        self.steps.push(PendingStep::Copy(BufferCopy {
            src: src.buffer.clone(),
            src_offset: from,
            dst: dst.buffer.clone(),
            dst_offset: to,
            bytes,
        }));
        Ok(())
    }

    /// Creates the recording's device objects: one uniform buffer holding every dispatch's
    /// parameters, each at an offset a binding may start at, and one bind group per dispatch.
    pub fn finish(self) -> Result<Recording> {
        let gpu = self.gpu;
        let align = u64::from(gpu.limits().min_uniform_buffer_offset_alignment).max(16);
        let mut params = Vec::new();
        let mut offsets = Vec::new();
        for step in &self.steps {
            if let PendingStep::Dispatch(d) = step {
                params.resize((params.len() as u64).next_multiple_of(align) as usize, 0);
                offsets.push(params.len() as u64);
                params.extend_from_slice(&d.params);
            }
        }
        let uniform = (!params.is_empty())
            .then(|| gpu.buffer_with(Some("gaze params"), &params, wgpu::BufferUsages::UNIFORM));
        let mut offsets = offsets.into_iter();
        let mut steps = Vec::with_capacity(self.steps.len());
        for step in self.steps {
            steps.push(match step {
                PendingStep::Copy(c) => Step::Copy(c),
                PendingStep::Dispatch(d) => {
                    let (Some(uniform), Some(offset)) = (&uniform, offsets.next()) else {
                        return Err(Error::Gpu("a dispatch without parameters".into()));
                    };
                    Step::Dispatch(bind(gpu, d, uniform, offset)?)
                }
            });
        }
        Ok(Recording {
            steps,
            _uniform: uniform,
        })
    }

    /// Submits everything recorded as one command buffer.
    pub fn submit(self) -> Result<()> {
        let gpu = self.gpu;
        self.finish()?.submit(gpu)
    }
}

/// What a binding of `t` covers: only the tensor's own bytes (a planned buffer may be larger
/// than this use of it), or a whole uniform window from its start (`GpuTensor::fits_window`).
fn bound_range(
    gpu: &Gpu,
    kernel: &Kernel,
    t: &GpuTensor,
    elem: BindingElem,
) -> Result<(DeviceBuffer, u64, u64)> {
    if elem != BindingElem::Window {
        return Ok((t.buffer.clone(), t.offset, t.word_bytes()));
    }
    if let Some(why) = t.window_problem(gpu) {
        return Err(Error::Invalid(format!(
            "kernel `{}` reads a tensor of shape {:?} through a {UNIFORM_WINDOW_BYTES}-byte \
             uniform window, but it {why} (a launcher bug)",
            kernel.name,
            t.shape()
        )));
    }
    Ok((t.buffer.clone(), t.offset, UNIFORM_WINDOW_BYTES))
}

/// The bind group of a recorded dispatch: its parameters at `offset` of `uniform`, then its
/// storage buffers.
fn bind(gpu: &Gpu, d: PendingDispatch, uniform: &DeviceBuffer, offset: u64) -> Result<Dispatch> {
    let mut entries = vec![wgpu::BindGroupEntry {
        binding: 0,
        resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
            buffer: uniform,
            offset,
            size: wgpu::BufferSize::new(d.params.len() as u64),
        }),
    }];
    entries.extend(
        d.buffers
            .iter()
            .enumerate()
            .map(|(i, (buffer, offset, size))| wgpu::BindGroupEntry {
                binding: i as u32 + 1,
                resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                    buffer,
                    offset: *offset,
                    size: wgpu::BufferSize::new(*size),
                }),
            }),
    );
    // The bind group, and the layout it asks the pipeline for (a new object in a browser).
    gpu.count_object();
    gpu.count_object();
    let bind_group = gpu.device.create_bind_group(&wgpu::BindGroupDescriptor {
        label: Some(d.kernel),
        layout: &d.pipeline.get_bind_group_layout(0),
        entries: &entries,
    });
    Ok(Dispatch {
        pipeline: d.pipeline,
        bind_group,
        _bound: d.buffers.into_iter().map(|(buffer, ..)| buffer).collect(),
        workgroups: d.workgroups,
        label: d.label,
        variant: d.variant,
        bytes: d.bytes,
    })
}

impl BufferCopy {
    fn encode(&self, encoder: &mut wgpu::CommandEncoder) {
        encoder.copy_buffer_to_buffer(
            &self.src,
            self.src_offset,
            &self.dst,
            self.dst_offset,
            self.bytes,
        );
    }
}

impl Recording {
    /// Encodes every step: runs of dispatches in one compute pass each, copies between them.
    pub fn encode(&self, encoder: &mut wgpu::CommandEncoder) {
        let mut i = 0;
        while i < self.steps.len() {
            match &self.steps[i] {
                Step::Copy(c) => {
                    c.encode(encoder);
                    i += 1;
                }
                Step::Dispatch(_) => {
                    let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                        label: Some("gaze kernels"),
                        timestamp_writes: None,
                    });
                    let mut current: Option<&wgpu::ComputePipeline> = None;
                    while let Some(Step::Dispatch(d)) = self.steps.get(i) {
                        // Runs of one kernel (a conv's batch chunks, SAN's blocks) set it once.
                        if current != Some(&d.pipeline) {
                            pass.set_pipeline(&d.pipeline);
                            current = Some(&d.pipeline);
                        }
                        pass.set_bind_group(0, &d.bind_group, &[]);
                        let [x, y, z] = d.workgroups;
                        pass.dispatch_workgroups(x, y, z);
                        i += 1;
                    }
                }
            }
        }
    }

    /// Encodes and submits the recording as one command buffer.
    pub fn submit(&self, gpu: &Gpu) -> Result<()> {
        let mut encoder = gpu
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                label: Some("gaze inference"),
            });
        self.encode(&mut encoder);
        gpu.queue.submit([encoder.finish()]);
        gpu.check_lost()
    }

    /// Submits the recording with every dispatch in its own pass bracketed by timestamps,
    /// waits, and returns the GPU time of each.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn submit_profiled(&self, gpu: &Gpu) -> Result<Vec<DispatchTime>> {
        if !gpu.features().contains(wgpu::Features::TIMESTAMP_QUERY) {
            return Err(Error::Gpu(format!(
                "`{}` has no timestamp queries, so per-op GPU times cannot be measured",
                gpu.adapter_name()
            )));
        }
        let mut encoder = gpu
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                label: Some("gaze inference (profiled)"),
            });
        let mut sets: Vec<wgpu::QuerySet> = Vec::new();
        let mut labels = Vec::new();
        for step in &self.steps {
            let d = match step {
                Step::Copy(c) => {
                    c.encode(&mut encoder);
                    continue;
                }
                Step::Dispatch(d) => d,
            };
            let index = labels.len() as u32;
            if index.is_multiple_of(DISPATCHES_PER_SET) {
                gpu.count_object();
                sets.push(gpu.device.create_query_set(&wgpu::QuerySetDescriptor {
                    label: Some("gaze profile"),
                    ty: wgpu::QueryType::Timestamp,
                    count: DISPATCHES_PER_SET * 2,
                }));
            }
            let Some(set) = sets.last() else {
                return Err(Error::Gpu("no query set".into()));
            };
            let slot = (index % DISPATCHES_PER_SET) * 2;
            let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some("gaze kernel (profiled)"),
                timestamp_writes: Some(wgpu::ComputePassTimestampWrites {
                    query_set: set,
                    beginning_of_pass_write_index: Some(slot),
                    end_of_pass_write_index: Some(slot + 1),
                }),
            });
            pass.set_pipeline(&d.pipeline);
            pass.set_bind_group(0, &d.bind_group, &[]);
            let [x, y, z] = d.workgroups;
            pass.dispatch_workgroups(x, y, z);
            drop(pass);
            labels.push((d.label.clone(), d.variant.clone(), d.bytes));
        }
        let count = labels.len() as u64;
        let bytes = (count * 2 * 8).max(8);
        let usage = wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC;
        let resolve = gpu.create_buffer(&wgpu::BufferDescriptor {
            label: Some("timestamps"),
            size: bytes,
            usage,
            mapped_at_creation: false,
        });
        let readback = gpu.create_buffer(&wgpu::BufferDescriptor {
            label: Some("timestamps readback"),
            size: bytes,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        for (i, set) in sets.iter().enumerate() {
            let first = i as u64 * DISPATCHES_PER_SET as u64;
            let queries = ((count - first).min(DISPATCHES_PER_SET as u64) * 2) as u32;
            encoder.resolve_query_set(set, 0..queries, &resolve, first * 16);
        }
        encoder.copy_buffer_to_buffer(&resolve, 0, &readback, 0, bytes);
        gpu.queue.submit([encoder.finish()]);
        let request = super::buffer::request_map(&readback);
        gpu.wait()?;
        let ticks: Vec<u64> =
            pollster::block_on(gpu.mapped(&readback, request, count * 16, "timestamp readback"))?;
        let ns_per_tick = gpu.queue.get_timestamp_period() as f64;
        Ok(labels
            .into_iter()
            .zip(ticks.chunks_exact(2))
            .map(|((label, variant, bytes), t)| DispatchTime {
                label,
                variant,
                ms: t[1].saturating_sub(t[0]) as f64 * ns_per_tick / 1e6,
                bytes,
            })
            .collect())
    }
}

/// The bytes of the distinct tensors among `buffers`: a dispatch's memory traffic if it reads
/// or writes each once (a tensor bound twice, such as the stand-in for an absent operand, is
/// one tensor).
fn distinct_bytes(buffers: &[&GpuTensor]) -> u64 {
    let mut seen: Vec<(&DeviceBuffer, u64, u64)> = Vec::with_capacity(buffers.len());
    for t in buffers {
        let key = (&t.buffer, t.offset, t.bytes());
        if !seen.contains(&key) {
            seen.push(key);
        }
    }
    seen.iter().map(|k| k.2).sum()
}
