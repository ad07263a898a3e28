//! Tensors on the device, upload and readback.

use half::slice::HalfFloatSliceExt;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use super::{Gpu, Precision};
use crate::error::{Error, Result};
use crate::tensor::{numel, Tensor};

/// Bytes of every gaze buffer alive, on any device: a debug counter (the web API's memory test
/// checks that sessions give back what they took).
static LIVE_BYTES: AtomicU64 = AtomicU64::new(0);

/// The bytes of every device buffer gaze holds now.
pub fn live_buffer_bytes() -> u64 {
    LIVE_BYTES.load(Ordering::Relaxed)
}

/// A device buffer that frees its memory as soon as its last handle drops. Dropping a wgpu
/// buffer in the browser only lets the garbage collector free it, some time later; a session
/// that is disposed of must give its memory back at once. Cloning shares the buffer.
#[derive(Clone, Debug)]
pub struct DeviceBuffer(Arc<Owned>);

#[derive(Debug)]
struct Owned(wgpu::Buffer);

impl Drop for Owned {
    fn drop(&mut self) {
        LIVE_BYTES.fetch_sub(self.0.size(), Ordering::Relaxed);
        self.0.destroy();
    }
}

impl std::ops::Deref for DeviceBuffer {
    type Target = wgpu::Buffer;
    fn deref(&self) -> &wgpu::Buffer {
        &self.0 .0
    }
}

impl PartialEq for DeviceBuffer {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Gpu {
    /// Every gaze buffer is made here: counted as a device object and in the live bytes.
    pub(crate) fn create_buffer(&self, desc: &wgpu::BufferDescriptor) -> DeviceBuffer {
        self.count_object();
        LIVE_BYTES.fetch_add(desc.size, Ordering::Relaxed);
        // Send and Sync natively; in the browser wgpu's handles are neither, on one thread.
        #[allow(clippy::arc_with_non_send_sync)]
        DeviceBuffer(Arc::new(Owned(self.device.create_buffer(desc))))
    }
}

/// A pending `map_async` of a readback buffer (`Gpu::mapped` completes it).
pub(crate) type MapRequest =
    futures_channel::oneshot::Receiver<std::result::Result<(), wgpu::BufferAsyncError>>;

/// Asks to map a `MAP_READ` buffer whose copies have been submitted.
pub(crate) fn request_map(buffer: &wgpu::Buffer) -> MapRequest {
    let (sender, receiver) = futures_channel::oneshot::channel();
    buffer.map_async(wgpu::MapMode::Read, .., move |r| {
        let _ = sender.send(r);
    });
    receiver
}

/// A tensor in a storage buffer, from byte `offset` on, its elements stored at `precision`.
/// Cloning shares the buffer.
#[derive(Clone, Debug)]
pub struct GpuTensor {
    pub(crate) buffer: DeviceBuffer,
    pub(crate) offset: u64,
    shape: Vec<usize>,
    precision: Precision,
}

impl GpuTensor {
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    pub fn numel(&self) -> usize {
        numel(&self.shape)
    }

    pub fn precision(&self) -> Precision {
        self.precision
    }

    pub fn bytes(&self) -> u64 {
        self.numel() as u64 * self.precision.bytes()
    }

    /// Why a kernel cannot read this tensor through a uniform window (`BindingElem::Window`,
    /// the `UNIFORM_WINDOW_BYTES` from its start), if it cannot: the window must hold it at
    /// f32, start where a uniform binding may, and lie inside its buffer.
    pub(crate) fn window_problem(&self, gpu: &super::Gpu) -> Option<&'static str> {
        let window = super::UNIFORM_WINDOW_BYTES;
        let align = u64::from(gpu.limits().min_uniform_buffer_offset_alignment);
        let end = self.offset.checked_add(window);
        [
            (self.precision != Precision::F32, "is not stored as f32"),
            (self.bytes() > window, "is larger than the window"),
            (
                !self.offset.is_multiple_of(align),
                "starts where no uniform binding may",
            ),
            (
                end.is_none_or(|e| e > self.buffer.size()),
                "lies too near its buffer's end",
            ),
        ]
        .into_iter()
        .find_map(|(bad, why)| bad.then_some(why))
    }

    /// Whether a kernel can read this tensor through a uniform window (`window_problem`).
    pub fn fits_window(&self, gpu: &super::Gpu) -> bool {
        self.window_problem(gpu).is_none()
    }

    /// Bytes of one image (one index of the leading, batch axis).
    pub(crate) fn image_bytes(&self) -> u64 {
        let n = self.shape.first().copied().unwrap_or(1).max(1);
        self.bytes() / n as u64
    }

    /// `bytes()` rounded up to whole 4-byte words: what a copy of the tensor moves. Buffers
    /// are allocated in words, so the padding is always there.
    pub(crate) fn word_bytes(&self) -> u64 {
        self.precision.stored_bytes(self.numel() as u64)
    }

    pub fn buffer(&self) -> &wgpu::Buffer {
        &self.buffer
    }

    /// Bytes the underlying buffer holds from this tensor's offset on (at least `bytes()`).
    pub fn capacity(&self) -> u64 {
        self.buffer.size() - self.offset
    }

    /// The same buffer seen with another shape that fits in it (reshape, or a planned buffer
    /// reused by a smaller tensor).
    pub fn view(&self, shape: &[usize]) -> Result<GpuTensor> {
        let needed = (numel(shape) as u64).saturating_mul(self.precision.bytes());
        if needed > self.capacity() {
            return Err(Error::Invalid(format!(
                "a view of shape {shape:?} needs {needed} bytes, the buffer has {}",
                self.capacity()
            )));
        }
        Ok(GpuTensor {
            buffer: self.buffer.clone(),
            offset: self.offset,
            shape: shape.to_vec(),
            precision: self.precision,
        })
    }

    /// Images `start..start + count` of this batch, in place: `None` unless their first byte
    /// lies on a multiple of `align` (a binding offset must) and they lie inside the batch.
    pub(crate) fn images(&self, start: usize, count: usize, align: u64) -> Option<GpuTensor> {
        let n = *self.shape.first()?;
        if count == 0 || start + count > n {
            return None;
        }
        let offset = self.offset + start as u64 * self.image_bytes();
        let mut shape = self.shape.clone();
        shape[0] = count;
        offset.is_multiple_of(align.max(1)).then(|| GpuTensor {
            buffer: self.buffer.clone(),
            offset,
            shape,
            precision: self.precision,
        })
    }
}

// Uniform too: a kernel may read a small tensor through a uniform window
// (`BindingElem::Window`).
const STORAGE: wgpu::BufferUsages = wgpu::BufferUsages::STORAGE
    .union(wgpu::BufferUsages::UNIFORM)
    .union(wgpu::BufferUsages::COPY_SRC)
    .union(wgpu::BufferUsages::COPY_DST);

impl Gpu {
    /// The bytes of a buffer for a tensor of `shape`, in whole words.
    fn check_buffer_size(&self, shape: &[usize]) -> Result<u64> {
        self.buffer_size_at(shape, self.precision())
    }

    /// `check_buffer_size` for a tensor stored at `precision`.
    fn buffer_size_at(&self, shape: &[usize], precision: Precision) -> Result<u64> {
        self.check_fits(|| format!("a tensor of shape {shape:?}"), shape, precision)
    }

    /// The bytes of a buffer for `what`, a tensor of `shape` at `precision`, in whole words;
    /// an error naming it if the device's buffers cannot be that large.
    pub fn check_fits(
        &self,
        what: impl FnOnce() -> String,
        shape: &[usize],
        precision: Precision,
    ) -> Result<u64> {
        let elements = shape.iter().try_fold(1u64, |n, &d| n.checked_mul(d as u64));
        let bytes = elements.map_or(u64::MAX, |n| precision.stored_bytes(n));
        if bytes > self.limits().max_buffer_size {
            return Err(Error::Limit {
                what: what(),
                needed: bytes,
                limit: self.limits().max_buffer_size,
                unit: "bytes",
            });
        }
        // wgpu rejects zero-sized bindings; an empty tensor still gets one word.
        Ok(bytes.max(4))
    }

    /// A buffer holding `contents` (a multiple of 4 bytes). Written through the queue rather
    /// than mapped at creation: on a lost device wgpu's mapped-at-creation path panics, while a
    /// queue write only records an error that `check_lost` then reports.
    pub(crate) fn buffer_with(
        &self,
        label: Option<&str>,
        contents: &[u8],
        usage: wgpu::BufferUsages,
    ) -> DeviceBuffer {
        let buffer = self.create_buffer(&wgpu::BufferDescriptor {
            label,
            size: contents.len() as u64,
            usage: usage | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        self.queue.write_buffer(&buffer, 0, contents);
        buffer
    }

    /// An uninitialised device tensor.
    pub fn empty(&self, shape: &[usize]) -> Result<GpuTensor> {
        self.empty_at(shape, self.precision())
    }

    /// An uninitialised device tensor stored at `precision` whatever the device's (partial
    /// sums, kept in f32).
    pub fn empty_at(&self, shape: &[usize], precision: Precision) -> Result<GpuTensor> {
        let size = self.buffer_size_at(shape, precision)?;
        let buffer = self.create_buffer(&wgpu::BufferDescriptor {
            label: None,
            size,
            usage: STORAGE,
            mapped_at_creation: false,
        });
        Ok(GpuTensor {
            buffer,
            offset: 0,
            shape: shape.to_vec(),
            precision,
        })
    }

    pub fn upload(&self, t: &Tensor) -> Result<GpuTensor> {
        self.check_buffer_size(t.shape())?;
        let buffer = self.buffer_with(None, &self.precision().encode(t.data()), STORAGE);
        Ok(GpuTensor {
            buffer,
            offset: 0,
            shape: t.shape().to_vec(),
            precision: self.precision(),
        })
    }

    /// Writes host values into an existing device tensor of the same shape (the padding of an
    /// odd number of f16 values too, which lies inside the buffer's last word).
    pub fn write(&self, dst: &GpuTensor, t: &Tensor) -> Result<()> {
        if dst.shape() != t.shape() {
            return Err(Error::Invalid(format!(
                "cannot write a tensor of shape {:?} into one of shape {:?}",
                t.shape(),
                dst.shape()
            )));
        }
        if t.numel() > 0 {
            let bytes = dst.precision.encode(t.data());
            self.queue.write_buffer(&dst.buffer, dst.offset, &bytes);
        }
        Ok(())
    }

    /// Copies a device tensor back to the host.
    pub async fn read(&self, t: &GpuTensor) -> Result<Tensor> {
        let mut all = self.read_many(&[t]).await?;
        all.pop()
            .ok_or_else(|| Error::Gpu("readback returned nothing".into()))
    }

    /// Reads several tensors with one copy submission, made before the first await, so work
    /// submitted later (another inference) cannot overwrite them before they are read.
    pub async fn read_many(&self, ts: &[&GpuTensor]) -> Result<Vec<Tensor>> {
        let mut encoder = self.device.create_command_encoder(&Default::default());
        let staging: Vec<DeviceBuffer> = ts
            .iter()
            .map(|t| {
                let size = t.word_bytes();
                let buffer = self.create_buffer(&wgpu::BufferDescriptor {
                    label: Some("readback"),
                    size,
                    usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                    mapped_at_creation: false,
                });
                encoder.copy_buffer_to_buffer(&t.buffer, t.offset, &buffer, 0, size);
                buffer
            })
            .collect();
        self.queue.submit([encoder.finish()]);
        // Every mapping is requested before the one wait, so they complete together.
        let requests: Vec<MapRequest> = staging.iter().map(|b| request_map(b)).collect();
        self.wait()?;
        let mut out = Vec::with_capacity(ts.len());
        for ((t, buffer), request) in ts.iter().zip(&staging).zip(requests) {
            let data = match t.precision {
                Precision::F32 => {
                    self.mapped::<f32>(buffer, request, t.bytes(), "readback")
                        .await?
                }
                Precision::F16 => self
                    .mapped::<half::f16>(buffer, request, t.bytes(), "readback")
                    .await?
                    .to_f32_vec(),
            };
            out.push(Tensor::new(t.shape().to_vec(), data)?);
        }
        self.check_lost()?;
        Ok(out)
    }

    /// The first `len` bytes of a `MAP_READ` buffer, as `T`s, once its `request_map` completes
    /// (after `wait`); the buffer is unmapped again. A mapping that fails on a lost device
    /// reports the loss, the cause, rather than the failed mapping.
    pub(crate) async fn mapped<T: bytemuck::Pod>(
        &self,
        buffer: &wgpu::Buffer,
        request: MapRequest,
        len: u64,
        what: &str,
    ) -> Result<Vec<T>> {
        let mapped = request
            .await
            .map_err(|_| Error::Gpu(format!("{what} was cancelled")))
            .and_then(|r| r.map_err(|e| Error::Gpu(format!("{what} failed: {e}"))));
        if let Err(e) = mapped {
            self.check_lost()?;
            return Err(e);
        }
        let data = {
            let view = buffer
                .slice(..)
                .get_mapped_range()
                .map_err(|e| Error::Gpu(format!("{what} failed: {e}")))?;
            bytemuck::cast_slice(&view[..len as usize]).to_vec()
        };
        buffer.unmap();
        Ok(data)
    }

    #[cfg(not(target_arch = "wasm32"))]
    pub fn read_blocking(&self, t: &GpuTensor) -> Result<Tensor> {
        pollster::block_on(self.read(t))
    }

    /// Blocks until submitted work is done (native); the browser drives completion itself.
    pub fn wait(&self) -> Result<()> {
        #[cfg(not(target_arch = "wasm32"))]
        self.device
            .poll(wgpu::PollType::wait_indefinitely())
            .map_err(|e| Error::Gpu(format!("waiting for the GPU failed: {e}")))?;
        self.check_lost()
    }
}

/// A staging buffer kept for reading the same tensors back after every run: one copy each into
/// it, one mapping, no new object.
pub struct Readback {
    staging: DeviceBuffer,
    /// Each tensor and its byte offset in `staging`.
    parts: Vec<(GpuTensor, u64)>,
}

impl Readback {
    pub fn new(gpu: &Gpu, tensors: &[&GpuTensor]) -> Self {
        let mut parts = Vec::with_capacity(tensors.len());
        let mut size = 0;
        for t in tensors {
            parts.push(((*t).clone(), size));
            size += t.word_bytes();
        }
        let staging = gpu.create_buffer(&wgpu::BufferDescriptor {
            label: Some("readback"),
            size: size.max(4),
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        Self { staging, parts }
    }

    /// Whether it reads exactly `tensors`, in order.
    pub fn reads(&self, tensors: &[&GpuTensor]) -> bool {
        self.parts.len() == tensors.len()
            && self.parts.iter().zip(tensors).all(|((p, _), t)| {
                p.buffer == t.buffer && p.offset == t.offset && p.shape() == t.shape()
            })
    }

    /// Records the copies into the staging buffer.
    pub fn copy(&self, encoder: &mut wgpu::CommandEncoder) {
        for (t, at) in &self.parts {
            encoder.copy_buffer_to_buffer(&t.buffer, t.offset, &self.staging, *at, t.word_bytes());
        }
    }

    /// The tensors, once the submission holding `copy` has run.
    pub async fn read(&self, gpu: &Gpu) -> Result<Vec<Tensor>> {
        let request = request_map(&self.staging);
        gpu.wait()?;
        let len = self.parts.last().map_or(0, |(t, at)| at + t.word_bytes());
        let bytes: Vec<u8> = gpu.mapped(&self.staging, request, len, "readback").await?;
        self.parts
            .iter()
            .map(|(t, at)| {
                let raw = &bytes[*at as usize..(*at + t.bytes()) as usize];
                let data = match t.precision {
                    Precision::F32 => bytemuck::pod_collect_to_vec::<u8, f32>(raw),
                    Precision::F16 => bytemuck::pod_collect_to_vec::<u8, half::f16>(raw)
                        .iter()
                        .map(|v| v.to_f32())
                        .collect(),
                };
                Tensor::new(t.shape().to_vec(), data)
            })
            .collect()
    }
}
