//! Compute pipelines, created once per (kernel, specialization constants) and cached.

use std::collections::HashMap;
use std::sync::Mutex;

use super::interface::{check_module, Binding, Layout};
use super::{Gpu, Precision};
use crate::error::{Error, Result};

/// Helpers every shader may use (activations, the flat invocation index); prepended to each kernel.
pub const COMMON_WGSL: &str = include_str!("../../shaders/common.wgsl");

/// A WGSL compute kernel: one file under `shaders/`, one entry point `main`, and its interface:
/// the uniform `Params` at binding 0 and the storage bindings after it.
#[derive(Debug)]
pub struct Kernel {
    pub name: &'static str,
    pub source: &'static str,
    /// Device features the shader needs (subgroup builtins); empty for almost every kernel.
    /// Launchers pick such a kernel only on a device that has them.
    pub features: wgpu::Features,
    /// The layout of the `Params` struct a dispatch uploads (`Recorder::dispatch`).
    pub params: &'static Layout,
    /// Bindings 1, 2, ... in order.
    pub bindings: &'static [Binding],
}

/// Declares a `Kernel` whose source is `shaders/<file>`, or several files joined in order
/// (WGSL has no includes; a shared fragment comes first), with its `Params` type and bindings:
/// `kernel!("unary", "unary.wgsl"; UnaryParams; bindings![read x, write y])`.
/// `kernel!(features F; ...)` declares one that needs the device features `F`.
#[macro_export]
macro_rules! kernel {
    (features $features:expr; $name:literal, $($file:literal),+; $params:ty; $bindings:expr) => {
        $crate::gpu::Kernel {
            name: $name,
            source: concat!($(include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/shaders/", $file)), "\n"),+),
            features: $features,
            params: &<$params as $crate::gpu::WgslStruct>::LAYOUT,
            bindings: $bindings,
        }
    };
    ($name:literal, $($file:literal),+; $params:ty; $bindings:expr) => {
        $crate::kernel!(features wgpu::Features::empty(); $name, $($file),+; $params; $bindings)
    };
}

/// What naga may accept in a shader for a device with `features`: the defaults, plus
/// subgroup builtins (and subgroup barriers) and f16 where the device has them.
pub fn capabilities(features: wgpu::Features) -> naga::valid::Capabilities {
    use naga::valid::Capabilities;
    let mut caps = Capabilities::default();
    if features.contains(wgpu::Features::SHADER_F16) {
        caps |= Capabilities::SHADER_FLOAT16;
    }
    if features.contains(wgpu::Features::SUBGROUP) {
        caps |= Capabilities::SUBGROUP;
    }
    if features.contains(wgpu::Features::SUBGROUP_BARRIER) {
        caps |= Capabilities::SUBGROUP_BARRIER;
    }
    caps
}

impl Kernel {
    /// The full WGSL text handed to the compiler: the element type of tensors stored at
    /// `precision`, common helpers, then the kernel.
    pub fn wgsl(&self, precision: Precision) -> String {
        format!("{}{COMMON_WGSL}\n{}", precision.wgsl_prelude(), self.source)
    }

    /// The features the kernel needs at `precision`: its own, plus shader-f16 for f16.
    pub fn features_at(&self, precision: Precision) -> wgpu::Features {
        self.features | precision.features()
    }

    /// Parses and validates the kernel with naga, so a broken shader is reported with its
    /// name and the offending line on every platform (the browser included) before wgpu sees it.
    /// It may use exactly the features it declares (and f16 at that precision).
    pub fn validate(&self, precision: Precision) -> Result<naga::Module> {
        self.validate_for(self.features_at(precision), precision)
    }

    /// `validate` on a device with `features`: a kernel that needs one the device lacks fails
    /// here, naming it, rather than inside wgpu. Either way the shader may use only what the
    /// kernel declares, so one that uses subgroups without saying so fails on every device.
    pub fn validate_for(
        &self,
        features: wgpu::Features,
        precision: Precision,
    ) -> Result<naga::Module> {
        let source = self.wgsl(precision);
        let fail = |msg: String| Error::Shader {
            kernel: self.name.to_string(),
            msg,
        };
        let needed = self.features_at(precision);
        let missing = needed - features;
        if !missing.is_empty() {
            return Err(fail(format!("needs the device feature(s) {missing:?}")));
        }
        let module = naga::front::wgsl::parse_str(&source)
            .map_err(|e| fail(e.emit_to_string_with_path(&source, self.name)))?;
        let mut validator =
            naga::valid::Validator::new(naga::valid::ValidationFlags::all(), capabilities(needed));
        validator
            .validate(&module)
            .map_err(|e| fail(e.emit_to_string_with_path(&source, self.name)))?;
        Ok(module)
    }

    /// Checks the shader's uniform struct (field names, order, offsets, types, size) and its
    /// bindings (names, order, access, element type at `precision`) against the Rust
    /// declaration; the error names the kernel and the first field or binding that differs.
    pub fn check_interface(&self, precision: Precision) -> Result<()> {
        let module = self.validate(precision)?;
        check_module(&module, self.params, self.bindings, precision).map_err(|msg| {
            Error::Interface {
                kernel: self.name.to_string(),
                precision: precision.to_string(),
                msg,
            }
        })
    }
}

/// Specialization constants (WGSL `override`s) by name.
pub type Constants = [(&'static str, f64)];

type Key = (&'static str, Vec<(&'static str, u64)>);

#[derive(Default)]
pub struct PipelineCache {
    pipelines: Mutex<HashMap<Key, wgpu::ComputePipeline>>,
    modules: Mutex<HashMap<&'static str, wgpu::ShaderModule>>,
}

fn poisoned() -> Error {
    Error::Gpu("the pipeline cache lock was poisoned by a panic on another thread".into())
}

impl Gpu {
    /// How many pipelines have been compiled (each kernel × specialization once).
    pub fn cached_pipelines(&self) -> usize {
        self.pipelines
            .pipelines
            .lock()
            .map(|p| p.len())
            .unwrap_or(0)
    }

    /// The pipeline of `kernel` specialized with `constants`, compiled on first use.
    pub fn pipeline(
        &self,
        kernel: &Kernel,
        constants: &Constants,
    ) -> Result<wgpu::ComputePipeline> {
        let key: Key = (
            kernel.name,
            constants.iter().map(|(k, v)| (*k, v.to_bits())).collect(),
        );
        if let Some(p) = self
            .pipelines
            .pipelines
            .lock()
            .map_err(|_| poisoned())?
            .get(&key)
        {
            return Ok(p.clone());
        }
        let module = self.shader_module(kernel)?;
        self.count_object();
        let pipeline = self
            .device
            .create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                label: Some(kernel.name),
                layout: None,
                module: &module,
                entry_point: Some("main"),
                compilation_options: wgpu::PipelineCompilationOptions {
                    constants,
                    zero_initialize_workgroup_memory: false,
                },
                cache: None,
            });
        self.pipelines
            .pipelines
            .lock()
            .map_err(|_| poisoned())?
            .insert(key, pipeline.clone());
        Ok(pipeline)
    }

    fn shader_module(&self, kernel: &Kernel) -> Result<wgpu::ShaderModule> {
        if let Some(m) = self
            .pipelines
            .modules
            .lock()
            .map_err(|_| poisoned())?
            .get(kernel.name)
        {
            return Ok(m.clone());
        }
        kernel.validate_for(self.features(), self.precision())?;
        self.count_object();
        let module = self
            .device
            .create_shader_module(wgpu::ShaderModuleDescriptor {
                label: Some(kernel.name),
                source: wgpu::ShaderSource::Wgsl(kernel.wgsl(self.precision()).into()),
            });
        self.pipelines
            .modules
            .lock()
            .map_err(|_| poisoned())?
            .insert(kernel.name, module.clone());
        Ok(module)
    }
}
