//! (being written)
use crate::gpu::Kernel;

pub const KERNELS: &[&Kernel] = &[];
