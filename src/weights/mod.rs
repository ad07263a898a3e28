//! Checkpoints: safetensors and `torch.save` files, read into a `StateDict` under canonical names.

mod allowlist;
mod legacy;
mod names;
pub mod pickle;
mod pth;
mod safetensors_file;
pub mod synthetic;
mod torch_file;

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};

pub use names::canonical_key;
pub use torch_file::WEIGHT_ENTRIES;

use crate::error::{Error, Result};
use crate::tensor::Tensor;

/// The tensors of a checkpoint by canonical key. Every access is recorded, so that a model
/// can refuse keys it never read instead of silently ignoring them.
#[derive(Debug)]
pub struct StateDict {
    source: String,
    tensors: BTreeMap<String, Tensor>,
    used: RefCell<BTreeSet<String>>,
    format: Format,
    entry: Option<String>,
    /// Where the weights came from in a container, for messages about missing keys.
    container_note: String,
}

/// The file formats gaze reads checkpoints from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Safetensors,
    /// `torch.save` since PyTorch 1.6: a zip archive.
    TorchZip,
    /// `torch.save` before PyTorch 1.6, or with `_use_new_zipfile_serialization=False`.
    TorchLegacy,
    /// Tensors made in memory (tests, deterministic weights).
    Memory,
}

impl std::fmt::Display for Format {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Format::Safetensors => "safetensors",
            Format::TorchZip => "torch.save zip (PyTorch 1.6 and later)",
            Format::TorchLegacy => "torch.save legacy (before PyTorch 1.6, not zip)",
            Format::Memory => "in memory",
        })
    }
}

/// Reads a `torch.save` file's object, finds its weights and gathers their tensors.
fn read_torch(
    bytes: &[u8],
    format: Format,
    key: Option<&str>,
) -> std::result::Result<(torch_file::Found, Vec<(String, Tensor)>), String> {
    let (root, mut storages): (_, Box<dyn torch_file::Storages + '_>) = match format {
        Format::TorchLegacy => {
            let (root, s) = legacy::open(bytes)?;
            (root, Box::new(s))
        }
        _ => {
            let (root, s) = pth::open(bytes)?;
            (root, Box::new(s))
        }
    };
    let mut found = torch_file::find_weights(&root, key)?;
    drop(root);
    let refs = std::mem::take(&mut found.tensors);
    let tensors = torch_file::read_tensors(refs, storages.as_mut())?;
    Ok((found, tensors))
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
                return Err(Error::Checkpoint(format!(
                    "{source}: keys `{other}` and `{key}` both name `{canon}`"
                )));
            }
            tensors.insert(canon, t);
        }
        Ok(Self {
            source: source.to_string(),
            tensors,
            used: RefCell::new(BTreeSet::new()),
            format: Format::Memory,
            entry: None,
            container_note: String::new(),
        })
    }

    /// Reads a checkpoint, telling the format from its first bytes.
    pub fn load(path: &str) -> Result<Self> {
        Self::load_entry(path, None)
    }

    /// Reads a checkpoint; `key` names the container entry that holds the weights (None: the
    /// file itself, or the first of `WEIGHT_ENTRIES` that holds tensors).
    pub fn load_entry(path: &str, key: Option<&str>) -> Result<Self> {
        let bytes = std::fs::read(path).map_err(|source| Error::Io {
            path: path.to_string(),
            source,
        })?;
        Self::from_bytes_entry(&bytes, path, key)
    }

    pub fn from_bytes(bytes: &[u8], source: &str) -> Result<Self> {
        Self::from_bytes_entry(bytes, source, None)
    }

    pub fn from_bytes_entry(bytes: &[u8], source: &str, key: Option<&str>) -> Result<Self> {
        let bad = |msg: String| Error::Checkpoint(format!("{source}: {msg}"));
        if bytes.is_empty() {
            return Err(bad("the file is empty".into()));
        }
        let format = if bytes.starts_with(b"PK\x03\x04") {
            Format::TorchZip
        } else if bytes.starts_with(&[0x80]) {
            Format::TorchLegacy
        } else if bytes.len() >= 9 && bytes[8] == b'{' {
            Format::Safetensors
        } else {
            return Err(bad(
                "neither a safetensors file nor a torch.save checkpoint".into(),
            ));
        };
        let mut sd = if format == Format::Safetensors {
            if let Some(key) = key {
                return Err(bad(format!(
                    "--key `{key}` chooses an entry of a torch.save container; a safetensors \
                     file holds its tensors directly"
                )));
            }
            Self::new(source, safetensors_file::read(bytes, source)?)?
        } else {
            let (found, tensors) = read_torch(bytes, format, key).map_err(bad)?;
            let mut sd = Self::new(source, tensors)?;
            sd.container_note = torch_file::top_level_note(&found.entry, &found.top_level);
            sd.entry = found.entry;
            sd
        };
        sd.format = format;
        Ok(sd)
    }

    /// The file format the weights were read from.
    pub fn format(&self) -> Format {
        self.format
    }

    /// The container entry that held the weights; None when the file is the state dict itself.
    pub fn entry(&self) -> Option<&str> {
        self.entry.as_deref()
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
        let t = self.tensors.get(key).ok_or_else(|| {
            let note = match self.container_note.as_str() {
                "" => String::new(),
                note => format!(" ({note})"),
            };
            Error::Checkpoint(format!("{}: missing key `{key}`{note}", self.source))
        })?;
        self.used.borrow_mut().insert(key.to_string());
        Ok(t)
    }

    /// The tensor `key`, which must have shape `shape`.
    pub fn get(&self, key: &str, shape: &[usize]) -> Result<&Tensor> {
        let t = self.get_any(key)?;
        if t.shape() != shape {
            return Err(Error::Checkpoint(format!(
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
        Err(Error::Checkpoint(format!(
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
