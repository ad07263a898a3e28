//! The element type of every tensor on the device (and its emulation by the CPU reference).
//!
//! Kernels declare their tensors as `array<Elem>`, load them with `f32(x[i])` and store
//! `Elem(v)`: the prelude below makes `Elem` f32 or f16. Arithmetic and accumulation stay in
//! f32 either way, so f16 halves the bytes every kernel moves (what bounds these kernels) and
//! rounds each stored value to 11 significant bits, nothing more.

use std::borrow::Cow;

use half::vec::HalfFloatVecExt;

use crate::error::{Error, Result};

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Precision {
    #[default]
    F32,
    /// Tensors stored as IEEE half floats; needs the adapter's shader-f16.
    F16,
}

impl Precision {
    /// Bytes of one stored element.
    pub const fn bytes(self) -> u64 {
        match self {
            Precision::F32 => 4,
            Precision::F16 => 2,
        }
    }

    pub const fn name(self) -> &'static str {
        match self {
            Precision::F32 => "f32",
            Precision::F16 => "f16",
        }
    }

    /// The WGSL put before every kernel; `enable` must come before any declaration.
    pub const fn wgsl_prelude(self) -> &'static str {
        match self {
            Precision::F32 => "alias Elem = f32;\n",
            Precision::F16 => "enable f16;\nalias Elem = f16;\n",
        }
    }

    /// The device features a kernel needs to be built at this precision.
    pub fn features(self) -> wgpu::Features {
        match self {
            Precision::F32 => wgpu::Features::empty(),
            Precision::F16 => wgpu::Features::SHADER_F16,
        }
    }

    /// What makes a stored value infinite, for messages about non-finite outputs.
    pub const fn overflow(self) -> &'static str {
        match self {
            Precision::F32 => "values that overflow float32",
            Precision::F16 => "values beyond f16's ±65504 (try --precision f32)",
        }
    }

    /// `v` as stored: rounded to the nearest f16 (what the CPU reference does to every value it
    /// keeps, to check the f16 kernels against the same rounding).
    pub fn round(self, v: f32) -> f32 {
        match self {
            Precision::F32 => v,
            Precision::F16 => half::f16::from_f32(v).to_f32(),
        }
    }

    /// The bytes `numel` elements occupy on the device: whole 4-byte words, at least one
    /// (buffers, bindings, queue writes and copies all move words).
    pub const fn stored_bytes(self, numel: u64) -> u64 {
        // Saturating: an absurd shape is a huge size for the limit checks, not an overflow.
        let bytes = numel.saturating_mul(self.bytes()).saturating_add(3) / 4 * 4;
        if bytes == 0 {
            4
        } else {
            bytes
        }
    }

    /// Host values as the device stores them, in `stored_bytes`: f32 values as they are,
    /// without a copy.
    pub fn encode(self, values: &[f32]) -> Cow<'_, [u8]> {
        match self {
            Precision::F32 if !values.is_empty() => Cow::Borrowed(bytemuck::cast_slice(values)),
            Precision::F32 => Cow::Owned(vec![0; 4]),
            Precision::F16 => {
                let mut halves = Vec::<half::f16>::from_f32_slice(values);
                let words = self.stored_bytes(values.len() as u64) / self.bytes();
                halves.resize(words as usize, half::f16::ZERO);
                Cow::Owned(bytemuck::cast_slice(&halves).to_vec())
            }
        }
    }
}

impl std::fmt::Display for Precision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Precision {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        match s {
            "f32" => Ok(Precision::F32),
            "f16" => Ok(Precision::F16),
            _ => Err(Error::Invalid(format!(
                "unknown precision `{s}` (expected f32 or f16)"
            ))),
        }
    }
}
