//! The CPU reference: every op as plain loops, written from the spec (`../shared/spec/MODULES.md`)
//! and not from the GPU code. It is the oracle of the kernel tests and the `--device cpu` path.

pub mod elementwise;
pub mod conv;
pub mod pool;
pub mod triplet;
pub mod tensor_ops;
pub mod linear;
pub mod san;

pub use elementwise::activate;
