//! What each op computes: its parameters and shape rules, shared by the CPU reference
//! (`crate::reference`) and the GPU kernels (`crate::kernels`).

pub mod elementwise;
pub mod conv;
pub mod pool;
pub mod triplet;
pub mod tensor_ops;
pub mod linear;
pub mod san;

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
