//! The wasm API of the web demo (web/app.js): a `Session` holds one model on WebGPU, or on the
//! CPU reference compiled to wasm when the browser has no WebGPU, and classifies photos with
//! the same preprocessing and kernels as `gaze classify`.

use std::rc::Rc;

use serde::{Deserialize, Serialize};
use wasm_bindgen::prelude::*;

use crate::classify::{decode, Classifier, Preprocess};
use crate::error::{Error, Result};
use crate::gpu::{Gpu, GpuOptions, Precision};
use crate::models::{self, Options};
use crate::weights::StateDict;

/// What the page asks for; the fields of a models.json entry it needs, plus the device.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SessionConfig {
    /// An architecture of `gaze run --arch`, or "auto": read from the checkpoint's keys.
    arch: String,
    #[serde(default)]
    options: Options,
    /// None: ImageNet's names for a 1000-class head, else "class i".
    labels: Option<Vec<String>>,
    /// `[C, H, W]` with mean, std and grayscale; None: the ImageNet evaluation transform.
    input: Option<[usize; 3]>,
    mean: Option<Vec<f32>>,
    std: Option<Vec<f32>>,
    #[serde(default)]
    grayscale: bool,
    /// Photos fitted to `1/replicate` of the input, each pixel repeated (models.json's field).
    #[serde(default)]
    replicate: Option<usize>,
    /// "auto" (WebGPU when the browser has it), "gpu" or "cpu".
    device: String,
    /// "f32" (the default) or "f16": how the GPU stores tensors (`--precision`); f16 needs
    /// device "gpu" and an adapter with shader-f16.
    #[serde(default)]
    precision: Option<String>,
    /// The entry of a torch.save container that holds the weights (`--key`); None: found as
    /// `gaze run` finds it.
    #[serde(default)]
    key: Option<String>,
}

impl SessionConfig {
    fn preprocess(&self) -> Result<Preprocess> {
        let Some(input) = self.input else {
            return Ok(Preprocess::ImageNet);
        };
        let (Some(mean), Some(std)) = (&self.mean, &self.std) else {
            return Err(Error::Invalid(
                "an `input` needs its `mean` and `std` (one per channel)".into(),
            ));
        };
        Preprocess::fit(input, mean.clone(), std.clone(), self.grayscale)?
            .replicated(self.replicate.unwrap_or(1))
    }
}

fn js(e: Error) -> JsError {
    JsError::new(&e.to_string())
}

async fn open_gpu(device: &str, precision: Precision) -> Result<Option<Gpu>> {
    let options = GpuOptions {
        precision,
        ..Default::default()
    };
    match (device, precision) {
        ("gpu", _) => Gpu::new(&options).await.map(Some),
        ("cpu", Precision::F32) => Ok(None),
        // No WebGPU (or no adapter): the CPU reference, which the page says plainly.
        ("auto", Precision::F32) => Ok(Gpu::new(&options).await.ok()),
        ("cpu" | "auto", _) => Err(Error::Invalid(format!(
            "precision {precision} needs device `gpu` (the CPU reference here runs f32)"
        ))),
        (other, _) => Err(Error::Invalid(format!(
            "device `{other}`: expected auto, gpu or cpu"
        ))),
    }
}

#[wasm_bindgen]
pub struct Session {
    model: Rc<Classifier>,
    arch: String,
}

#[wasm_bindgen]
impl Session {
    /// Loads `weights` (.safetensors or torch.save bytes; `file_name` names them in errors)
    /// with `config`, a JSON `SessionConfig`.
    pub async fn create(
        config: String,
        weights: Vec<u8>,
        file_name: String,
    ) -> std::result::Result<Session, JsError> {
        let config: SessionConfig = serde_json::from_str(&config)
            .map_err(|e| JsError::new(&format!("session config: {e}")))?;
        let sd =
            StateDict::from_bytes_entry(&weights, &file_name, config.key.as_deref()).map_err(js)?;
        let (arch, mut options) = if config.arch == "auto" {
            models::infer(&sd).ok_or_else(|| {
                JsError::new(&format!(
                    "{file_name}: its keys match none of the architectures; choose one"
                ))
            })?
        } else {
            (config.arch.clone(), Options::new())
        };
        options.extend(config.options.clone());
        let preprocess = config.preprocess().map_err(js)?;
        let precision = match &config.precision {
            Some(p) => p.parse().map_err(js)?,
            None => Precision::F32,
        };
        let gpu = open_gpu(&config.device, precision).await.map_err(js)?;
        let model =
            Classifier::new(&arch, &sd, &options, config.labels, preprocess, gpu).map_err(js)?;
        Ok(Session {
            model: Rc::new(model),
            arch,
        })
    }

    /// A session of `config.arch` with deterministic stand-in weights of the official
    /// configuration (1000 ImageNet classes, ImageNet preprocessing): for benchmarks and tests
    /// of networks no checkpoint is bundled for, such as ResNet-50 with Triplet Attention.
    pub async fn create_deterministic(config: String) -> std::result::Result<Session, JsError> {
        let config: SessionConfig = serde_json::from_str(&config)
            .map_err(|e| JsError::new(&format!("session config: {e}")))?;
        let precision = match &config.precision {
            Some(p) => p.parse().map_err(js)?,
            None => Precision::F32,
        };
        let gpu = open_gpu(&config.device, precision).await.map_err(js)?;
        let model = Classifier::synthetic(&config.arch, &config.options, Preprocess::ImageNet, gpu)
            .map_err(js)?;
        Ok(Session {
            model: Rc::new(model),
            arch: config.arch,
        })
    }

    /// The architecture that runs (the one read from the keys for "auto").
    pub fn arch(&self) -> String {
        self.arch.clone()
    }

    /// The adapter and backend, or the CPU reference.
    pub fn device(&self) -> String {
        self.model.device()
    }

    /// The adapter behind the session's own device, as the browser names it (empty on the
    /// CPU).
    pub fn adapter(&self) -> String {
        self.model.gpu().map_or(String::new(), |gpu| {
            gpu.browser_adapter_info()
                .unwrap_or_else(|| match gpu.adapter_name() {
                    "" => "an adapter the browser does not name".into(),
                    name => name.to_string(),
                })
        })
    }

    pub fn on_gpu(&self) -> bool {
        self.model.gpu().is_some()
    }

    /// `[{block, kind, maps: [{label, rows, cols}]}]` as JSON: the attention modules whose
    /// maps `classify` returns.
    pub fn attention_blocks(&self) -> std::result::Result<String, JsError> {
        let blocks: Vec<BlockJson> = self
            .model
            .taps()
            .iter()
            .map(|t| BlockJson {
                block: &t.block,
                kind: t.kind,
                maps: t
                    .maps
                    .iter()
                    .map(|m| MapJson {
                        label: m.label,
                        rows: m.rows,
                        cols: m.cols,
                        pixels: m.pixels,
                    })
                    .collect(),
            })
            .collect();
        to_json(&blocks)
    }

    /// Classifies a JPEG or PNG; resolves to JSON `{top, probabilities, attention}`.
    pub fn classify(&self, image: Vec<u8>, name: String) -> js_sys::Promise {
        let model = self.model.clone();
        wasm_bindgen_futures::future_to_promise(async move {
            let c = model
                .classify_image(&image, &name, true)
                .await
                .map_err(|e| JsValue::from(js(e)))?;
            Ok(JsValue::from_str(&to_json(&c)?))
        })
    }

    /// Classifies a JPEG or PNG with each step timed apart, for the page: decode, preprocess,
    /// `warm_runs` inferences alone (logits only), then one more that also reads the attention
    /// maps back. Resolves to JSON `{top, probabilities, attention, timings}`.
    pub fn classify_timed(&self, image: Vec<u8>, name: String, warm_runs: u32) -> js_sys::Promise {
        let model = self.model.clone();
        wasm_bindgen_futures::future_to_promise(async move {
            let js_err = |e: Error| JsValue::from(js(e));
            let now = clock()?;
            let start = now();
            let decoded = decode(&image, &name).map_err(js_err)?;
            let decoded_at = now();
            let x = model.preprocess().apply(&decoded).map_err(js_err)?;
            let preprocessed_at = now();
            let mut inference_ms = Vec::with_capacity(warm_runs as usize);
            for _ in 0..warm_runs {
                let t = now();
                model.classify(x.clone(), false).await.map_err(js_err)?;
                inference_ms.push(now() - t);
            }
            let t = now();
            let classification = model.classify(x, true).await.map_err(js_err)?;
            let timings = StepTimings {
                decode_ms: decoded_at - start,
                preprocess_ms: preprocessed_at - decoded_at,
                inference_ms,
                with_maps_ms: now() - t,
            };
            let timed = Timed {
                classification: &classification,
                timings,
            };
            Ok(JsValue::from_str(&to_json(&timed)?))
        })
    }

    /// `[H, W]` of the model input.
    pub fn input_size(&self) -> Vec<u32> {
        let s = self.model.preprocess().input_shape();
        vec![s[2] as u32, s[3] as u32]
    }

    /// The image as the model sees it (resized, cropped or padded, gray or color) as RGBA bytes
    /// of `input_size()`.
    pub fn input_view(
        &self,
        image: Vec<u8>,
        name: String,
    ) -> std::result::Result<Vec<u8>, JsError> {
        let p = self.model.preprocess();
        let x = p.apply(&decode(&image, &name).map_err(js)?).map_err(js)?;
        p.to_rgba(&x).map_err(js)
    }

    /// Times `iters` inferences of a fixed pseudo-random input (after one untimed run) and
    /// resolves to JSON `{"times_ms": [...]}`, for side-by-side benchmarks in the browser.
    pub fn benchmark(&self, iters: u32) -> js_sys::Promise {
        let model = self.model.clone();
        wasm_bindgen_futures::future_to_promise(async move {
            let shape = model.preprocess().input_shape();
            let x = crate::tensor::Tensor::from_fn(&shape, |i| {
                ((i * 7919 % 1000) as f32) / 500.0 - 1.0
            });
            let now = clock()?;
            model
                .classify(x.clone(), false)
                .await
                .map_err(|e| JsValue::from(js(e)))?;
            let mut times = Vec::with_capacity(iters as usize);
            for _ in 0..iters {
                let start = now();
                model
                    .classify(x.clone(), false)
                    .await
                    .map_err(|e| JsValue::from(js(e)))?;
                times.push(now() - start);
            }
            Ok(JsValue::from_str(&to_json(&Timings { times_ms: times })?))
        })
    }

    /// Destroys the GPU device as a driver reset would, so the page's recovery can be tested.
    pub fn lose_device_for_test(&self) {
        if let Some(gpu) = self.model.gpu() {
            gpu.destroy_for_test();
        }
    }
}

/// Every architecture name, as JSON, for the page's picker.
#[wasm_bindgen]
pub fn architectures() -> std::result::Result<String, JsError> {
    to_json(&models::ARCHITECTURES)
}

/// Every kernel the browser may run (those needing no device feature), as JSON
/// `[{"name", "wgsl"}]`: the browser test compiles each in the browser's own WebGPU, because a
/// shader naga accepts can still break a browser's compiler.
#[wasm_bindgen(js_name = browserKernels)]
pub fn browser_kernels() -> std::result::Result<String, JsError> {
    let kernels: Vec<KernelSource> = crate::kernels::all()
        .into_iter()
        .filter(|k| k.features.is_empty())
        .map(|k| KernelSource {
            name: k.name,
            wgsl: k.wgsl(Precision::F32),
        })
        .collect();
    to_json(&kernels)
}

/// An attention module of `Session::attention_blocks`.
#[derive(Serialize)]
struct BlockJson<'a> {
    block: &'a str,
    kind: &'a str,
    maps: Vec<MapJson<'a>>,
}

#[derive(Serialize)]
struct MapJson<'a> {
    label: &'a str,
    rows: usize,
    cols: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pixels: Option<[usize; 2]>,
}

/// performance.now(): sub-millisecond, unlike Date.now().
fn clock() -> std::result::Result<impl Fn() -> f64, JsValue> {
    let performance = web_sys::window()
        .and_then(|w| w.performance())
        .ok_or_else(|| JsValue::from(JsError::new("no window.performance")))?;
    Ok(move || performance.now())
}

/// `Session::classify_timed`'s result: the classification with its steps' times.
#[derive(Serialize)]
struct Timed<'a> {
    #[serde(flatten)]
    classification: &'a crate::classify::Classification,
    timings: StepTimings,
}

#[derive(Serialize)]
struct StepTimings {
    decode_ms: f64,
    preprocess_ms: f64,
    /// One per inference without the maps (the first of a new session is its cold run).
    inference_ms: Vec<f64>,
    /// The run that also reads the attention maps back, and reads them.
    with_maps_ms: f64,
}

/// `Session::benchmark`'s result.
#[derive(Serialize)]
struct Timings {
    times_ms: Vec<f64>,
}

/// A kernel's name and full WGSL, for the browser test to compile.
#[derive(Serialize)]
struct KernelSource {
    name: &'static str,
    wgsl: String,
}

fn to_json<T: Serialize + ?Sized>(value: &T) -> std::result::Result<String, JsError> {
    serde_json::to_string(value).map_err(|e| JsError::new(&format!("JSON: {e}")))
}

#[wasm_bindgen(start)]
fn start() {
    // A panic would otherwise reach the console as a bare "unreachable".
    std::panic::set_hook(Box::new(|info| {
        web_sys::console::error_1(&format!("gaze: {info}").into());
    }));
}
