//! The tuner's choices, kept per adapter: a JSON file under the user's cache dir natively, a
//! string the JS package keeps in localStorage in the browser. An entry holds only for the
//! adapter, driver and gaze version it was measured with; storing under a new driver or
//! version drops the adapter's older entries.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Bumped when the file's meaning changes; a file of another format is read as empty.
const FORMAT: u32 = 1;

/// What a measurement holds for: the adapter, its driver and the gaze that measured.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdapterKey {
    pub adapter: String,
    pub driver: String,
    pub gaze: String,
}

impl AdapterKey {
    /// This build of gaze on `adapter` with `driver`.
    pub fn new(adapter: &str, driver: &str) -> Self {
        Self {
            adapter: adapter.to_string(),
            driver: driver.to_string(),
            gaze: env!("CARGO_PKG_VERSION").to_string(),
        }
    }
}

/// The variant chosen for one op signature, and what each candidate measured (milliseconds).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Choice {
    pub variant: String,
    pub ms: BTreeMap<String, f64>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct CacheFile {
    format: u32,
    adapters: Vec<AdapterEntry>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct AdapterEntry {
    #[serde(flatten)]
    key: AdapterKey,
    choices: BTreeMap<String, Choice>,
}

/// Choices by adapter and op signature, with where they are saved (if anywhere).
#[derive(Debug, Default)]
pub struct TuneCache {
    path: Option<PathBuf>,
    file: CacheFile,
}

impl TuneCache {
    /// An empty cache saved nowhere.
    pub fn in_memory() -> Self {
        Self::default()
    }

    /// The cache in `json` (the browser's copy); empty if it is of another format. An error
    /// names what does not parse.
    pub fn from_json(json: &str) -> Result<Self> {
        let file: CacheFile = serde_json::from_str(json)
            .map_err(|e| Error::Invalid(format!("the tuning cache does not parse: {e}")))?;
        Ok(Self {
            path: None,
            file: if file.format == FORMAT {
                file
            } else {
                CacheFile::default()
            },
        })
    }

    /// The cache saved at `path`: empty where there is no file yet.
    pub fn load(path: &Path) -> Result<Self> {
        let mut cache = match std::fs::read_to_string(path) {
            Ok(json) => Self::from_json(&json).map_err(|e| {
                Error::Invalid(format!("{} (delete {} to start again)", e, path.display()))
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Self::default(),
            Err(e) => {
                return Err(Error::Io {
                    path: path.display().to_string(),
                    source: e,
                })
            }
        };
        cache.path = Some(path.to_path_buf());
        Ok(cache)
    }

    /// Where the CLI keeps the cache: `GAZE_TUNE_CACHE`, else `gaze/tune.json` under the
    /// user's cache dir; `None` where the platform has none.
    pub fn default_path() -> Option<PathBuf> {
        if let Some(p) = std::env::var_os("GAZE_TUNE_CACHE").filter(|p| !p.is_empty()) {
            return Some(PathBuf::from(p));
        }
        #[cfg(not(target_arch = "wasm32"))]
        return dirs::cache_dir().map(|d| d.join("gaze").join("tune.json"));
        #[cfg(target_arch = "wasm32")]
        None
    }

    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// The choice measured for `signature` with exactly this adapter, driver and gaze.
    pub fn get(&self, key: &AdapterKey, signature: &str) -> Option<&Choice> {
        self.file
            .adapters
            .iter()
            .find(|e| e.key == *key)?
            .choices
            .get(signature)
    }

    /// Keeps `choice` for `signature` under `key`. Entries of the same adapter measured with
    /// another driver or gaze version are dropped: they would never be read again.
    pub fn put(&mut self, key: &AdapterKey, signature: &str, choice: Choice) {
        self.file.format = FORMAT;
        let adapters = &mut self.file.adapters;
        adapters.retain(|e| e.key.adapter != key.adapter || e.key == *key);
        let entry = match adapters.iter().position(|e| e.key == *key) {
            Some(i) => &mut adapters[i],
            None => {
                adapters.push(AdapterEntry {
                    key: key.clone(),
                    choices: BTreeMap::new(),
                });
                let last = adapters.len() - 1;
                &mut adapters[last]
            }
        };
        entry.choices.insert(signature.to_string(), choice);
    }

    pub fn to_json(&self) -> Result<String> {
        serde_json::to_string_pretty(&self.file)
            .map_err(|e| Error::Invalid(format!("the tuning cache does not serialize: {e}")))
    }

    /// Writes the cache where it was loaded from (nothing for one that lives in memory),
    /// through a temporary file so a reader never sees half of it.
    pub fn save(&self) -> Result<()> {
        let Some(path) = &self.path else {
            return Ok(());
        };
        let io = |e: std::io::Error| Error::Io {
            path: path.display().to_string(),
            source: e,
        };
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        let tmp = path.with_extension(format!("json.{}", std::process::id()));
        std::fs::write(&tmp, self.to_json()?).map_err(io)?;
        std::fs::rename(&tmp, path).map_err(io)
    }
}
