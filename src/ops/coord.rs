//! Coordinate Attention (MODULES.md §5) as three ops around the shared 1×1 conv (`conv1` + BN
//! + h_swish, an ordinary conv on `[N,C,H+W,1]`):
//! - `CoordPool`: both directional means straight into the concatenated `[N,C,H+W,1]`;
//! - `CoordGateSpec`: `conv_h` and `conv_w` (1×1, mip→C, bias) + sigmoid on the two halves of
//!   the conv1 output, packed per image as `a_h [C,H]` then `a_w [C,W]`;
//! - `CoordApply`: `(x · a_w) · a_h`, the official order of the two products.

pub use super::Shaped;
use crate::error::{shape_err, Result};
use crate::tensor::nchw;

/// `x [N,C,H,W] → [N,C,H+W,1]`: row `h < H` is `mean_w x[n,c,h,·]`, row `H + w` is
/// `mean_h x[n,c,·,w]` (§5.1 steps 1–2).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct CoordPool;

impl CoordPool {
    pub fn out_shape(&self, x: &[usize]) -> Result<[usize; 4]> {
        let [n, c, h, w] = nchw("coord_pool", x)?;
        if h == 0 || w == 0 {
            return Err(shape_err(
                "coord_pool",
                format!("cannot average over an empty axis of {x:?}"),
            ));
        }
        Ok([n, c, h + w, 1])
    }
}

/// `f [N,mip,H+W,1] → [N, C·(H+W)]`: per image `a_h[c,h] = σ(b[0,c] + Σ_m W[0,c,m]·f[m,h])`,
/// then `a_w[c,w] = σ(b[1,c] + Σ_m W[1,c,m]·f[m,H+w])`; weight `[2,C,mip]` (conv_h, conv_w),
/// bias `[2,C]`. H is where the split falls.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct CoordGateSpec {
    pub h: usize,
    pub w: usize,
}

impl CoordGateSpec {
    /// Checks the operands; returns `[N, mip, C]`.
    pub fn dims(&self, f: &[usize], weight: &[usize], bias: &[usize]) -> Result<[usize; 3]> {
        let op = "coord_gates";
        let [n, mip, len, one] = nchw(op, f)?;
        if len != self.h + self.w || one != 1 {
            return Err(shape_err(
                op,
                format!(
                    "expects f [N, mip, {}, 1] for H = {}, W = {}, got {f:?}",
                    self.h + self.w,
                    self.h,
                    self.w
                ),
            ));
        }
        match (weight, bias) {
            ([2, c, m], [2, bc]) if *m == mip && bc == c => Ok([n, mip, *c]),
            _ => Err(shape_err(
                op,
                format!("needs weight [2, C, {mip}] and bias [2, C], got {weight:?} and {bias:?}"),
            )),
        }
    }

    pub fn out_shape(&self, f: &[usize], weight: &[usize], bias: &[usize]) -> Result<[usize; 2]> {
        let [n, _, c] = self.dims(f, weight, bias)?;
        Ok([n, c * (self.h + self.w)])
    }
}

/// `y[n,c,h,w] = (x[n,c,h,w] · a_w[n,c,w]) · a_h[n,c,h]` with the gates packed as
/// `CoordGateSpec` writes them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct CoordApply;

impl CoordApply {
    pub fn check(&self, x: &[usize], gates: &[usize]) -> Result<[usize; 4]> {
        let op = "coord_apply";
        let [n, c, h, w] = nchw(op, x)?;
        let want = [n, c * (h + w)];
        if gates != want {
            return Err(shape_err(
                op,
                format!("the packed gates must be {want:?} for x {x:?}, got {gates:?}"),
            ));
        }
        Ok([n, c, h, w])
    }
}
