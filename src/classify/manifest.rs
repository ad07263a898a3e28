//! `web/models/models.json`: the bundled demo models, read by the page and by `gaze classify
//! --manifest` so that both classify a photo the same way.

use serde::{Deserialize, Serialize};

use super::Preprocess;
use crate::error::{Error, Result};
use crate::models::{self, Options};

/// One model of the manifest.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ModelEntry {
    /// A short name for `--model` (the display name and the arch work too).
    #[serde(default)]
    pub id: Option<String>,
    pub name: String,
    /// An architecture of `gaze run --arch`.
    pub arch: String,
    /// The weights file, relative to the manifest.
    pub weights: String,
    pub labels: Vec<String>,
    /// `[C, H, W]` of one image.
    pub input: [usize; 3],
    /// Per-channel normalization of pixels in [0, 1].
    pub mean: Vec<f32>,
    pub std: Vec<f32>,
    /// Photos become one gray channel (repeated to `C`), dark objects on light backgrounds
    /// inverted, as the training images are light objects on black.
    #[serde(default)]
    pub grayscale: bool,
    /// Photos are fitted to `1/replicate` of the input and each pixel repeated, as the model was
    /// trained on upscaled small images (1: fitted to the input itself).
    #[serde(default = "one")]
    pub replicate: usize,
    #[serde(default)]
    pub options: Options,
    pub pytorch_test_accuracy: Option<f64>,
}

fn one() -> usize {
    1
}

impl ModelEntry {
    pub fn preprocess(&self) -> Result<Preprocess> {
        Preprocess::fit(
            self.input,
            self.mean.clone(),
            self.std.clone(),
            self.grayscale,
        )?
        .replicated(self.replicate)
    }

    fn check(&self, source: &str) -> Result<()> {
        let bad = |msg: String| {
            Err(Error::Invalid(format!(
                "{source}: model `{}`: {msg}",
                self.name
            )))
        };
        if !models::ARCHITECTURES.contains(&self.arch.as_str()) {
            return bad(format!(
                "unknown arch `{}` (known: {})",
                self.arch,
                models::ARCHITECTURES.join(", ")
            ));
        }
        if let Err(e) = self.preprocess() {
            return bad(e.to_string());
        }
        if self.labels.is_empty() {
            return bad("has no labels".into());
        }
        Ok(())
    }
}

/// A manifest file's entries, checked.
pub fn read_manifest(path: &str) -> Result<Vec<ModelEntry>> {
    let bytes = std::fs::read(path).map_err(|source| Error::Io {
        path: path.to_string(),
        source,
    })?;
    let text =
        String::from_utf8(bytes).map_err(|_| Error::Invalid(format!("{path}: not UTF-8 text")))?;
    parse_manifest(&text, path)
}

/// The entry `name` calls: by id, display name or arch (`None`: the first).
pub fn find_model<'a>(
    entries: &'a [ModelEntry],
    name: Option<&str>,
    source: &str,
) -> Result<&'a ModelEntry> {
    let Some(name) = name else {
        return entries
            .first()
            .ok_or_else(|| Error::Invalid(format!("{source}: lists no models")));
    };
    let by = |f: &dyn Fn(&ModelEntry) -> bool| entries.iter().find(|e| f(e));
    by(&|e| e.id.as_deref() == Some(name))
        .or_else(|| by(&|e| e.name == name))
        .or_else(|| by(&|e| e.arch == name))
        .ok_or_else(|| {
            let names: Vec<&str> = entries
                .iter()
                .map(|e| e.id.as_deref().unwrap_or(&e.name))
                .collect();
            Error::Invalid(format!(
                "{source} has no model `{name}` (it has: {})",
                names.join(", ")
            ))
        })
}

impl ModelEntry {
    /// The weights file, which the manifest names relative to itself.
    pub fn weights_path(&self, manifest: &str) -> String {
        let dir = std::path::Path::new(manifest)
            .parent()
            .unwrap_or(std::path::Path::new("."));
        dir.join(&self.weights).to_string_lossy().into_owned()
    }

    /// The manifest's options, with the command line's `--opt` winning.
    pub fn options_with(&self, cli: Options) -> Options {
        let mut merged = self.options.clone();
        merged.extend(cli);
        merged
    }
}

/// Parses and checks a manifest; `source` names it in errors.
pub fn parse_manifest(text: &str, source: &str) -> Result<Vec<ModelEntry>> {
    let entries: Vec<ModelEntry> = serde_json::from_str(text)
        .map_err(|e| Error::Invalid(format!("{source}: not a models.json manifest: {e}")))?;
    if entries.is_empty() {
        return Err(Error::Invalid(format!("{source}: lists no models")));
    }
    for e in &entries {
        e.check(source)?;
    }
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ENTRY: &str = r#"[{"name": "m", "arch": "mobilenet_v2_ta", "weights": "m.safetensors",
        "labels": ["a", "b"], "input": [3, 28, 28], "mean": [0.5, 0.5, 0.5],
        "std": [0.25, 0.25, 0.25], "grayscale": true, "pytorch_test_accuracy": 0.9}]"#;

    #[test]
    fn reads_an_entry() {
        let e = &parse_manifest(ENTRY, "models.json").unwrap()[0];
        assert_eq!((e.arch.as_str(), e.input), ("mobilenet_v2_ta", [3, 28, 28]));
        assert!(e.grayscale);
    }

    #[test]
    fn finds_a_model_by_id_name_or_arch() {
        let text = ENTRY.replace(r#""name": "m""#, r#""id": "ta", "name": "m""#);
        let entries = parse_manifest(&text, "models.json").unwrap();
        for name in ["ta", "m", "mobilenet_v2_ta"] {
            assert_eq!(find_model(&entries, Some(name), "j").unwrap().name, "m");
        }
        let err = find_model(&entries, Some("san"), "j").unwrap_err();
        assert!(
            err.to_string().contains("no model `san` (it has: ta)"),
            "{err}"
        );
    }

    #[test]
    fn names_what_is_wrong() {
        let cases = [
            (
                ENTRY.replace("mobilenet_v2_ta", "vgg16"),
                "unknown arch `vgg16`",
            ),
            (
                ENTRY.replace("[0.5, 0.5, 0.5]", "[0.5]"),
                "mean and std need 3 values",
            ),
            (
                ENTRY.replace("[0.25, 0.25, 0.25]", "[0.25, 0, 0.25]"),
                "must be positive",
            ),
            (
                ENTRY.replace("\"labels\": [\"a\", \"b\"]", "\"labels\": []"),
                "no labels",
            ),
            (
                ENTRY.replace("\"grayscale\"", "\"greyscale\""),
                "unknown field `greyscale`",
            ),
            ("[]".to_string(), "lists no models"),
            ("{".to_string(), "not a models.json manifest"),
        ];
        for (text, want) in cases {
            let err = parse_manifest(&text, "models.json")
                .unwrap_err()
                .to_string();
            assert!(err.contains(want), "{want}: got {err}");
        }
    }
}
