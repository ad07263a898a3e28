//! `torch.save` zip checkpoints (PyTorch 1.6 and later): `<archive>/data.pkl` plus one entry per
//! storage, `<archive>/data/<key>`.

use std::collections::HashMap;
use std::io::{Cursor, Read};

use super::pickle::{self, Value};
use super::torch_file::Storages;

struct Archive<'a> {
    zip: zip::ZipArchive<Cursor<&'a [u8]>>,
    prefix: String,
    file_len: usize,
    storages: HashMap<String, Vec<u8>>,
    big_endian: bool,
}

impl Archive<'_> {
    /// The bytes of entry `<prefix>/<name>`; never more than the file itself holds.
    fn entry(&mut self, name: &str) -> Result<Vec<u8>, String> {
        let path = format!("{}{name}", self.prefix);
        let mut file = self
            .zip
            .by_name(&path)
            .map_err(|e| format!("archive entry `{path}`: {e}"))?;
        if file.size() > self.file_len as u64 {
            return Err(format!(
                "archive entry `{path}` claims more bytes than the file has"
            ));
        }
        let mut out = Vec::with_capacity(file.size() as usize);
        file.read_to_end(&mut out)
            .map_err(|e| format!("archive entry `{path}`: {e}"))?;
        Ok(out)
    }
}

impl Storages for Archive<'_> {
    fn bytes(&mut self, key: &str) -> Result<&[u8], String> {
        if !self.storages.contains_key(key) {
            let data = self.entry(&format!("data/{key}"))?;
            self.storages.insert(key.to_string(), data);
        }
        Ok(&self.storages[key])
    }

    fn big_endian(&self) -> bool {
        self.big_endian
    }
}

/// Smallest central directory entry: a 46-byte header with an empty name.
const MIN_DIRECTORY_ENTRY: u64 = 46;

/// The zip reader reserves room for as many entries as the end-of-central-directory record
/// declares, about a kilobyte each, before reading any: a few forged bytes could make it
/// reserve gigabytes. Every such record the reader may pick (any within the last 64 KiB, as it
/// searches, and the ZIP64 record its locator points to) must declare no more entries than
/// the file has room for.
fn check_entry_counts(bytes: &[u8]) -> Result<(), String> {
    let len = bytes.len() as u64;
    let u16_at = |at: usize| {
        bytes
            .get(at..at + 2)
            .map(|b| u16::from_le_bytes([b[0], b[1]]))
    };
    let u64_at = |at: usize| {
        bytes
            .get(at..at + 8)
            .and_then(|b| b.try_into().ok())
            .map(u64::from_le_bytes)
    };
    let tail = bytes.len().saturating_sub(22 + 65_535);
    for at in tail..bytes.len().saturating_sub(3) {
        if bytes[at..at + 4] != *b"PK\x05\x06" {
            continue;
        }
        // The entries on this disk and in all; the reader may size its table by either.
        let mut counts = vec![
            u16_at(at + 8).map(u64::from),
            u16_at(at + 10).map(u64::from),
        ];
        // ZIP64: the locator just before the record gives the offset of the real counts.
        if at >= 20 && bytes[at - 20..at - 16] == *b"PK\x06\x07" {
            let record = u64_at(at - 20 + 8).and_then(|o| usize::try_from(o).ok());
            if let Some(record) = record.filter(|&r| bytes.get(r..r + 4) == Some(b"PK\x06\x06")) {
                counts.extend([u64_at(record + 24), u64_at(record + 32)]);
            }
        }
        if let Some(n) = counts
            .into_iter()
            .flatten()
            .find(|&n| n.saturating_mul(MIN_DIRECTORY_ENTRY) > len)
        {
            return Err(format!(
                "not a readable torch.save zip archive: it declares {n} entries, more than its \
                 {len} bytes can hold"
            ));
        }
    }
    Ok(())
}

/// The saved object of a zip checkpoint, and its storages.
pub fn open(bytes: &[u8]) -> Result<(Value, impl Storages + '_), String> {
    check_entry_counts(bytes)?;
    let zip = zip::ZipArchive::new(Cursor::new(bytes))
        .map_err(|e| format!("not a readable torch.save zip archive: {e}"))?;
    let pkl = zip
        .file_names()
        .find(|n| n.ends_with("data.pkl") && n.matches('/').count() == 1)
        .ok_or("the archive has no data.pkl: not a torch.save checkpoint")?
        .to_string();
    let prefix = pkl.trim_end_matches("data.pkl").to_string();
    let mut archive = Archive {
        zip,
        prefix,
        file_len: bytes.len(),
        storages: HashMap::new(),
        big_endian: false,
    };
    // PyTorch 2.1+ records the writer's byte order and stores the storages in it; files
    // without the record are little-endian.
    archive.big_endian = match archive.entry("byteorder") {
        Ok(order) if order == b"big" => true,
        Ok(order) if order == b"little" => false,
        Ok(order) => {
            return Err(format!(
                "its byteorder record says `{}`, neither little nor big",
                String::from_utf8_lossy(&order)
            ))
        }
        Err(_) => false,
    };
    let root = pickle::load(&archive.entry("data.pkl")?).map_err(|e| e.to_string())?;
    Ok((root, archive))
}
