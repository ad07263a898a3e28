//! Work splitting for tensors larger than one storage binding may cover.
//!
//! Every op here is independent across the batch, so a too-large batch runs in chunks of
//! images. A chunk is bound in place where its first byte is a valid binding offset (a
//! multiple of the device's alignment, 256 bytes: true of most CNN activations, whose images
//! are multiples of 256 bytes); otherwise it is copied into a scratch tensor and, for the
//! output, back. Kernels never see the difference.

use super::{GpuTensor, Recorder};
use crate::error::{Error, Result};

impl Recorder<'_> {
    /// Runs `encode(rec, inputs, out)` directly when every binding fits the device, else over
    /// chunks of the batch. Inputs whose leading dimension equals the output's batch are split;
    /// the others (broadcast operands such as `[1,C,1,1]`) are bound whole.
    pub fn batched(
        &mut self,
        inputs: &[&GpuTensor],
        out: &GpuTensor,
        mut encode: impl FnMut(&mut Self, &[&GpuTensor], &GpuTensor) -> Result<()>,
    ) -> Result<()> {
        let limit = self.gpu().max_binding_bytes();
        if inputs.iter().chain([&out]).all(|t| t.bytes() <= limit) {
            return encode(self, inputs, out);
        }
        let n = out.shape().first().copied().unwrap_or(1);
        let splits = |t: &GpuTensor| n > 1 && t.shape().first() == Some(&n);
        let mut per_chunk = n;
        for t in inputs.iter().copied().chain([out]) {
            if !splits(t) {
                if t.bytes() > limit {
                    return Err(too_large(t, t.bytes(), limit));
                }
                continue;
            }
            let per_image = t.image_bytes();
            if per_image > limit {
                return Err(too_large(t, per_image, limit));
            }
            per_chunk = per_chunk.min((limit / per_image.max(1)) as usize);
        }
        let align = u64::from(self.gpu().limits().min_storage_buffer_offset_alignment);
        let mut start = 0;
        while start < n {
            let count = per_chunk.min(n - start);
            let mut parts = Vec::with_capacity(inputs.len());
            for t in inputs {
                let part = match splits(t) {
                    true => self.images(t, start, count, align)?,
                    false => (*t).clone(),
                };
                parts.push(part);
            }
            let refs: Vec<&GpuTensor> = parts.iter().collect();
            match out.images(start, count, align) {
                Some(part_out) => encode(self, &refs, &part_out)?,
                None => {
                    let part_out = self.gpu().empty(&with_batch(out.shape(), count))?;
                    encode(self, &refs, &part_out)?;
                    self.copy_images(&part_out, 0, out, start, count)?;
                }
            }
            start += count;
        }
        Ok(())
    }

    /// Images `start..start + count` of `t`: in place where aligned, else a copy.
    fn images(
        &mut self,
        t: &GpuTensor,
        start: usize,
        count: usize,
        align: u64,
    ) -> Result<GpuTensor> {
        if let Some(part) = t.images(start, count, align) {
            return Ok(part);
        }
        let part = self.gpu().empty(&with_batch(t.shape(), count))?;
        self.copy_images(t, start, &part, 0, count)?;
        Ok(part)
    }

    /// Copies `count` images of `src` from image `from` into `dst` from image `to`.
    fn copy_images(
        &mut self,
        src: &GpuTensor,
        from: usize,
        dst: &GpuTensor,
        to: usize,
        count: usize,
    ) -> Result<()> {
        let per_image = src.image_bytes();
        let at = |image: usize| image as u64 * per_image;
        self.copy(src, at(from), dst, at(to), at(count))
    }
}

fn with_batch(shape: &[usize], n: usize) -> Vec<usize> {
    let mut s = shape.to_vec();
    s[0] = n;
    s
}

fn too_large(t: &GpuTensor, needed: u64, limit: u64) -> Error {
    Error::Limit {
        what: format!(
            "one image of a tensor of shape {:?} in a single storage binding",
            t.shape()
        ),
        needed,
        limit,
        unit: "bytes",
    }
}
