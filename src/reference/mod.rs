//! The CPU reference: every op as plain loops, written from the spec (`../shared/spec/MODULES.md`)
//! and not from the GPU code. It is the oracle of the kernel tests and the `--device cpu` path.

pub mod elementwise;

pub use elementwise::activate;
