//! What each op computes: its parameters and shape rules, shared by the CPU reference
//! (`crate::reference`) and the GPU kernels (`crate::kernels`).

pub mod conv;
pub mod coord;
pub mod elementwise;
pub mod linear;
pub mod pool;
pub mod san;
pub mod tensor_ops;
pub mod triplet;

/// Pointwise activations of the four networks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Activation {
    #[default]
    None,
    Relu,
    Relu6,
    Sigmoid,
    /// `ReLU6(x + 3) / 6`
    HSigmoid,
    /// `x · ReLU6(x + 3) / 6`
    HSwish,
}

impl Activation {
    pub const ALL: [Activation; 6] = [
        Activation::None,
        Activation::Relu,
        Activation::Relu6,
        Activation::Sigmoid,
        Activation::HSigmoid,
        Activation::HSwish,
    ];

    /// The code `activate()` in `shaders/common.wgsl` switches on.
    pub fn code(self) -> u32 {
        self as u32
    }
}

/// Anything with a shape, so one shape rule serves host and device tensors alike.
pub trait Shaped {
    fn dims(&self) -> &[usize];
}

impl Shaped for crate::tensor::Tensor {
    fn dims(&self) -> &[usize] {
        self.shape()
    }
}

impl<T: Shaped> Shaped for &T {
    fn dims(&self) -> &[usize] {
        (*self).dims()
    }
}

impl Shaped for crate::gpu::GpuTensor {
    fn dims(&self) -> &[usize] {
        self.shape()
    }
}
