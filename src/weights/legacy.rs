//! The legacy `torch.save` format (before PyTorch 1.6, or `_use_new_zipfile_serialization=False`),
//! as SAN's and the early Triplet Attention releases were saved. One stream of five pickles and
//! the raw storages:
//!
//! 1. the magic number 0x1950a86a20f9469cfc6c;
//! 2. the protocol version, 1001;
//! 3. sys info: `{'protocol_version', 'little_endian', 'type_sizes'}`;
//! 4. the saved object, whose storages are persistent ids
//!    `('storage', type, key, location, numel, view)`;
//! 5. the list of storage keys, in the order their bytes follow;
//!
//! then, per key, an int64 element count and the elements. PyTorch writes the counts and the
//! elements little-endian whatever machine it runs on (and reads them so, ignoring sys info),
//! so a file from a big-endian machine reads as it is.
//!
//! The pickles go through the same restricted unpickler as the zip format, and every count is
//! checked against the bytes present before anything is read: the storages are borrowed from
//! the file, never allocated from a declared size.

use std::collections::HashMap;

use super::pickle::{self, Dtype, Value};
use super::torch_file::Storages;

/// 0x1950a86a20f9469cfc6c, as pickle's LONG1 stores it: little-endian two's complement.
const MAGIC: [u8; 10] = [0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19];
const PROTOCOL_VERSION: i64 = 1001;

/// Storages by key, each a slice of the file.
struct Section<'a> {
    storages: HashMap<String, &'a [u8]>,
}

impl Storages for Section<'_> {
    fn bytes(&mut self, key: &str) -> Result<&[u8], String> {
        self.storages
            .get(key)
            .copied()
            .ok_or_else(|| format!("storage `{key}` is not in the file's storage section"))
    }
}

/// Reads pickles one after another.
struct Stream<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Stream<'a> {
    fn pickle(&mut self, what: &str) -> Result<Value, String> {
        let (value, used) =
            pickle::load_prefix(&self.bytes[self.pos..]).map_err(|e| format!("{what}: {e}"))?;
        self.pos += used;
        Ok(value)
    }

    fn take(&mut self, n: u64, what: &str) -> Result<&'a [u8], String> {
        let left = (self.bytes.len() - self.pos) as u64;
        if n > left {
            return Err(format!(
                "{what} needs {n} bytes at byte {}, but the file has {left} left",
                self.pos
            ));
        }
        let slice = &self.bytes[self.pos..self.pos + n as usize];
        self.pos += n as usize;
        Ok(slice)
    }
}

/// Every storage the saved object declares: key → (dtype, element count).
fn declared_storages(value: &Value, out: &mut HashMap<String, (Dtype, u64)>) -> Result<(), String> {
    let mut declare = |s: &pickle::StorageRef| match out.insert(s.key.clone(), (s.dtype, s.numel)) {
        Some(old) if old != (s.dtype, s.numel) => Err(format!(
            "storage `{}` is declared as {:?} × {} and as {:?} × {}",
            s.key, old.0, old.1, s.dtype, s.numel
        )),
        _ => Ok(()),
    };
    match value {
        Value::Storage(s) => declare(s),
        Value::Tensor(t) => declare(&t.storage),
        Value::Tuple(items) | Value::List(items) | Value::Set(items) => {
            items.iter().try_for_each(|v| declared_storages(v, out))
        }
        Value::Dict(entries) => entries.iter().try_for_each(|(k, v)| {
            declared_storages(k, out)?;
            declared_storages(v, out)
        }),
        _ => Ok(()),
    }
}

fn check_header(stream: &mut Stream) -> Result<(), String> {
    match stream.pickle("the magic number")? {
        Value::BigInt(b) if b == MAGIC => {}
        _ => {
            return Err(
                "a pickle, but not a torch.save file: it does not start with PyTorch's magic \
                 number"
                    .into(),
            )
        }
    }
    match stream.pickle("the protocol version")? {
        Value::Int(PROTOCOL_VERSION) => {}
        other => {
            return Err(format!(
                "legacy torch.save protocol version {}, expected {PROTOCOL_VERSION}",
                match other {
                    Value::Int(v) => v.to_string(),
                    v => v.describe(),
                }
            ))
        }
    }
    match stream.pickle("the sys info")? {
        Value::Dict(_) => Ok(()),
        other => Err(format!("its sys info is {}, not a dict", other.describe())),
    }
}

/// The storage section: for each key of `keys`, an int64 count and the elements.
fn read_section<'a>(
    stream: &mut Stream<'a>,
    keys: Value,
    declared: &HashMap<String, (Dtype, u64)>,
) -> Result<Section<'a>, String> {
    let Value::List(keys) = keys else {
        return Err(format!(
            "its storage key list is {}, not a list",
            keys.describe()
        ));
    };
    let mut storages = HashMap::new();
    for key in keys {
        let Value::Str(key) = key else {
            return Err("a storage key that is not text".into());
        };
        let &(dtype, numel) = declared.get(&key).ok_or_else(|| {
            format!("the storage list names `{key}`, which nothing in the file uses")
        })?;
        let what = format!("storage `{key}`");
        let count = stream.take(8, &what)?;
        let count = u64::from_le_bytes(count.try_into().map_err(|_| "a short count")?);
        if count != numel {
            return Err(format!(
                "{what} holds {count} elements in the file, but the pickle declares {numel}"
            ));
        }
        let bytes = count
            .checked_mul(dtype.size() as u64)
            .ok_or_else(|| format!("{what}: {count} elements overflow"))?;
        let data = stream.take(bytes, &what)?;
        if storages.insert(key.clone(), data).is_some() {
            return Err(format!("the storage list names `{key}` twice"));
        }
    }
    Ok(Section { storages })
}

/// The saved object of a legacy file, and its storages.
pub fn open(bytes: &[u8]) -> Result<(Value, impl Storages + '_), String> {
    let mut stream = Stream { bytes, pos: 0 };
    check_header(&mut stream)?;
    let root = stream.pickle("the saved object")?;
    let keys = stream.pickle("the storage key list")?;
    let mut declared = HashMap::new();
    declared_storages(&root, &mut declared)?;
    let section = read_section(&mut stream, keys, &declared)?;
    Ok((root, section))
}
