//! Records the dispatches of one inference into a single command buffer.

use super::{Constants, Gpu, GpuTensor, Kernel, WgslStruct};
use crate::error::{Error, Result};

/// Threads per workgroup of every 1-D kernel; `WG` in `shaders/common.wgsl` says the same.
pub const WG: u32 = 64;

struct Dispatch {
    pipeline: wgpu::ComputePipeline,
    bind_group: wgpu::BindGroup,
    workgroups: [u32; 3],
    label: String,
    bytes: u64,
}

/// Timestamp queries around every dispatch (each then gets its own compute pass).
struct Profiler {
    sets: Vec<wgpu::QuerySet>,
    /// Label and tensor bytes of each timed dispatch.
    labels: Vec<(String, u64)>,
}

/// Two timestamps per dispatch, as many dispatches as one query set holds.
const DISPATCHES_PER_SET: u32 = wgpu::QUERY_SET_MAX_QUERIES / 2;

/// GPU time of one dispatch, from timestamp queries.
#[derive(Clone, Debug)]
pub struct DispatchTime {
    /// `<model part> <kernel>`
    pub label: String,
    pub ms: f64,
    /// The bytes of the tensors it binds: its memory traffic if it reads or writes each once.
    pub bytes: u64,
}

/// Collects dispatches (and the copies between them) and submits them as one command buffer.
pub struct Recorder<'g> {
    gpu: &'g Gpu,
    encoder: wgpu::CommandEncoder,
    pending: Vec<Dispatch>,
    dispatches: usize,
    label: String,
    profiler: Option<Profiler>,
}

impl<'g> Recorder<'g> {
    pub fn new(gpu: &'g Gpu) -> Self {
        let encoder = gpu
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                label: Some("gaze inference"),
            });
        Self {
            gpu,
            encoder,
            pending: Vec::new(),
            dispatches: 0,
            label: String::new(),
            profiler: None,
        }
    }

    /// A recorder that times every dispatch with timestamp queries (`submit_profiled`).
    pub fn with_profiling(gpu: &'g Gpu) -> Result<Self> {
        if !gpu.features().contains(wgpu::Features::TIMESTAMP_QUERY) {
            return Err(Error::Gpu(format!(
                "`{}` has no timestamp queries, so per-op GPU times cannot be measured",
                gpu.adapter_name()
            )));
        }
        let mut rec = Self::new(gpu);
        rec.profiler = Some(Profiler {
            sets: Vec::new(),
            labels: Vec::new(),
        });
        Ok(rec)
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
            });
        }
        Ok([x as u32, y as u32, 1])
    }

    /// Records one dispatch of `kernel`. Binding 0 is the uniform `params`, which must be the
    /// kernel's own `Params` type; bindings 1.. are `buffers`, in the order the kernel declares.
    pub fn dispatch<P: WgslStruct>(
        &mut self,
        kernel: &Kernel,
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
                });
            }
        }
        // Uniform buffers are sized in 16-byte rows.
        let mut bytes = bytemuck::bytes_of(params).to_vec();
        bytes.resize(bytes.len().div_ceil(16).max(1) * 16, 0);
        let uniform = self
            .gpu
            .buffer_with(Some(kernel.name), &bytes, wgpu::BufferUsages::UNIFORM);
        let mut entries = vec![wgpu::BindGroupEntry {
            binding: 0,
            resource: uniform.as_entire_binding(),
        }];
        entries.extend(
            buffers
                .iter()
                .enumerate()
                .map(|(i, t)| wgpu::BindGroupEntry {
                    binding: i as u32 + 1,
                    // Only the tensor's own bytes: a planned buffer may be larger than this use of it.
                    resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                        buffer: &t.buffer,
                        offset: t.offset,
                        size: wgpu::BufferSize::new(t.word_bytes()),
                    }),
                }),
        );
        // The bind group, and the layout it asks the pipeline for (a new object in a browser).
        self.gpu.count_object();
        self.gpu.count_object();
        let bind_group = self
            .gpu
            .device
            .create_bind_group(&wgpu::BindGroupDescriptor {
                label: Some(kernel.name),
                layout: &pipeline.get_bind_group_layout(0),
                entries: &entries,
            });
        let label = if self.label.is_empty() {
            kernel.name.to_string()
        } else {
            format!("{} {}", self.label, kernel.name)
        };
        self.pending.push(Dispatch {
            pipeline,
            bind_group,
            workgroups,
            label,
            bytes: buffers.iter().map(|t| t.bytes()).sum(),
        });
        self.dispatches += 1;
        Ok(())
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
        self.flush();
        self.encoder
            .copy_buffer_to_buffer(&src.buffer, from, &dst.buffer, to, bytes);
        Ok(())
    }

    fn flush(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        if self.profiler.is_some() {
            return self.flush_profiled();
        }
        let mut pass = self
            .encoder
            .begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some("gaze kernels"),
                timestamp_writes: None,
            });
        for d in self.pending.drain(..) {
            pass.set_pipeline(&d.pipeline);
            pass.set_bind_group(0, &d.bind_group, &[]);
            let [x, y, z] = d.workgroups;
            pass.dispatch_workgroups(x, y, z);
        }
    }

    /// Each dispatch in its own pass, bracketed by timestamps.
    fn flush_profiled(&mut self) {
        let Some(profiler) = self.profiler.as_mut() else {
            return;
        };
        for d in self.pending.drain(..) {
            let index = profiler.labels.len() as u32;
            if index.is_multiple_of(DISPATCHES_PER_SET) {
                self.gpu.count_object();
                profiler
                    .sets
                    .push(self.gpu.device.create_query_set(&wgpu::QuerySetDescriptor {
                        label: Some("gaze profile"),
                        ty: wgpu::QueryType::Timestamp,
                        count: DISPATCHES_PER_SET * 2,
                    }));
            }
            let Some(set) = profiler.sets.last() else {
                return;
            };
            let slot = (index % DISPATCHES_PER_SET) * 2;
            let mut pass = self
                .encoder
                .begin_compute_pass(&wgpu::ComputePassDescriptor {
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
            profiler.labels.push((d.label, d.bytes));
        }
    }

    /// Submits like `submit`, then waits and returns the GPU time of every dispatch.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn submit_profiled(mut self) -> Result<Vec<DispatchTime>> {
        self.flush();
        let profiler = self
            .profiler
            .take()
            .ok_or_else(|| Error::Gpu("this recorder does not profile".into()))?;
        let count = profiler.labels.len() as u64;
        let bytes = (count * 2 * 8).max(8);
        let usage = wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC;
        self.gpu.count_object();
        self.gpu.count_object();
        let resolve = self.gpu.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("timestamps"),
            size: bytes,
            usage,
            mapped_at_creation: false,
        });
        let readback = self.gpu.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("timestamps readback"),
            size: bytes,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        for (i, set) in profiler.sets.iter().enumerate() {
            let first = i as u64 * DISPATCHES_PER_SET as u64;
            let queries = ((count - first).min(DISPATCHES_PER_SET as u64) * 2) as u32;
            self.encoder
                .resolve_query_set(set, 0..queries, &resolve, first * 16);
        }
        self.encoder
            .copy_buffer_to_buffer(&resolve, 0, &readback, 0, bytes);
        self.gpu.queue.submit([self.encoder.finish()]);
        let request = super::buffer::request_map(&readback);
        self.gpu.wait()?;
        let ticks: Vec<u64> = pollster::block_on(self.gpu.mapped(
            &readback,
            request,
            count * 16,
            "timestamp readback",
        ))?;
        let ns_per_tick = self.gpu.queue.get_timestamp_period() as f64;
        Ok(profiler
            .labels
            .into_iter()
            .zip(ticks.chunks_exact(2))
            .map(|((label, bytes), t)| DispatchTime {
                label,
                ms: t[1].saturating_sub(t[0]) as f64 * ns_per_tick / 1e6,
                bytes,
            })
            .collect())
    }

    /// Submits everything recorded as one command buffer.
    pub fn submit(mut self) -> Result<()> {
        self.flush();
        self.gpu.queue.submit([self.encoder.finish()]);
        self.gpu.check_lost()
    }
}
