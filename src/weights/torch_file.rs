//! What both `torch.save` formats share once their pickle is read: finding the weights in the
//! saved object, and gathering each tensor from its storage's bytes.

use super::pickle::{Dtype, StorageRef, TensorRef, Value};
use crate::tensor::Tensor;

/// Entries of a training checkpoint that hold a model's weights, in the order they are tried:
/// the official training scripts' `state_dict`, PyTorch's tutorial's `model_state_dict`, then
/// the names other trainers use, and EMA copies last.
pub const WEIGHT_ENTRIES: [&str; 7] = [
    "state_dict",
    "model_state_dict",
    "model",
    "net",
    "module",
    "state_dict_ema",
    "model_ema",
];

/// Prefixes a wrapper puts before every key of the model it wraps: Lightning modules and
/// trainers holding the network as `self.model` or `self.net`. (`module.` and `_orig_mod.`,
/// which may stand before any key, are stripped by `canonical_key`.)
const WRAPPER_PREFIXES: [&str; 2] = ["model.", "net."];

/// The weights found in a file: the entry they came from (None: the file is a bare state
/// dict) and their `(key, tensor)` pairs, wrapper prefixes stripped.
pub struct Found {
    pub entry: Option<String>,
    pub tensors: Vec<(String, TensorRef)>,
    /// The file's top-level entries with what each holds, for messages.
    pub top_level: Vec<String>,
}

/// A dict whose values are all tensors: a state dict.
fn as_weights(value: &Value) -> Option<Vec<(String, TensorRef)>> {
    let Value::Dict(entries) = value else {
        return None;
    };
    let tensors: Option<Vec<_>> = entries
        .iter()
        .map(|(k, v)| match (k, v) {
            (Value::Str(k), Value::Tensor(t)) => Some((k.clone(), (**t).clone())),
            _ => None,
        })
        .collect();
    tensors.filter(|t| !t.is_empty())
}

fn entry_name(key: &Value) -> String {
    match key {
        Value::Str(s) => s.clone(),
        Value::Int(i) => i.to_string(),
        other => other.describe(),
    }
}

fn describe_entries(entries: &[(Value, Value)]) -> Vec<String> {
    entries
        .iter()
        .map(|(k, v)| format!("`{}` ({})", entry_name(k), v.describe()))
        .collect()
}

fn listing(top_level: &[String]) -> String {
    const SHOWN: usize = 20;
    let mut text = top_level
        .iter()
        .take(SHOWN)
        .cloned()
        .collect::<Vec<_>>()
        .join(", ");
    if top_level.len() > SHOWN {
        text += &format!(", and {} more", top_level.len() - SHOWN);
    }
    text
}

/// Finds the weights in the object a `torch.save` file holds: the entry `key` when given, else
/// a bare state dict, else the first of `WEIGHT_ENTRIES` that holds tensors.
pub fn find_weights(root: &Value, key: Option<&str>) -> Result<Found, String> {
    let Value::Dict(entries) = root else {
        return Err(format!(
            "the file holds {}, not a state dict (a dict of tensors)",
            root.describe()
        ));
    };
    let top_level = describe_entries(entries);
    let entry = |name: &str| {
        entries
            .iter()
            .find(|(k, _)| matches!(k, Value::Str(s) if s == name))
            .map(|(_, v)| v)
    };
    let (entry_used, tensors) = if let Some(name) = key {
        let value = entry(name).ok_or_else(|| {
            format!(
                "it has no entry `{name}`; its top-level entries are {}",
                listing(&top_level)
            )
        })?;
        let tensors = as_weights(value).ok_or_else(|| {
            format!(
                "its entry `{name}` holds {}, not a state dict (a dict of tensors)",
                value.describe()
            )
        })?;
        (Some(name.to_string()), tensors)
    } else if let Some(tensors) = as_weights(root) {
        (None, tensors)
    } else {
        WEIGHT_ENTRIES
            .iter()
            .find_map(|name| Some((Some(name.to_string()), as_weights(entry(name)?)?)))
            .ok_or_else(|| {
                format!(
                    "no state dict found: the file is not a dict of tensors, and none of its \
                     entries {} holds one. Its top-level entries are {}. Choose the entry that \
                     holds the weights with --key NAME (`key` in JavaScript)",
                    WEIGHT_ENTRIES.map(|e| format!("`{e}`")).join(", "),
                    listing(&top_level)
                )
            })?
    };
    Ok(Found {
        entry: entry_used,
        tensors: strip_wrapper_prefix(tensors),
        top_level,
    })
}

/// Drops a wrapper's prefix when every key has it.
fn strip_wrapper_prefix(tensors: Vec<(String, TensorRef)>) -> Vec<(String, TensorRef)> {
    let shared = WRAPPER_PREFIXES
        .iter()
        .find(|p| tensors.iter().all(|(k, _)| k.starts_with(*p)));
    match shared {
        Some(prefix) => tensors
            .into_iter()
            .map(|(k, t)| (k[prefix.len()..].to_string(), t))
            .collect(),
        None => tensors,
    }
}

/// The top-level listing, for messages about keys the architecture misses.
pub fn top_level_note(entry: &Option<String>, top_level: &[String]) -> String {
    match entry {
        Some(name) => format!(
            "the weights were read from the file's entry `{name}`; its top-level entries are \
             {}; choose another with --key NAME",
            listing(top_level)
        ),
        None => String::new(),
    }
}

/// Where storages' bytes come from: archive entries, or the legacy file's storage section.
pub trait Storages {
    /// All bytes of storage `key`, stored little-endian unless `big_endian()`.
    fn bytes(&mut self, key: &str) -> Result<&[u8], String>;

    fn big_endian(&self) -> bool {
        false
    }
}

/// The bytes a storage reference covers: the whole storage, or its legacy view.
fn storage_bytes<'a>(storage: &StorageRef, all: &'a [u8]) -> Result<&'a [u8], String> {
    let Some(view) = &storage.view else {
        return Ok(all);
    };
    let elem = storage.dtype.size() as u64;
    let range = view
        .offset
        .checked_mul(elem)
        .and_then(|start| Some((start, start.checked_add(view.numel.checked_mul(elem)?)?)))
        .filter(|(_, end)| *end <= all.len() as u64);
    let (start, end) = range.ok_or_else(|| {
        format!(
            "its storage view `{}` ({} elements from element {}) reaches past storage `{}` \
             ({} bytes)",
            view.key,
            view.numel,
            view.offset,
            storage.key,
            all.len()
        )
    })?;
    Ok(&all[start as usize..end as usize])
}

/// Reads every tensor of `found` from `storages`. Integer tensors may only be the BatchNorm
/// step counters, which inference never needs.
pub fn read_tensors(
    tensors: Vec<(String, TensorRef)>,
    storages: &mut dyn Storages,
) -> Result<Vec<(String, Tensor)>, String> {
    let mut out = Vec::with_capacity(tensors.len());
    let big_endian = storages.big_endian();
    for (name, t) in tensors {
        if name.ends_with("num_batches_tracked") {
            continue;
        }
        if !t.dtype.is_float() {
            return Err(format!(
                "tensor `{name}` has dtype {:?}; gaze reads float32, float64, float16 and \
                 bfloat16 weights",
                t.dtype
            ));
        }
        let all = storages
            .bytes(&t.storage.key)
            .map_err(|e| format!("tensor `{name}`: {e}"))?;
        let bytes = storage_bytes(&t.storage, all).map_err(|e| format!("tensor `{name}`: {e}"))?;
        let tensor =
            materialize(&t, bytes, big_endian).map_err(|e| format!("tensor `{name}`: {e}"))?;
        out.push((name, tensor));
    }
    Ok(out)
}

/// One element, converted to f32.
fn element(dtype: Dtype, b: &[u8], big_endian: bool) -> f32 {
    let mut le = [0u8; 8];
    le[..b.len()].copy_from_slice(b);
    if big_endian {
        le[..b.len()].reverse();
    }
    match dtype {
        Dtype::F32 => f32::from_le_bytes([le[0], le[1], le[2], le[3]]),
        Dtype::F64 => f64::from_le_bytes(le) as f32,
        Dtype::F16 => half::f16::from_le_bytes([le[0], le[1]]).to_f32(),
        Dtype::BF16 => half::bf16::from_le_bytes([le[0], le[1]]).to_f32(),
        _ => f32::NAN,
    }
}

/// Gathers the tensor's elements from its storage, checking every index against the storage
/// first, so a forged size or stride cannot read out of bounds or allocate beyond the file.
fn materialize(t: &TensorRef, storage: &[u8], big_endian: bool) -> Result<Tensor, String> {
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
        values.push(element(
            t.dtype,
            &storage[at * elem..(at + 1) * elem],
            big_endian,
        ));
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
