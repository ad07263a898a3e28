//! One error type for the whole runtime: every failure names what went wrong and where.

use thiserror::Error;

#[derive(Debug, Error)]
pub enum Error {
    #[error(
        "no GPU adapter found{0}. Install a Vulkan driver (on Debian/Ubuntu: \
         `apt-get install mesa-vulkan-drivers libvulkan1`), or run with `--device cpu`"
    )]
    NoAdapter(String),
    #[error("could not open the GPU device `{adapter}`: {msg}")]
    Device { adapter: String, msg: String },
    #[error("{op}: {msg}")]
    Shape { op: &'static str, msg: String },
    #[error("kernel `{kernel}` failed to compile: {msg}")]
    Shader { kernel: String, msg: String },
    #[error("kernel `{kernel}`: its WGSL interface differs from the Rust declaration at {precision}: {msg}")]
    Interface {
        kernel: String,
        precision: String,
        msg: String,
    },
    #[error("{what} needs {needed} but the device allows {limit}")]
    Limit {
        what: String,
        needed: u64,
        limit: u64,
    },
    #[error("GPU error: {0}")]
    Gpu(String),
    #[error("{0}")]
    Invalid(String),
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

pub type Result<T> = std::result::Result<T, Error>;

/// Shorthand for a shape error raised by the op `op`.
pub fn shape_err(op: &'static str, msg: impl Into<String>) -> Error {
    Error::Shape {
        op,
        msg: msg.into(),
    }
}
