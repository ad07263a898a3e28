//! Checkpoints: safetensors and `torch.save` files, read into a `StateDict` under canonical names.

mod names;
pub mod pickle;
mod pth;
mod safetensors_file;
pub mod synthetic;

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};

pub use names::canonical_key;

use crate::error::{Error, Result};
use crate::tensor::Tensor;

/// The tensors of a checkpoint by canonical key. Every access is recorded, so that a model
/// can refuse keys it never read instead of silently ignoring them.
#[derive(Debug)]
pub struct StateDict {
    source: String,
    tensors: BTreeMap<String, Tensor>,
    used: RefCell<BTreeSet<String>>,
}

/// Keys that training writes and inference never needs.
fn ignorable(key: &str) -> bool {
    key.ends_with("num_batches_tracked")
}

impl StateDict {
    /// Builds a state dict from `(key, tensor)` pairs, canonicalising names (§2.6, §5.2 of the
    /// spec: `module.` prefixes, Triplet-Attention and Coordinate-Attention aliases).
    pub fn new(source: &str, entries: impl IntoIterator<Item = (String, Tensor)>) -> Result<Self> {
        let mut tensors = BTreeMap::new();
        let mut raw_name: BTreeMap<String, String> = BTreeMap::new();
        for (key, t) in entries {
            if ignorable(&key) {
                continue;
            }
            let canon = canonical_key(&key);
            if let Some(other) = raw_name.insert(canon.clone(), key.clone()) {
                return Err(Error::Invalid(format!(
                    "{source}: keys `{other}` and `{key}` both name `{canon}`"
                )));
            }
            tensors.insert(canon, t);
        }
        Ok(Self {
            source: source.to_string(),
            tensors,
            used: RefCell::new(BTreeSet::new()),
        })
    }

    /// Reads a checkpoint, telling the format from its first bytes.
    pub fn load(path: &str) -> Result<Self> {
        let bytes = std::fs::read(path).map_err(|source| Error::Io {
            path: path.to_string(),
            source,
        })?;
        Self::from_bytes(&bytes, path)
    }

    pub fn from_bytes(bytes: &[u8], source: &str) -> Result<Self> {
        if bytes.is_empty() {
            return Err(Error::Invalid(format!("{source}: the file is empty")));
        }
        let entries = if bytes.starts_with(b"PK\x03\x04") {
            pth::read(bytes, source)?
        } else if bytes.starts_with(&[0x80]) || bytes.starts_with(&[0x8a, 0x0a]) {
            return Err(Error::Invalid(format!(
                "{source}: this is the legacy (pre-1.6, non-zip) torch.save format, which gaze \
                 does not read; re-save it with a current PyTorch: \
                 torch.save(torch.load(f, weights_only=True), 'new.pth')"
            )));
        } else if bytes.len() >= 9 && bytes[8] == b'{' {
            safetensors_file::read(bytes, source)?
        } else {
            return Err(Error::Invalid(format!(
                "{source}: neither a safetensors file nor a torch.save (zip) checkpoint"
            )));
        };
        Self::new(source, entries)
    }

    pub fn source(&self) -> &str {
        &self.source
    }

    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.tensors.keys().map(String::as_str)
    }

    pub fn contains(&self, key: &str) -> bool {
        self.tensors.contains_key(key)
    }

    /// The tensor `key` of any shape (for shapes the architecture derives from the weights).
    pub fn get_any(&self, key: &str) -> Result<&Tensor> {
        let t = self
            .tensors
            .get(key)
            .ok_or_else(|| Error::Invalid(format!("{}: missing key `{key}`", self.source)))?;
        self.used.borrow_mut().insert(key.to_string());
        Ok(t)
    }

    /// The tensor `key`, which must have shape `shape`.
    pub fn get(&self, key: &str, shape: &[usize]) -> Result<&Tensor> {
        let t = self.get_any(key)?;
        if t.shape() != shape {
            return Err(Error::Invalid(format!(
                "{}: key `{key}` has shape {:?}, expected {shape:?}",
                self.source,
                t.shape()
            )));
        }
        Ok(t)
    }

    /// Marks keys as read on purpose without using them (e.g. iAFF's `global_att2`, which the
    /// official port never calls).
    pub fn skip(&self, key: &str) -> Result<()> {
        self.get_any(key).map(|_| ())
    }

    /// An error listing the keys no part of the model read.
    pub fn check_all_used(&self) -> Result<()> {
        let used = self.used.borrow();
        let unused: Vec<&str> = self.keys().filter(|k| !used.contains(*k)).collect();
        if unused.is_empty() {
            return Ok(());
        }
        let shown: Vec<&str> = unused.iter().take(8).copied().collect();
        Err(Error::Invalid(format!(
            "{}: {} unexpected key(s) for this architecture: {}{}",
            self.source,
            unused.len(),
            shown.join(", "),
            if unused.len() > shown.len() {
                ", ..."
            } else {
                ""
            }
        )))
    }
}
