//! A dense float32 tensor on the host, row-major (NCHW for images).

use crate::error::{Error, Result};

#[derive(Clone, Debug, PartialEq)]
pub struct Tensor {
    shape: Vec<usize>,
    data: Vec<f32>,
}

impl Tensor {
    pub fn new(shape: Vec<usize>, data: Vec<f32>) -> Result<Self> {
        let numel = numel(&shape);
        if numel != data.len() {
            return Err(Error::Invalid(format!(
                "tensor of shape {shape:?} needs {numel} values, got {}",
                data.len()
            )));
        }
        Ok(Self { shape, data })
    }

    pub fn zeros(shape: &[usize]) -> Self {
        Self {
            shape: shape.to_vec(),
            data: vec![0.0; numel(shape)],
        }
    }

    /// Fills a tensor from a function of the flat index.
    pub fn from_fn(shape: &[usize], f: impl FnMut(usize) -> f32) -> Self {
        Self {
            shape: shape.to_vec(),
            data: (0..numel(shape)).map(f).collect(),
        }
    }

    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    pub fn data(&self) -> &[f32] {
        &self.data
    }

    pub fn data_mut(&mut self) -> &mut [f32] {
        &mut self.data
    }

    pub fn into_data(self) -> Vec<f32> {
        self.data
    }

    pub fn numel(&self) -> usize {
        self.data.len()
    }

    /// The same values under another shape with the same number of elements.
    pub fn reshape(self, shape: &[usize]) -> Result<Self> {
        Self::new(shape.to_vec(), self.data)
    }
}

pub fn numel(shape: &[usize]) -> usize {
    shape.iter().product()
}

/// The four dimensions of an NCHW shape, or an error naming the op.
pub fn nchw(op: &'static str, shape: &[usize]) -> Result<[usize; 4]> {
    match shape {
        [n, c, h, w] => Ok([*n, *c, *h, *w]),
        _ => Err(crate::error::shape_err(
            op,
            format!("expects an NCHW tensor (rank 4), got shape {shape:?}"),
        )),
    }
}
