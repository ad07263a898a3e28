//! The device side: adapter and device, tensors in buffers, pipelines, dispatch recording.

mod buffer;
mod context;
mod interface;
mod pipeline;
mod recorder;
mod split;

pub use crate::precision::Precision;
pub use buffer::{live_buffer_bytes, DeviceBuffer, GpuTensor, Readback};
pub use context::{
    list_adapters, option_from_env, AdapterSummary, Gpu, GpuOptions, LimitOverrides,
};
pub use interface::{
    Access, Binding, BindingElem, Field, Layout, Ty, WgslStruct, UNIFORM_WINDOW_BYTES,
};
pub use pipeline::{Constants, Kernel, COMMON_WGSL};
pub use recorder::{DispatchTime, Recorder, Recording, WG};
