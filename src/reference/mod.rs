//! The CPU reference: every op as plain loops, written from the spec (`../shared/spec/MODULES.md`)
//! and not from the GPU code. It is the oracle of the kernel tests and the `--device cpu` path.

pub mod conv;
pub mod coord;
pub mod elementwise;
pub mod linear;
pub mod pool;
pub mod san;
pub mod tensor_ops;
pub mod triplet;

pub use elementwise::activate;
