use safetensors::{Dtype, SafeTensors};

use crate::error::{Error, Result};
use crate::tensor::Tensor;

/// Float tensors as f32; integer tensors only where they are counters gaze ignores.
pub fn read(bytes: &[u8], source: &str) -> Result<Vec<(String, Tensor)>> {
    let file = SafeTensors::deserialize(bytes)
        .map_err(|e| Error::Checkpoint(format!("{source}: not a valid safetensors file: {e}")))?;
    let mut out = Vec::new();
    for (name, view) in file.tensors() {
        let data = view.data();
        let values: Vec<f32> = match view.dtype() {
            Dtype::F32 => data
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect(),
            Dtype::F16 => data
                .chunks_exact(2)
                .map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32())
                .collect(),
            Dtype::BF16 => data
                .chunks_exact(2)
                .map(|b| half::bf16::from_le_bytes([b[0], b[1]]).to_f32())
                .collect(),
            Dtype::F64 => data
                .chunks_exact(8)
                .map(|b| f64::from_le_bytes(b.try_into().unwrap_or([0; 8])) as f32)
                .collect(),
            other if name.ends_with("num_batches_tracked") => {
                let _ = other;
                continue;
            }
            other => {
                return Err(Error::Checkpoint(format!(
                    "{source}: tensor `{name}` has dtype {other:?}; gaze reads float tensors"
                )))
            }
        };
        out.push((name, Tensor::new(view.shape().to_vec(), values)?));
    }
    Ok(out)
}
