//! gaze: a WebGPU compute-shader runtime for attention-augmented CNNs.
//!
//! Layout: `gpu` (device, buffers, pipelines, recording), `ops` (what each op computes and its
//! shape rules), `kernels` (the WGSL launchers), `reference` (the CPU oracle).

pub mod classify;
#[cfg(not(target_arch = "wasm32"))]
pub mod cli;
pub mod datasets;
pub mod error;
pub mod gpu;
pub mod graph;
pub mod kernels;
pub mod models;
pub mod npy;
pub mod ops;
pub mod precision;
pub mod reference;
pub mod tensor;
pub mod tune;
#[cfg(target_arch = "wasm32")]
pub mod web;
pub mod weights;

pub use error::{Error, Result};
pub use precision::Precision;
pub use tensor::Tensor;
