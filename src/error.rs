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
    #[error("{what} needs {needed} {unit} but the device allows {limit}")]
    Limit {
        what: String,
        needed: u64,
        limit: u64,
        /// What `needed` and `limit` count: "bytes", "workgroups".
        unit: &'static str,
    },
    #[error("GPU error: {0}")]
    Gpu(String),
    /// The device is gone (driver reset, destroyed); a new session can be made.
    #[error("GPU error: the GPU device was lost ({0}); create a new session")]
    DeviceLost(String),
    /// The adapter lacks what the chosen precision needs (shader-f16).
    #[error("could not open the GPU device `{adapter}`: {msg}")]
    PrecisionUnsupported { adapter: String, msg: String },
    /// A checkpoint that cannot be read or does not fit the architecture.
    #[error("{0}")]
    Checkpoint(String),
    /// An input (a .npy array, an image) that cannot be used.
    #[error("{0}")]
    Input(String),
    #[error("{0}")]
    Invalid(String),
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// Another error, with what was being done when it happened.
    #[error("{context}: {source}")]
    Context {
        context: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// A stable name for the kind of failure, for callers that act on it (the web API's error
    /// codes): `no-adapter`, `device-lost`, `f16-unsupported`, `bad-checkpoint`, `bad-input`,
    /// or `internal` for the rest.
    pub fn code(&self) -> &'static str {
        match self {
            Error::NoAdapter(_) => "no-adapter",
            Error::DeviceLost(_) => "device-lost",
            Error::PrecisionUnsupported { .. } => "f16-unsupported",
            Error::Checkpoint(_) => "bad-checkpoint",
            // A tensor past this device's limits: the input's size or batch is what the
            // caller can change.
            Error::Input(_) | Error::Shape { .. } | Error::Limit { .. } => "bad-input",
            Error::Context { source, .. } => source
                .downcast_ref::<Error>()
                .map_or("internal", Error::code),
            _ => "internal",
        }
    }
}

/// Adds what was being done to an error: `result.context("reading x")?`, and
/// `with_context(|| ...)` where the words cost something to build.
pub trait Context<T> {
    fn context(self, context: impl std::fmt::Display) -> Result<T>;
    fn with_context<C: std::fmt::Display>(self, context: impl FnOnce() -> C) -> Result<T>;
}

impl<T, E: std::error::Error + Send + Sync + 'static> Context<T> for std::result::Result<T, E> {
    fn context(self, context: impl std::fmt::Display) -> Result<T> {
        self.with_context(|| context)
    }

    fn with_context<C: std::fmt::Display>(self, context: impl FnOnce() -> C) -> Result<T> {
        self.map_err(|e| Error::Context {
            context: context().to_string(),
            source: Box::new(e),
        })
    }
}

/// Shorthand for a shape error raised by the op `op`.
pub fn shape_err(op: &'static str, msg: impl Into<String>) -> Error {
    Error::Shape {
        op,
        msg: msg.into(),
    }
}
