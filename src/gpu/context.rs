//! Adapter selection and device creation.

use std::sync::{Arc, Mutex};

use super::pipeline::PipelineCache;
use super::Precision;
use crate::error::{Error, Result};
use crate::graph::fuse::Fusion;
use crate::tune::{AdapterKey, TuneCache, TuneMode, Tuning};

/// How to pick the adapter. `name` is a case-insensitive substring of the adapter name
/// (also read from `GAZE_ADAPTER` when not given).
#[derive(Clone, Debug, Default)]
pub struct GpuOptions {
    pub adapter: Option<String>,
    /// Lower some device limits below the adapter's (tests use this to exercise the
    /// work-splitting paths on any adapter).
    pub limit_overrides: LimitOverrides,
    /// How tensors are stored; f16 needs an adapter with shader-f16.
    pub precision: Precision,
    /// How plans choose kernel variants (`GAZE_TUNE` natively).
    pub tune: TuneMode,
    /// The tuning cache as JSON (the browser's copy). Natively `None` reads the file at
    /// `TuneCache::default_path`.
    pub tune_cache: Option<String>,
    /// Which fusion passes plans on this device run (`GAZE_FUSION` natively).
    pub fusion: Fusion,
}

/// A device option from the environment variable `var` (`GAZE_TUNE`, `GAZE_FUSION`), or its
/// default where that is unset or empty; an error names the variable and the bad value.
pub fn option_from_env<T: std::str::FromStr<Err = Error> + Default>(var: &str) -> Result<T> {
    match std::env::var(var) {
        Ok(v) if !v.is_empty() => v
            .parse()
            .map_err(|e: Error| Error::Invalid(format!("{var}: {e}"))),
        _ => Ok(T::default()),
    }
}

#[derive(Clone, Debug, Default)]
pub struct LimitOverrides {
    pub max_storage_buffer_binding_size: Option<u64>,
}

/// One adapter as `gaze devices` shows it.
#[derive(Clone, Debug)]
pub struct AdapterSummary {
    pub name: String,
    pub backend: String,
    pub device_type: String,
    pub driver: String,
    pub max_storage_buffer_binding_size: u64,
    pub max_buffer_size: u64,
    pub max_compute_workgroups_per_dimension: u32,
    pub max_compute_invocations_per_workgroup: u32,
    pub features: Vec<&'static str>,
}

/// An open device with its queue, limits and pipeline cache.
pub struct Gpu {
    pub(crate) device: wgpu::Device,
    pub(crate) queue: wgpu::Queue,
    info: wgpu::AdapterInfo,
    limits: wgpu::Limits,
    features: wgpu::Features,
    precision: Precision,
    pub(crate) pipelines: PipelineCache,
    tuning: Tuning,
    fusion: Fusion,
    /// WebGPU objects gaze has created on the device: buffers, bind groups, pipelines, shader
    /// modules, query sets (`objects_created`).
    objects: std::sync::atomic::AtomicU64,
    lost: Arc<Mutex<Option<String>>>,
    errors: Arc<Mutex<Vec<String>>>,
    // Held for the device's lifetime: in the browser, once the instance and adapter are
    // garbage-collected the device is lost ("A valid external Instance reference no longer
    // exists").
    _adapter: wgpu::Adapter,
    _instance: wgpu::Instance,
}

/// Features that speed things up when present; none is required.
fn helpful_features(backend: wgpu::Backend) -> wgpu::Features {
    let all = wgpu::Features::TIMESTAMP_QUERY
        | wgpu::Features::TIMESTAMP_QUERY_INSIDE_ENCODERS
        | wgpu::Features::SHADER_F16
        | wgpu::Features::SUBGROUP;
    // The browser's WGSL needs `enable subgroups;`, which naga (every shader's validator here)
    // cannot parse yet: there the subgroup kernels cannot be built, so the device goes without.
    if backend == wgpu::Backend::BrowserWebGpu {
        all - wgpu::Features::SUBGROUP
    } else {
        all
    }
}

fn feature_names(f: wgpu::Features) -> Vec<&'static str> {
    [
        (wgpu::Features::TIMESTAMP_QUERY, "timestamp-query"),
        (wgpu::Features::SHADER_F16, "shader-f16"),
        (wgpu::Features::SUBGROUP, "subgroups"),
    ]
    .into_iter()
    .filter(|(flag, _)| f.contains(*flag))
    .map(|(_, name)| name)
    .collect()
}

/// The adapter's name for messages: browsers hide it, so there its backend names it.
fn named(info: &wgpu::AdapterInfo) -> String {
    if info.name.is_empty() {
        format!("{:?} adapter", info.backend)
    } else {
        info.name.clone()
    }
}

fn instance() -> wgpu::Instance {
    wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle_from_env())
}

fn summary(adapter: &wgpu::Adapter) -> AdapterSummary {
    let info = adapter.get_info();
    let limits = adapter.limits();
    AdapterSummary {
        name: info.name.clone(),
        backend: format!("{:?}", info.backend),
        device_type: format!("{:?}", info.device_type),
        driver: driver(&info),
        max_storage_buffer_binding_size: limits.max_storage_buffer_binding_size,
        max_buffer_size: limits.max_buffer_size,
        max_compute_workgroups_per_dimension: limits.max_compute_workgroups_per_dimension,
        max_compute_invocations_per_workgroup: limits.max_compute_invocations_per_workgroup,
        features: feature_names(adapter.features()),
    }
}

/// The driver as `gaze devices` shows it.
fn driver(info: &wgpu::AdapterInfo) -> String {
    format!("{} {}", info.driver, info.driver_info)
        .trim()
        .to_string()
}

/// The tuning state of a device opened with `options`: its cache read from the JSON given, or
/// natively from its file. Tuning choices hold for one adapter and driver; in the browser,
/// which names no driver, the browser's version stands for it.
fn open_tuning(options: &GpuOptions, info: &wgpu::AdapterInfo) -> Result<Tuning> {
    #[cfg(target_arch = "wasm32")]
    let driver = js_sys::Reflect::get(&js_sys::global(), &"navigator".into())
        .and_then(|n| js_sys::Reflect::get(&n, &"userAgent".into()))
        .ok()
        .and_then(|ua| ua.as_string())
        .unwrap_or_default();
    #[cfg(not(target_arch = "wasm32"))]
    let driver = driver(info);
    let key = AdapterKey::new(&named(info), &driver);
    let cache = match (&options.tune_cache, options.tune) {
        (_, TuneMode::Off) => TuneCache::in_memory(),
        (Some(json), _) => TuneCache::from_json(json)?,
        (None, _) => match TuneCache::default_path() {
            Some(path) => TuneCache::load(&path)?,
            None => TuneCache::in_memory(),
        },
    };
    Ok(Tuning::new(options.tune, key, cache))
}

/// Every adapter the platform exposes, as `gaze devices` lists them.
pub async fn list_adapters() -> Vec<AdapterSummary> {
    instance()
        .enumerate_adapters(wgpu::Backends::all())
        .await
        .iter()
        .map(summary)
        .collect()
}

async fn choose_adapter(instance: &wgpu::Instance, wanted: Option<&str>) -> Result<wgpu::Adapter> {
    let Some(wanted) = wanted else {
        let options = wgpu::RequestAdapterOptions {
            power_preference: wgpu::PowerPreference::HighPerformance,
            ..Default::default()
        };
        return instance
            .request_adapter(&options)
            .await
            .map_err(|e| Error::NoAdapter(format!(" ({e})")));
    };
    let adapters = instance.enumerate_adapters(wgpu::Backends::all()).await;
    let names: Vec<String> = adapters.iter().map(|a| a.get_info().name).collect();
    let needle = wanted.to_lowercase();
    adapters
        .into_iter()
        .find(|a| a.get_info().name.to_lowercase().contains(&needle))
        .ok_or_else(|| {
            Error::NoAdapter(format!(
                " whose name contains `{wanted}` (adapters present: {})",
                if names.is_empty() {
                    "none".to_string()
                } else {
                    names.join(", ")
                }
            ))
        })
}

impl Gpu {
    /// How many buffers, bind groups, pipelines, shader modules and query sets gaze has
    /// created on this device so far: a warm inference should add none.
    pub fn objects_created(&self) -> u64 {
        self.objects.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Counts one created object; every creation site calls it.
    pub(crate) fn count_object(&self) {
        self.objects
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    /// Opens the adapter chosen by `options` (or `GAZE_ADAPTER`), requesting the adapter's own
    /// limits rather than wgpu's conservative defaults.
    pub async fn new(options: &GpuOptions) -> Result<Self> {
        let instance = instance();
        let from_env = std::env::var("GAZE_ADAPTER").ok().filter(|s| !s.is_empty());
        let wanted = options.adapter.clone().or(from_env);
        let adapter = choose_adapter(&instance, wanted.as_deref()).await?;
        let info = adapter.get_info();
        let mut limits = adapter.limits();
        if let Some(max) = options.limit_overrides.max_storage_buffer_binding_size {
            limits.max_storage_buffer_binding_size =
                limits.max_storage_buffer_binding_size.min(max);
        }
        let features = adapter.features() & helpful_features(info.backend);
        let missing = options.precision.features() - features;
        if !missing.is_empty() {
            return Err(Error::PrecisionUnsupported {
                adapter: named(&info),
                msg: format!(
                    "precision {} needs {}, which this adapter lacks (it has: {})",
                    options.precision,
                    feature_names(missing).join(", "),
                    feature_names(features).join(", ")
                ),
            });
        }
        let descriptor = wgpu::DeviceDescriptor {
            label: Some("gaze"),
            required_features: features,
            required_limits: limits.clone(),
            ..Default::default()
        };
        let (device, queue) =
            adapter
                .request_device(&descriptor)
                .await
                .map_err(|e| Error::Device {
                    adapter: named(&info),
                    msg: e.to_string(),
                })?;
        // wgpu's default handler panics; record the error so the next call returns it instead.
        let errors = Arc::new(Mutex::new(Vec::new()));
        let sink = errors.clone();
        device.on_uncaptured_error(Arc::new(move |e: wgpu::Error| {
            if let Ok(mut list) = sink.lock() {
                list.push(e.to_string());
            }
        }));
        let lost = Arc::new(Mutex::new(None));
        let lost_flag = lost.clone();
        device.set_device_lost_callback(move |reason, message| {
            if let Ok(mut slot) = lost_flag.lock() {
                *slot = Some(if message.is_empty() {
                    format!("{reason:?}")
                } else {
                    format!("{reason:?}: {message}")
                });
            }
        });
        let tuning = open_tuning(options, &info)?;
        Ok(Self {
            device,
            queue,
            tuning,
            fusion: options.fusion,
            info,
            limits,
            features,
            precision: options.precision,
            pipelines: PipelineCache::default(),
            objects: Default::default(),
            lost,
            errors,
            _adapter: adapter,
            _instance: instance,
        })
    }

    /// Blocking constructor for native code.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn new_blocking(options: &GpuOptions) -> Result<Self> {
        pollster::block_on(Self::new(options))
    }

    pub fn adapter_name(&self) -> &str {
        &self.info.name
    }

    /// How this device chooses kernel variants, and what it has measured.
    pub fn tuning(&self) -> &Tuning {
        &self.tuning
    }

    /// Which fusion passes plans on this device run.
    pub fn fusion(&self) -> Fusion {
        self.fusion
    }

    /// Whether the adapter is a software rasterizer on the CPU (lavapipe, llvmpipe,
    /// SwiftShader, WARP), whose costs are the reverse of a GPU's: the kernel heuristic keeps
    /// the register tiles there.
    pub fn is_software(&self) -> bool {
        if self.info.device_type == wgpu::DeviceType::Cpu {
            return true;
        }
        #[cfg(target_arch = "wasm32")]
        let name = format!(
            "{} {}",
            self.info.name,
            self.browser_adapter_info().unwrap_or_default()
        );
        #[cfg(not(target_arch = "wasm32"))]
        let name = self.info.name.clone();
        let name = name.to_lowercase();
        [
            "swiftshader",
            "llvmpipe",
            "lavapipe",
            "microsoft basic render",
        ]
        .iter()
        .any(|s| name.contains(s))
    }

    /// What the browser says of the adapter behind gaze's own device (`GPUDevice.adapterInfo`:
    /// vendor, architecture, device, description), which wgpu reduces to the description;
    /// `None` where the browser tells nothing.
    #[cfg(target_arch = "wasm32")]
    pub fn browser_adapter_info(&self) -> Option<String> {
        let device: &wasm_bindgen::JsValue = self.device.as_webgpu()?.as_ref();
        let info = js_sys::Reflect::get(device, &"adapterInfo".into()).ok()?;
        let parts: Vec<String> = ["vendor", "architecture", "device", "description"]
            .iter()
            .filter_map(|k| js_sys::Reflect::get(&info, &(*k).into()).ok()?.as_string())
            .filter(|s| !s.is_empty())
            .collect();
        (!parts.is_empty()).then(|| parts.join(" "))
    }

    pub fn backend(&self) -> String {
        format!("{:?}", self.info.backend)
    }

    pub fn limits(&self) -> &wgpu::Limits {
        &self.limits
    }

    pub fn features(&self) -> wgpu::Features {
        self.features
    }

    /// How this device's tensors are stored.
    pub fn precision(&self) -> Precision {
        self.precision
    }

    /// The smallest and largest subgroup the adapter may run (equal where it is fixed, as on
    /// lavapipe: its SIMD width in 32-bit lanes).
    pub fn subgroup_sizes(&self) -> (u32, u32) {
        (self.info.subgroup_min_size, self.info.subgroup_max_size)
    }

    /// Bytes one storage binding may cover.
    pub fn max_binding_bytes(&self) -> u64 {
        self.limits.max_storage_buffer_binding_size
    }

    /// Destroys the device the way a driver reset or an unplugged GPU loses it, so tests can
    /// check that what follows fails with the lost-device error and that a new `Gpu` works.
    /// This `Gpu` is unusable afterwards.
    pub fn destroy_for_test(&self) {
        self.destroy();
    }

    /// Destroys the device: its memory is given back and every later use fails as lost.
    pub fn destroy(&self) {
        self.device.destroy();
    }

    /// An error if the device was lost (a new `Gpu` can then be created) or if wgpu reported a
    /// validation or out-of-memory error since the last check.
    pub fn check_lost(&self) -> Result<()> {
        let first = self.errors.lock().ok().and_then(|mut l| l.drain(..).next());
        // wgpu reports a destroyed device's loss only from a poll, while every call before that
        // fails validation; poll so the loss, the cause of those errors, is what gets reported.
        #[cfg(not(target_arch = "wasm32"))]
        if first.is_some() {
            let _ = self.device.poll(wgpu::PollType::Poll);
        }
        if let Some(reason) = self.lost.lock().ok().and_then(|slot| slot.clone()) {
            return Err(Error::DeviceLost(reason));
        }
        match first {
            Some(first) => Err(Error::Gpu(first)),
            None => Ok(()),
        }
    }
}
