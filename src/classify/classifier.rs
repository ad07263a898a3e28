//! A model ready to classify photos, on the GPU or on the CPU reference, with the attention
//! maps of its attention modules read back for display. `gaze classify` and the web page both
//! classify through it, so they give the same numbers.

use serde::Serialize;

use super::{decode, imagenet_labels, softmax, top_k, Preprocess};
use crate::error::{Error, Result};
use std::rc::Rc;

use super::model::{Model, Source};
use crate::gpu::{Gpu, Precision};
use crate::graph::{AttentionTap, ValueId};
use crate::models::Options;
use crate::tensor::Tensor;
use crate::weights::StateDict;

/// One class with its softmax probability.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Prediction {
    pub index: usize,
    pub label: String,
    pub probability: f32,
}

/// One attention map, `rows × cols` row-major.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct MapReading {
    pub label: &'static str,
    pub rows: usize,
    pub cols: usize,
    /// `[Ho, Wo]` when each column is a pixel and each row a tap of its window (SAN).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pixels: Option<[usize; 2]>,
    pub data: Vec<f32>,
}

/// The maps of one attention module.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct AttentionReading {
    pub block: String,
    pub kind: &'static str,
    pub maps: Vec<MapReading>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Classification {
    /// The five most probable classes (fewer if the model has fewer).
    pub top: Vec<Prediction>,
    pub probabilities: Vec<f32>,
    /// Empty unless asked for.
    pub attention: Vec<AttentionReading>,
}

pub struct Classifier {
    model: Rc<Model>,
    labels: Vec<String>,
    preprocess: Preprocess,
}

impl Classifier {
    /// Builds `arch` from `weights` for one image of the preprocessing's size; runs on `gpu`,
    /// or on the CPU reference when it is `None`. Without `labels`, a 1000-class model gets
    /// ImageNet's class names and any other "class 0", "class 1", ...
    pub fn new(
        arch: &str,
        weights: StateDict,
        options: &Options,
        labels: Option<Vec<String>>,
        preprocess: Preprocess,
        gpu: Option<Gpu>,
    ) -> Result<Self> {
        let source = Source::Checkpoint(weights);
        Self::from_source(arch, source, options, labels, preprocess, gpu)
    }

    /// `new` with deterministic stand-in weights of the official configuration (1000 ImageNet
    /// classes), for benchmarks and tests where no checkpoint is at hand.
    pub fn synthetic(
        arch: &str,
        options: &Options,
        preprocess: Preprocess,
        gpu: Option<Gpu>,
    ) -> Result<Self> {
        let source = Source::Synthetic { seed: 0 };
        Self::from_source(arch, source, options, None, preprocess, gpu)
    }

    fn from_source(
        arch: &str,
        source: Source,
        options: &Options,
        labels: Option<Vec<String>>,
        preprocess: Preprocess,
        gpu: Option<Gpu>,
    ) -> Result<Self> {
        let shape = [preprocess.input_shape()];
        let model = Model::new(arch, source, options, gpu, Some(&shape))?;
        Self::from_model(Rc::new(model), labels, preprocess)
    }

    /// A classifier over `model`, which must give class scores for the preprocessing's input.
    pub fn from_model(
        model: Rc<Model>,
        labels: Option<Vec<String>>,
        preprocess: Preprocess,
    ) -> Result<Self> {
        let input = preprocess.input_shape();
        let out = model
            .built_for(std::slice::from_ref(&input))?
            .output_shape(std::slice::from_ref(&input))?;
        let arch = model.arch();
        let classes = match out.as_slice() {
            [1, classes] if model.input_count() == 1 => *classes,
            _ => {
                return Err(Error::Invalid(format!(
                    "{arch} gives a {out:?} tensor, not class scores: classify with a network \
                     (modules run with `gaze run`)"
                )))
            }
        };
        let labels = labels.unwrap_or_else(|| {
            let imagenet = imagenet_labels();
            if classes == imagenet.len() {
                imagenet.iter().map(|s| s.to_string()).collect()
            } else {
                (0..classes).map(|i| format!("class {i}")).collect()
            }
        });
        if classes != labels.len() {
            return Err(Error::Invalid(format!(
                "{}: the model gives {classes} classes but {} labels are given",
                model.source_name(),
                labels.len()
            )));
        }
        Ok(Self {
            model,
            labels,
            preprocess,
        })
    }

    /// Where the model runs, for display.
    pub fn device(&self) -> String {
        self.model.device()
    }

    pub fn gpu(&self) -> Option<&Gpu> {
        self.model.gpu()
    }

    pub fn model(&self) -> &Rc<Model> {
        &self.model
    }

    pub fn labels(&self) -> &[String] {
        &self.labels
    }

    /// The attention modules whose maps `classify` can return.
    pub fn taps(&self) -> Vec<AttentionTap> {
        let input = self.preprocess.input_shape();
        self.model
            .built_for(std::slice::from_ref(&input))
            .map(|b| b.taps().to_vec())
            .unwrap_or_default()
    }

    pub fn preprocess(&self) -> &Preprocess {
        &self.preprocess
    }

    /// Decodes a JPEG or PNG (`name` is for errors) and classifies it.
    pub async fn classify_image(
        &self,
        bytes: &[u8],
        name: &str,
        attention: bool,
    ) -> Result<Classification> {
        let x = self.preprocess.apply(&decode(bytes, name)?)?;
        self.classify(x, attention).await
    }

    /// Classifies one preprocessed image `[1, C, H, W]`.
    pub async fn classify(&self, x: Tensor, attention: bool) -> Result<Classification> {
        let ran = self.model.run(&[x], attention).await?;
        let logits = &ran.output;
        if logits.data().iter().any(|v| !v.is_finite()) {
            let precision = self.gpu().map_or(Precision::F32, Gpu::precision);
            return Err(Error::Invalid(format!(
                "the model produced NaN or infinite logits for this image (NaN or Inf in the \
                 weights, or {})",
                precision.overflow()
            )));
        }
        let probabilities = softmax(logits.data());
        let top = top_k(&probabilities, 5)
            .into_iter()
            .map(|(index, probability)| Prediction {
                index,
                label: self.labels[index].clone(),
                probability,
            })
            .collect();
        let attention = if attention {
            read_taps(ran.built.taps(), &ran.kept_ids, &ran.kept)?
        } else {
            Vec::new()
        };
        Ok(Classification {
            top,
            probabilities,
            attention,
        })
    }
}

fn read_taps(
    taps: &[AttentionTap],
    keep: &[ValueId],
    kept: &[Tensor],
) -> Result<Vec<AttentionReading>> {
    let value = |v: ValueId| -> Result<&Tensor> {
        keep.iter()
            .position(|&k| k == v)
            .map(|i| &kept[i])
            .ok_or_else(|| Error::Invalid(format!("value {v} was not kept")))
    };
    taps.iter()
        .map(|tap| {
            let maps = tap
                .maps
                .iter()
                .map(|m| {
                    let t = value(m.value)?;
                    if t.numel() != m.per_image {
                        return Err(Error::Invalid(format!(
                            "{}: the {} map expects {} values per image, the value has {}",
                            tap.block,
                            m.label,
                            m.per_image,
                            t.numel()
                        )));
                    }
                    Ok(MapReading {
                        label: m.label,
                        rows: m.rows,
                        cols: m.cols,
                        pixels: m.pixels,
                        data: m.read(t.data(), 0)?,
                    })
                })
                .collect::<Result<_>>()?;
            Ok(AttentionReading {
                block: tap.block.clone(),
                kind: tap.kind,
                maps,
            })
        })
        .collect()
}
