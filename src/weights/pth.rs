//! `torch.save` zip checkpoints: `<archive>/data.pkl` plus one entry per storage.

use std::collections::HashMap;
use std::io::{Cursor, Read};

use super::pickle::{self, Dtype, TensorRef, Value};
use crate::error::{Error, Result};
use crate::tensor::Tensor;

fn bad(source: &str, msg: impl std::fmt::Display) -> Error {
    Error::Invalid(format!("{source}: {msg}"))
}

struct Archive<'a> {
    zip: zip::ZipArchive<Cursor<&'a [u8]>>,
    prefix: String,
    source: &'a str,
    file_len: usize,
}

impl Archive<'_> {
    /// The bytes of entry `<prefix>/<name>`; never more than the file itself holds.
    fn entry(&mut self, name: &str) -> Result<Vec<u8>> {
        let path = format!("{}{name}", self.prefix);
        let source = self.source;
        let mut file = self
            .zip
            .by_name(&path)
            .map_err(|e| bad(source, format!("archive entry `{path}`: {e}")))?;
        if file.size() > self.file_len as u64 {
            return Err(bad(
                source,
                format!("archive entry `{path}` claims more bytes than the file has"),
            ));
        }
        let mut out = Vec::with_capacity(file.size() as usize);
        file.read_to_end(&mut out)
            .map_err(|e| bad(source, format!("archive entry `{path}`: {e}")))?;
        Ok(out)
    }
}

pub fn read(bytes: &[u8], source: &str) -> Result<Vec<(String, Tensor)>> {
    let zip = zip::ZipArchive::new(Cursor::new(bytes)).map_err(|e| {
        bad(
            source,
            format!("not a readable torch.save zip archive: {e}"),
        )
    })?;
    let pkl = zip
        .file_names()
        .find(|n| n.ends_with("data.pkl") && n.matches('/').count() == 1)
        .ok_or_else(|| {
            bad(
                source,
                "the archive has no data.pkl: not a torch.save checkpoint",
            )
        })?
        .to_string();
    let prefix = pkl.trim_end_matches("data.pkl").to_string();
    let mut archive = Archive {
        zip,
        prefix,
        source,
        file_len: bytes.len(),
    };
    if let Ok(order) = archive.entry("byteorder") {
        if order != b"little" {
            return Err(bad(
                source,
                "the checkpoint was written big-endian; gaze reads little-endian files",
            ));
        }
    }
    let root = pickle::load(&archive.entry("data.pkl")?).map_err(|e| bad(source, e))?;
    let dict = state_dict_of(root).ok_or_else(|| {
        bad(
            source,
            "no state dict found: expected a dict of tensors or a dict with a 'state_dict' entry",
        )
    })?;
    let mut storages: HashMap<String, Vec<u8>> = HashMap::new();
    let mut out = Vec::with_capacity(dict.len());
    for (key, value) in dict {
        let Value::Str(name) = key else {
            return Err(bad(source, "a state-dict key is not a string"));
        };
        let t = match value {
            Value::Tensor(t) => t,
            _ if name.ends_with("num_batches_tracked") => continue,
            _ => {
                return Err(bad(
                    source,
                    format!("state-dict entry `{name}` is not a tensor"),
                ))
            }
        };
        if !storages.contains_key(&t.storage_key) {
            let data = archive.entry(&format!("data/{}", t.storage_key))?;
            storages.insert(t.storage_key.clone(), data);
        }
        let storage = &storages[&t.storage_key];
        if matches!(
            t.dtype,
            Dtype::I64 | Dtype::I32 | Dtype::I16 | Dtype::I8 | Dtype::U8 | Dtype::Bool
        ) {
            if name.ends_with("num_batches_tracked") {
                continue;
            }
            return Err(bad(
                source,
                format!(
                    "tensor `{name}` has integer dtype {:?}; gaze reads float tensors",
                    t.dtype
                ),
            ));
        }
        let tensor = materialize(&t, storage)
            .map_err(|msg| bad(source, format!("tensor `{name}`: {msg}")))?;
        out.push((name, tensor));
    }
    Ok(out)
}

fn state_dict_of(root: Value) -> Option<Vec<(Value, Value)>> {
    let Value::Dict(entries) = root else {
        return None;
    };
    let wrapped = entries.iter().position(|(k, v)| {
        matches!(k, Value::Str(s) if s == "state_dict") && matches!(v, Value::Dict(_))
    });
    match wrapped {
        Some(i) => match entries.into_iter().nth(i) {
            Some((_, Value::Dict(inner))) => Some(inner),
            _ => None,
        },
        None => Some(entries),
    }
}

/// Gathers the tensor's elements from its storage, checking every index against the storage
/// first, so a forged size or stride cannot read out of bounds or allocate beyond the file.
fn materialize(t: &TensorRef, storage: &[u8]) -> std::result::Result<Tensor, String> {
    if t.size.len() != t.stride.len() {
        return Err("size and stride have different lengths".into());
    }
    let elem = t.dtype.size();
    let available = storage.len() / elem;
    let numel = t
        .size
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .ok_or("its size overflows")?;
    if numel > available {
        return Err(format!("{numel} elements from a storage of {available}"));
    }
    if numel > 0 {
        let last = t
            .size
            .iter()
            .zip(&t.stride)
            .try_fold(t.offset, |a, (&d, &s)| {
                (d - 1).checked_mul(s).and_then(|x| a.checked_add(x))
            })
            .ok_or("its strides overflow")?;
        if last >= available {
            return Err(format!(
                "it reads element {last} of a storage of {available}"
            ));
        }
    }
    let read = |i: usize| -> f32 {
        let b = &storage[i * elem..(i + 1) * elem];
        match t.dtype {
            Dtype::F32 => f32::from_le_bytes([b[0], b[1], b[2], b[3]]),
            Dtype::F64 => {
                f64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]) as f32
            }
            Dtype::F16 => half::f16::from_le_bytes([b[0], b[1]]).to_f32(),
            Dtype::BF16 => half::bf16::from_le_bytes([b[0], b[1]]).to_f32(),
            _ => f32::NAN,
        }
    };
    let rank = t.size.len();
    let mut index = vec![0usize; rank];
    let mut values = Vec::with_capacity(numel);
    for _ in 0..numel {
        let at = t.offset
            + index
                .iter()
                .zip(&t.stride)
                .map(|(i, s)| i * s)
                .sum::<usize>();
        values.push(read(at));
        for d in (0..rank).rev() {
            index[d] += 1;
            if index[d] < t.size[d] {
                break;
            }
            index[d] = 0;
        }
    }
    Tensor::new(t.size.clone(), values).map_err(|e| e.to_string())
}
