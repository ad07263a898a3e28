//! Concatenation and splitting of rank-4 tensors along one axis.
//!
//! Both view a tensor `[N, C, H, W]` around the chosen axis as `[N, P, D, Q]`: `P` is the
//! product of the dimensions between the batch and the axis, `D` the axis length and `Q` the
//! product of the dimensions after it. Axis 0 (the batch) is not supported: every launcher may
//! run the batch in chunks (`Recorder::batched`).

use crate::error::{shape_err, Result};
use crate::tensor::nchw;

/// Concatenate along `axis` (1 = channels, 2 = rows as CA's `[N,C,H,1] ‖ [N,C,W,1]`, or 3).
///
/// Inputs must agree on every dimension except `axis`. An input with batch 1 is broadcast over
/// the batch of the others (SAN pairwise concatenates the per-size constant `[1, 2, k², HW]`
/// position term behind `[N, rel, k², HW]`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Concat {
    pub axis: usize,
}

/// Split along `axis` into consecutive parts of the given sizes, which must add up to the
/// axis length.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Split {
    pub axis: usize,
    pub sizes: Vec<usize>,
}

/// `x` viewed with its batch dimension kept and `tail` after it (a flatten before a linear
/// layer, for instance): the element count stays the same and nothing is copied.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Reshape {
    dims: [usize; Reshape::MAX_TAIL],
    len: usize,
}

impl Reshape {
    /// The longest tail a view takes (SAN's `[N, C, k², HW]`).
    pub const MAX_TAIL: usize = 3;

    pub fn new(tail: &[usize]) -> Result<Self> {
        let mut dims = [0; Self::MAX_TAIL];
        dims.get_mut(..tail.len())
            .ok_or_else(|| {
                shape_err(
                    "reshape",
                    format!(
                        "a tail of {} dimensions (at most {})",
                        tail.len(),
                        Self::MAX_TAIL
                    ),
                )
            })?
            .copy_from_slice(tail);
        Ok(Self {
            dims,
            len: tail.len(),
        })
    }

    pub fn tail(&self) -> &[usize] {
        &self.dims[..self.len]
    }

    /// The shape of `x` viewed as `[N, tail...]`.
    pub fn out_shape(&self, x: &[usize]) -> Result<Vec<usize>> {
        let n = *x
            .first()
            .ok_or_else(|| shape_err("reshape", "input has no batch dimension"))?;
        let shape: Vec<usize> = std::iter::once(n)
            .chain(self.tail().iter().copied())
            .collect();
        if crate::tensor::numel(&shape) != crate::tensor::numel(x) {
            return Err(shape_err(
                "reshape",
                format!("cannot view {x:?} as {shape:?}"),
            ));
        }
        Ok(shape)
    }
}

/// The `[N, P, D, Q]` view of a rank-4 shape around `axis`.
pub fn axis_view(shape: &[usize; 4], axis: usize) -> [usize; 4] {
    let p: usize = shape[1..axis].iter().product();
    let q: usize = shape[axis + 1..].iter().product();
    [shape[0], p, shape[axis], q]
}

fn check_axis(op: &'static str, axis: usize) -> Result<()> {
    if !(1..=3).contains(&axis) {
        return Err(shape_err(
            op,
            format!("axis must be 1, 2 or 3 (the batch cannot be split), got {axis}"),
        ));
    }
    Ok(())
}

/// The output shape of `Concat` over inputs of the given shapes.
pub fn concat_shape(spec: &Concat, inputs: &[&[usize]]) -> Result<[usize; 4]> {
    let op = "concat";
    check_axis(op, spec.axis)?;
    let first = inputs
        .first()
        .ok_or_else(|| shape_err(op, "needs at least one input"))?;
    let mut out = nchw(op, first)?;
    out[0] = 1;
    out[spec.axis] = 0;
    for shape in inputs {
        let s = nchw(op, shape)?;
        let same_rest = (1..4).all(|d| d == spec.axis || s[d] == out[d]);
        let batch_ok = s[0] == out[0] || s[0] == 1 || out[0] == 1;
        if !same_rest || !batch_ok {
            return Err(shape_err(
                op,
                format!(
                    "inputs must agree on every axis but {} (batch 1 broadcasts), got {inputs:?}",
                    spec.axis
                ),
            ));
        }
        out[0] = out[0].max(s[0]);
        out[spec.axis] += s[spec.axis];
    }
    Ok(out)
}

/// The output shapes of `Split` on an input of shape `x`.
pub fn split_shapes(spec: &Split, x: &[usize]) -> Result<Vec<[usize; 4]>> {
    let op = "split";
    check_axis(op, spec.axis)?;
    let s = nchw(op, x)?;
    let total: usize = spec.sizes.iter().sum();
    if total != s[spec.axis] || spec.sizes.is_empty() {
        return Err(shape_err(
            op,
            format!(
                "sizes {:?} must add up to axis {} of {x:?} ({})",
                spec.sizes, spec.axis, s[spec.axis]
            ),
        ));
    }
    Ok(spec
        .sizes
        .iter()
        .map(|&len| {
            let mut part = s;
            part[spec.axis] = len;
            part
        })
        .collect())
}
