//! Work splitting for tensors larger than one storage binding may cover.
//!
//! Every op here is independent across the batch, so a too-large batch runs in chunks of
//! images. Binding offsets must be aligned (256 bytes), which an image boundary rarely is, so
//! each chunk is copied into scratch tensors instead; kernels never see the difference. The
//! copies cost bandwidth only on this path, which normal model sizes never take.

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
            let per_image = t.bytes() / n as u64;
            if per_image > limit {
                return Err(too_large(t, per_image, limit));
            }
            per_chunk = per_chunk.min((limit / per_image.max(1)) as usize);
        }
        let mut start = 0;
        while start < n {
            let count = per_chunk.min(n - start);
            let mut scratch = Vec::with_capacity(inputs.len());
            for t in inputs {
                if splits(t) {
                    let part = self.gpu().empty(&with_batch(t.shape(), count))?;
                    let per_image = t.bytes() / n as u64;
                    self.copy(
                        t,
                        start as u64 * per_image,
                        &part,
                        0,
                        count as u64 * per_image,
                    );
                    scratch.push(part);
                } else {
                    scratch.push((*t).clone());
                }
            }
            let part_out = self.gpu().empty(&with_batch(out.shape(), count))?;
            let refs: Vec<&GpuTensor> = scratch.iter().collect();
            encode(self, &refs, &part_out)?;
            let per_image = out.bytes() / n as u64;
            self.copy(
                &part_out,
                0,
                out,
                start as u64 * per_image,
                count as u64 * per_image,
            );
            start += count;
        }
        Ok(())
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
    }
}
