//! Fully connected layers and softmax.

use super::Activation;
use crate::error::{shape_err, Result};
use crate::tensor::nchw;

/// `y[n,o] = act(Σ_f x[n,f] · W[o,f] + b[o])` with `W [O, F]` (PyTorch `nn.Linear` layout) and
/// an optional bias `b [O]`.
///
/// Flattening rule: `x` is `[N, F]`, or `[N, F, 1, 1]` (a globally pooled map, read as
/// `flatten(1)` reads it). The output is always `[N, O]`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Linear {
    pub act: Activation,
}

/// Sizes of one linear layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct LinearDims {
    pub n: usize,
    pub f: usize,
    pub o: usize,
}

impl LinearDims {
    pub fn out_shape(&self) -> [usize; 2] {
        [self.n, self.o]
    }
}

/// Checks the shapes of `x`, `W` and the optional `b`; returns the sizes.
pub fn linear_dims(x: &[usize], w: &[usize], b: Option<&[usize]>) -> Result<LinearDims> {
    let op = "linear";
    let (n, f) = match *x {
        [n, f] | [n, f, 1, 1] => (n, f),
        _ => {
            return Err(shape_err(
                op,
                format!("input must be [N, F] or [N, F, 1, 1], got {x:?}"),
            ))
        }
    };
    let o = match *w {
        [o, wf] if wf == f => o,
        _ => {
            return Err(shape_err(
                op,
                format!("weight must be [O, {f}] for input {x:?}, got {w:?}"),
            ))
        }
    };
    if let Some(b) = b {
        if b != [o] {
            return Err(shape_err(
                op,
                format!("bias must be [{o}] for weight {w:?}, got {b:?}"),
            ));
        }
    }
    Ok(LinearDims { n, f, o })
}

/// Softmax over `axis` of a rank-4 tensor, `y = exp(x − max) / Σ exp(x − max)` along the axis
/// (subtracting the maximum keeps `exp` finite). SAN pairwise uses axis 2 of `[N, C', k², HW]`.
/// Axis 0 (the batch) is not supported: launchers may run the batch in chunks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Softmax {
    pub axis: usize,
}

/// The `[outer, L, inner]` view of `x` around the softmax axis; the output has `x`'s shape.
pub fn softmax_view(spec: &Softmax, x: &[usize]) -> Result<[usize; 3]> {
    let op = "softmax";
    let s = nchw(op, x)?;
    if !(1..=3).contains(&spec.axis) {
        return Err(shape_err(
            op,
            format!("axis must be 1, 2 or 3, got {} for {x:?}", spec.axis),
        ));
    }
    if s[spec.axis] == 0 {
        return Err(shape_err(
            op,
            format!("axis {} of {x:?} is empty", spec.axis),
        ));
    }
    let outer: usize = s[..spec.axis].iter().product();
    let inner: usize = s[spec.axis + 1..].iter().product();
    Ok([outer, s[spec.axis], inner])
}
