//! The wasm API of the web demo (web/app.js): a `Session` holds one model on WebGPU, or on the
//! CPU reference compiled to wasm when the browser has no WebGPU, and classifies photos with
//! the same preprocessing and kernels as `gaze classify`.

use std::cell::RefCell;
use std::ops::Not;
use std::rc::Rc;

use serde::{Deserialize, Serialize};

use crate::graph::fuse::Fusion;
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;

use crate::classify::{Classifier, Model, Preprocess, Source};
use crate::error::{Error, Result};
use crate::gpu::{Gpu, GpuOptions, Precision};
use crate::models::{self, Options};
use crate::tune::TuneMode;
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
    /// How plans choose kernel variants: "off", "cache" (the default) or "on" (`GAZE_TUNE`).
    /// The package measures ("on") through `Session::tune`.
    #[serde(default)]
    tune: Option<String>,
    /// The tuning cache's JSON, as the package keeps it between visits.
    #[serde(default)]
    tune_cache: Option<String>,
    /// Whether plans fuse ops into their neighbours' kernels: "on" (the default), "off" or
    /// "everywhere" (`GAZE_FUSION`).
    #[serde(default)]
    fusion: Option<String>,
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

/// A JS `Error` whose `code` names the kind of failure (`Error::code`), for apps to act on.
fn js(e: Error) -> JsValue {
    coded(&e.to_string(), e.code())
}

fn coded(message: &str, code: &str) -> JsValue {
    let err = js_sys::Error::new(message);
    // Setting a property on a fresh Error cannot fail.
    let _ = js_sys::Reflect::set(&err, &"code".into(), &code.into());
    err.into()
}

fn disposed() -> JsValue {
    coded(
        "this session was disposed of: its GPU memory and device are released; create a new one",
        "disposed",
    )
}

fn bad_input(message: String) -> JsValue {
    coded(&message, "bad-input")
}

async fn open_gpu(config: &SessionConfig, precision: Precision) -> Result<Option<Gpu>> {
    let tune = match &config.tune {
        Some(mode) => mode.parse()?,
        None => TuneMode::default(),
    };
    let fusion = match &config.fusion {
        Some(fusion) => fusion.parse()?,
        None => Fusion::default(),
    };
    let options = GpuOptions {
        precision,
        tune,
        tune_cache: config.tune_cache.clone(),
        fusion,
        ..Default::default()
    };
    let device = config.device.as_str();
    match (device, precision) {
        ("gpu", _) => Gpu::new(&options).await.map(Some),
        ("cpu", Precision::F32) => Ok(None),
        // No WebGPU (or no adapter): the CPU reference, which the page says plainly.
        ("auto", Precision::F32) => Ok(Gpu::new(&options).await.ok()),
        ("cpu" | "auto", _) => Err(Error::Input(format!(
            "precision {precision} needs device `gpu` (the CPU reference here runs f32)"
        ))),
        (other, _) => Err(Error::Input(format!(
            "device `{other}`: expected auto, gpu or cpu"
        ))),
    }
}

fn parse_config(config: &str) -> std::result::Result<SessionConfig, JsValue> {
    serde_json::from_str(config).map_err(|e| bad_input(format!("session config: {e}")))
}

fn precision_of(config: &SessionConfig) -> std::result::Result<Precision, JsValue> {
    match &config.precision {
        Some(p) => p.parse().map_err(|e: Error| bad_input(e.to_string())),
        None => Ok(Precision::F32),
    }
}

/// What a live session holds: the model, and for networks the classifier over it.
#[derive(Clone)]
struct Live {
    model: Rc<Model>,
    classifier: Option<Rc<Classifier>>,
}

impl Live {
    fn classifier(&self) -> std::result::Result<Rc<Classifier>, JsValue> {
        self.classifier.clone().ok_or_else(|| {
            bad_input(format!(
                "{} is a module, not a classifier: give it tensors with run()",
                self.model.arch()
            ))
        })
    }
}

#[wasm_bindgen]
pub struct Session {
    live: RefCell<Option<Live>>,
    arch: String,
    device: String,
    adapter: String,
}

impl Session {
    /// A session over `model`; networks also classify (modules only run).
    fn over(
        model: Model,
        labels: Option<Vec<String>>,
        preprocess: Preprocess,
    ) -> std::result::Result<Session, JsValue> {
        let model = Rc::new(model);
        let classifier = if models::is_module(model.arch()) {
            None
        } else {
            let c = Classifier::from_model(model.clone(), labels, preprocess).map_err(js)?;
            Some(Rc::new(c))
        };
        let device = model.device();
        let adapter = model.gpu().map_or(String::new(), |gpu| {
            gpu.browser_adapter_info()
                .unwrap_or_else(|| match gpu.adapter_name() {
                    "" => "an adapter the browser does not name".into(),
                    name => name.to_string(),
                })
        });
        Ok(Session {
            arch: model.arch().to_string(),
            live: RefCell::new(Some(Live { model, classifier })),
            device,
            adapter,
        })
    }

    fn live(&self) -> std::result::Result<Live, JsValue> {
        self.live.borrow().clone().ok_or_else(disposed)
    }
}

#[wasm_bindgen]
impl Session {
    /// Loads `weights` (.safetensors or torch.save bytes; `file_name` names them in errors)
    /// with `config`, a JSON `SessionConfig`. Rejects with an `Error` whose `code` is
    /// `bad-checkpoint`, `bad-input`, `no-adapter` or `f16-unsupported`.
    pub async fn create(
        config: String,
        weights: Vec<u8>,
        file_name: String,
    ) -> std::result::Result<Session, JsValue> {
        let config = parse_config(&config)?;
        let sd =
            StateDict::from_bytes_entry(&weights, &file_name, config.key.as_deref()).map_err(js)?;
        drop(weights);
        let (arch, mut options) = if config.arch == "auto" {
            models::infer(&sd).ok_or_else(|| {
                coded(
                    &format!("{file_name}: its keys match none of the architectures; choose one"),
                    "bad-checkpoint",
                )
            })?
        } else {
            (config.arch.clone(), Options::new())
        };
        options.extend(config.options.clone());
        let preprocess = config.preprocess().map_err(js)?;
        let gpu = open_gpu(&config, precision_of(&config)?)
            .await
            .map_err(js)?;
        let shape = first_shape(&arch, &config, &preprocess);
        let model = Model::new(
            &arch,
            Source::Checkpoint(sd),
            &options,
            gpu,
            shape.as_deref(),
        )
        .map_err(js)?;
        Session::over(model, config.labels, preprocess)
    }

    /// A session of `config.arch` with deterministic stand-in weights of the official
    /// configuration (1000 ImageNet classes, ImageNet preprocessing): for benchmarks and tests
    /// of networks no checkpoint is bundled for, such as ResNet-50 with Triplet Attention.
    pub async fn create_deterministic(config: String) -> std::result::Result<Session, JsValue> {
        let config = parse_config(&config)?;
        let gpu = open_gpu(&config, precision_of(&config)?)
            .await
            .map_err(js)?;
        let preprocess = Preprocess::ImageNet;
        let shape = first_shape(&config.arch, &config, &preprocess);
        let source = Source::Synthetic { seed: 0 };
        let model =
            Model::new(&config.arch, source, &config.options, gpu, shape.as_deref()).map_err(js)?;
        Session::over(model, None, preprocess)
    }

    /// The architecture that runs (the one read from the keys for "auto").
    pub fn arch(&self) -> String {
        self.arch.clone()
    }

    /// The adapter and backend, or the CPU reference.
    pub fn device(&self) -> String {
        self.device.clone()
    }

    /// The adapter behind the session's own device, as the browser names it (empty on the
    /// CPU).
    pub fn adapter(&self) -> String {
        self.adapter.clone()
    }

    pub fn on_gpu(&self) -> bool {
        self.adapter.is_empty().not()
    }

    /// The class names, as JSON (an empty list for modules).
    pub fn labels(&self) -> std::result::Result<String, JsValue> {
        let live = self.live()?;
        let labels = live.classifier.as_ref().map_or(&[][..], |c| c.labels());
        to_json(labels)
    }

    /// How many input tensors `run` takes (AFF and iAFF: `x`, then `residual`).
    pub fn input_count(&self) -> std::result::Result<u32, JsValue> {
        Ok(self.live()?.model.input_count() as u32)
    }

    /// Runs the model on raw tensors: `inputs` is an array of `{data: Float32Array, dims}`
    /// (NCHW, any batch); resolves to `{data: Float32Array, dims}`, the logits of networks or
    /// the output of modules.
    pub fn run(&self, inputs: js_sys::Array) -> js_sys::Promise {
        let live = self.live();
        wasm_bindgen_futures::future_to_promise(async move {
            let live = live?;
            let tensors = tensors_from_js(&inputs, live.model.input_count())?;
            let ran = live.model.run(&tensors, false).await.map_err(js)?;
            tensor_to_js(&ran.output)
        })
    }

    /// Classifies an RGBA image of `width × height` (as the browser decoded it) with the same
    /// preprocessing as `gaze classify`; resolves to JSON `{top, probabilities, attention,
    /// ms}`, `ms` the inference alone.
    pub fn classify_rgba(
        &self,
        rgba: Vec<u8>,
        width: u32,
        height: u32,
        attention: bool,
    ) -> js_sys::Promise {
        let live = self.live();
        wasm_bindgen_futures::future_to_promise(async move {
            let classifier = live?.classifier()?;
            let x = classifier
                .preprocess()
                .apply(&rgba_image(rgba, width, height)?)
                .map_err(js)?;
            let now = clock()?;
            let start = now();
            let c = classifier.classify(x, attention).await.map_err(js)?;
            let timed = Timed {
                classification: &c,
                ms: now() - start,
            };
            Ok(JsValue::from_str(&to_json(&timed)?))
        })
    }

    /// Gives the GPU memory and device back now; every later call rejects with code
    /// `disposed`.
    pub fn dispose(&self) {
        if let Some(live) = self.live.borrow_mut().take() {
            live.model.release();
        }
    }

    /// `[{block, kind, maps: [{label, rows, cols}]}]` as JSON: the attention modules whose
    /// maps `classify` returns.
    pub fn attention_blocks(&self) -> std::result::Result<String, JsValue> {
        let taps = self.live()?.classifier()?.taps();
        let blocks: Vec<BlockJson> = taps
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
        let live = self.live();
        wasm_bindgen_futures::future_to_promise(async move {
            let classifier = live?.classifier()?;
            let c = classifier
                .classify_image(&image, &name, true)
                .await
                .map_err(js)?;
            Ok(JsValue::from_str(&to_json(&c)?))
        })
    }

    /// `[H, W]` of the model input.
    pub fn input_size(&self) -> std::result::Result<Vec<u32>, JsValue> {
        let s = self.live()?.classifier()?.preprocess().input_shape();
        Ok(vec![s[2] as u32, s[3] as u32])
    }

    /// The image (RGBA of `width × height`, as the browser decoded it) as the model sees it:
    /// resized, cropped or padded, gray or colour, as RGBA bytes of `input_size()`.
    pub fn input_view_rgba(
        &self,
        rgba: Vec<u8>,
        width: u32,
        height: u32,
    ) -> std::result::Result<Vec<u8>, JsValue> {
        let classifier = self.live()?.classifier()?;
        let p = classifier.preprocess();
        let x = p.apply(&rgba_image(rgba, width, height)?).map_err(js)?;
        p.to_rgba(&x).map_err(js)
    }

    /// Times `iters` inferences of a fixed pseudo-random input (after one untimed run) and
    /// resolves to JSON `{"times_ms": [...]}`, for side-by-side benchmarks in the browser.
    pub fn benchmark(&self, iters: u32) -> js_sys::Promise {
        let live = self.live();
        wasm_bindgen_futures::future_to_promise(async move {
            let model = live?.classifier()?;
            let shape = model.preprocess().input_shape();
            let x = crate::tensor::Tensor::from_fn(&shape, |i| {
                ((i * 7919 % 1000) as f32) / 500.0 - 1.0
            });
            let now = clock()?;
            model.classify(x.clone(), false).await.map_err(js)?;
            let mut times = Vec::with_capacity(iters as usize);
            for _ in 0..iters {
                let start = now();
                model.classify(x.clone(), false).await.map_err(js)?;
                times.push(now() - start);
            }
            Ok(JsValue::from_str(&to_json(&Timings { times_ms: times })?))
        })
    }

    /// Measures the kernel variants of every conv the session's plans run that the tuning
    /// cache lacks, caches the fastest and recompiles the plans to run them. Resolves to JSON
    /// `{"tuning_ms", "measured": [{"signature", "variant", "heuristic", "ms"}], "cache"}`,
    /// `cache` being the whole cache to keep for the next visit.
    pub fn tune(&self) -> js_sys::Promise {
        let live = self.live();
        wasm_bindgen_futures::future_to_promise(async move {
            let live = live?;
            let now = clock()?;
            let start = now();
            let measured = live.model.tune().await.map_err(js)?;
            let report = TuneReport {
                tuning_ms: now() - start,
                measured: measured
                    .iter()
                    .map(|m| MeasuredJson {
                        signature: &m.signature,
                        variant: &m.choice.variant,
                        heuristic: &m.heuristic,
                        ms: &m.choice.ms,
                    })
                    .collect(),
                cache: match live.model.gpu() {
                    Some(gpu) => Some(gpu.tuning().cache_json().map_err(js)?),
                    None => None,
                },
            };
            Ok(JsValue::from_str(&to_json(&report)?))
        })
    }

    /// Every dispatch of the session's plan (batch 1), as JSON `[{"op", "variant"}]`: the kernel
    /// variant each op runs on.
    pub fn kernel_variants(&self) -> std::result::Result<String, JsValue> {
        let live = self.live()?;
        let variants = live.model.kernel_variants().map_err(js)?;
        let rows: Vec<VariantJson> = variants
            .iter()
            .map(|(op, variant)| VariantJson { op, variant })
            .collect();
        to_json(&rows)
    }

    /// Destroys the GPU device as a driver reset would, so the page's recovery can be tested.
    pub fn lose_device_for_test(&self) {
        if let Ok(live) = self.live() {
            if let Some(gpu) = live.model.gpu() {
                gpu.destroy_for_test();
            }
        }
    }
}

/// RGBA bytes of `width × height` as an image, checked.
fn rgba_image(
    rgba: Vec<u8>,
    width: u32,
    height: u32,
) -> std::result::Result<image::DynamicImage, JsValue> {
    let needed = width as u64 * height as u64 * 4;
    if width == 0 || height == 0 || rgba.len() as u64 != needed {
        return Err(bad_input(format!(
            "RGBA data of {width}×{height} needs {needed} bytes, got {}",
            rgba.len()
        )));
    }
    image::RgbaImage::from_raw(width, height, rgba)
        .map(image::DynamicImage::ImageRgba8)
        .ok_or_else(|| bad_input(format!("RGBA data of {width}×{height}")))
}

/// The shape a new session is first built for, so that the weights are checked at once:
/// `config.input`, else the preprocessing's for networks; modules wait for their first run.
fn first_shape(
    arch: &str,
    config: &SessionConfig,
    preprocess: &Preprocess,
) -> Option<Vec<Vec<usize>>> {
    let count = models::input_count(arch);
    match config.input {
        Some([c, h, w]) => Some(vec![vec![1, c, h, w]; count]),
        None if models::is_module(arch) => None,
        None => Some(vec![preprocess.input_shape()]),
    }
}

/// `[{data: Float32Array, dims: number[]}]` as tensors, checked: `count` of them, each NCHW
/// with as many values as its dims say.
fn tensors_from_js(
    inputs: &js_sys::Array,
    count: usize,
) -> std::result::Result<Vec<crate::tensor::Tensor>, JsValue> {
    if inputs.length() as usize != count {
        return Err(bad_input(format!(
            "run() takes {count} input tensor(s) for this model, got {}",
            inputs.length()
        )));
    }
    inputs
        .iter()
        .enumerate()
        .map(|(i, item)| {
            let get =
                |k: &str| js_sys::Reflect::get(&item, &k.into()).unwrap_or(JsValue::UNDEFINED);
            let data = get("data")
                .dyn_into::<js_sys::Float32Array>()
                .map_err(|_| bad_input(format!("input {i}: `data` must be a Float32Array")))?;
            let dims: Vec<usize> = js_sys::Array::from(&get("dims"))
                .iter()
                .map(|d| {
                    d.as_f64()
                        .filter(|v| v.fract() == 0.0 && *v >= 1.0)
                        .map(|v| v as usize)
                })
                .collect::<Option<_>>()
                .ok_or_else(|| bad_input(format!("input {i}: `dims` must be positive integers")))?;
            if dims.len() != 4 {
                return Err(bad_input(format!(
                    "input {i}: dims {dims:?} are not [N, C, H, W]"
                )));
            }
            let numel = dims.iter().try_fold(1usize, |a, &d| a.checked_mul(d));
            if numel != Some(data.length() as usize) {
                return Err(bad_input(format!(
                    "input {i}: dims {dims:?} need {} values, data has {}",
                    numel.map_or("too many".into(), |n| n.to_string()),
                    data.length()
                )));
            }
            crate::tensor::Tensor::new(dims, data.to_vec()).map_err(js)
        })
        .collect()
}

fn tensor_to_js(t: &crate::tensor::Tensor) -> std::result::Result<JsValue, JsValue> {
    let out = js_sys::Object::new();
    let dims: js_sys::Array = t.shape().iter().map(|&d| JsValue::from(d as u32)).collect();
    js_sys::Reflect::set(&out, &"data".into(), &js_sys::Float32Array::from(t.data()))?;
    js_sys::Reflect::set(&out, &"dims".into(), &dims)?;
    Ok(out.into())
}

/// The bytes of every GPU buffer gaze holds now, in every session: a debug counter (a disposed
/// session must give all of its own back).
#[wasm_bindgen(js_name = liveGpuBytes)]
pub fn live_gpu_bytes() -> f64 {
    crate::gpu::live_buffer_bytes() as f64
}

/// Every architecture name, as JSON, for the page's picker.
#[wasm_bindgen]
pub fn architectures() -> std::result::Result<String, JsValue> {
    to_json(&models::ARCHITECTURES)
}

/// Every kernel the browser may run (those needing no device feature), as JSON
/// `[{"name", "wgsl"}]`: the browser test compiles each in the browser's own WebGPU, because a
/// shader naga accepts can still break a browser's compiler.
#[wasm_bindgen(js_name = browserKernels)]
pub fn browser_kernels() -> std::result::Result<String, JsValue> {
    let kernels: Vec<KernelSource> = crate::kernels::all()
        .into_iter()
        .filter(|k| k.features.is_empty())
        .map(|k| KernelSource {
            name: k.name,
            wgsl: k.wgsl(Precision::F32),
            constants: crate::kernels::conv::specializations(k)
                .into_iter()
                .map(|c| c.into_iter().collect())
                .collect(),
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
/// performance.now() of the window or the worker (`globalThis.performance`).
fn clock() -> std::result::Result<impl Fn() -> f64, JsValue> {
    let performance = js_sys::Reflect::get(&js_sys::global(), &"performance".into())?
        .dyn_into::<web_sys::Performance>()
        .map_err(|_| coded("no performance.now() here", "internal"))?;
    Ok(move || performance.now())
}

/// `Session::classify_rgba`'s result: the classification and the inference's time.
#[derive(Serialize)]
struct Timed<'a> {
    #[serde(flatten)]
    classification: &'a crate::classify::Classification,
    ms: f64,
}

/// `Session::tune`'s result.
#[derive(Serialize)]
struct TuneReport<'a> {
    tuning_ms: f64,
    measured: Vec<MeasuredJson<'a>>,
    cache: Option<String>,
}

#[derive(Serialize)]
struct MeasuredJson<'a> {
    signature: &'a str,
    variant: &'a str,
    heuristic: &'a str,
    ms: &'a std::collections::BTreeMap<String, f64>,
}

#[derive(Serialize)]
struct VariantJson<'a> {
    op: &'a str,
    variant: &'a str,
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
    /// Each set of override constants a plan may compile it with (none: the defaults only).
    constants: Vec<std::collections::BTreeMap<&'static str, f64>>,
}

fn to_json<T: Serialize + ?Sized>(value: &T) -> std::result::Result<String, JsValue> {
    serde_json::to_string(value).map_err(|e| coded(&format!("JSON: {e}"), "internal"))
}

#[wasm_bindgen(start)]
fn start() {
    // A panic would otherwise reach the console as a bare "unreachable".
    std::panic::set_hook(Box::new(|info| {
        web_sys::console::error_1(&format!("gaze: {info}").into());
    }));
}
