//! Records the dispatches of one inference into a single command buffer.

use wgpu::util::DeviceExt;

use super::{Constants, Gpu, GpuTensor, Kernel};
use crate::error::{Error, Result};

/// Threads per workgroup of every 1-D kernel; `WG` in `shaders/common.wgsl` says the same.
pub const WG: u32 = 64;

struct Dispatch {
    pipeline: wgpu::ComputePipeline,
    bind_group: wgpu::BindGroup,
    workgroups: [u32; 3],
}

/// Collects dispatches (and the copies between them) and submits them as one command buffer.
pub struct Recorder<'g> {
    gpu: &'g Gpu,
    encoder: wgpu::CommandEncoder,
    pending: Vec<Dispatch>,
    dispatches: usize,
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
        }
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

    /// Records one dispatch of `kernel`. Binding 0 is the uniform `params` (u32 words; f32 values
    /// as their bits); bindings 1.. are `buffers` in order.
    pub fn dispatch(
        &mut self,
        kernel: &Kernel,
        constants: &Constants,
        params: &[u32],
        buffers: &[&GpuTensor],
        workgroups: [u32; 3],
    ) -> Result<()> {
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
        let mut words = params.to_vec();
        words.resize(params.len().div_ceil(4).max(1) * 4, 0);
        let uniform = self
            .gpu
            .device
            .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some(kernel.name),
                contents: bytemuck::cast_slice(&words),
                usage: wgpu::BufferUsages::UNIFORM,
            });
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
                        offset: 0,
                        size: wgpu::BufferSize::new(t.bytes().max(4)),
                    }),
                }),
        );
        let bind_group = self
            .gpu
            .device
            .create_bind_group(&wgpu::BindGroupDescriptor {
                label: Some(kernel.name),
                layout: &pipeline.get_bind_group_layout(0),
                entries: &entries,
            });
        self.pending.push(Dispatch {
            pipeline,
            bind_group,
            workgroups,
        });
        self.dispatches += 1;
        Ok(())
    }

    /// Records a copy of `bytes` bytes between device tensors (offsets in bytes).
    pub fn copy(
        &mut self,
        src: &GpuTensor,
        src_offset: u64,
        dst: &GpuTensor,
        dst_offset: u64,
        bytes: u64,
    ) {
        self.flush();
        self.encoder
            .copy_buffer_to_buffer(&src.buffer, src_offset, &dst.buffer, dst_offset, bytes);
    }

    fn flush(&mut self) {
        if self.pending.is_empty() {
            return;
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

    /// Submits everything recorded as one command buffer.
    pub fn submit(mut self) -> Result<()> {
        self.flush();
        self.gpu.queue.submit([self.encoder.finish()]);
        self.gpu.check_lost()
    }
}
