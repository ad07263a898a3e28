//! Pointwise ops with NumPy-style broadcasting over up to four dimensions.

use super::Activation;
use crate::error::{shape_err, Result};

/// `y = act(scale · x + shift)` with scalar scale and shift (covers ReLU, `1 − w`, `× 1/3`, ...).
/// Equal and hashed by the bits of its scalars, so that an op is a plain key.
#[derive(Clone, Copy, Debug)]
pub struct Unary {
    pub scale: f32,
    pub shift: f32,
    pub act: Activation,
}

impl Unary {
    fn key(&self) -> (u32, u32, Activation) {
        (self.scale.to_bits(), self.shift.to_bits(), self.act)
    }

    pub fn act(act: Activation) -> Self {
        Self {
            scale: 1.0,
            shift: 0.0,
            act,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BinaryOp {
    Add,
    Sub,
    Mul,
}

impl BinaryOp {
    pub fn code(self) -> u32 {
        self as u32
    }
}

/// `y = act(a ∘ b)` with `a` and `b` broadcast against each other.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Binary {
    pub op: BinaryOp,
    pub act: Activation,
}

/// The AFF blend `y = k · (x·w + r·(1 − w))` (k = 2 for AFF, 1 for iAFF), `w` broadcast.
/// Equal and hashed by the bits of `k`.
#[derive(Clone, Copy, Debug)]
pub struct Blend {
    pub k: f32,
}

impl PartialEq for Unary {
    fn eq(&self, other: &Self) -> bool {
        self.key() == other.key()
    }
}

impl Eq for Unary {}

impl std::hash::Hash for Unary {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.key().hash(state)
    }
}

impl PartialEq for Blend {
    fn eq(&self, other: &Self) -> bool {
        self.k.to_bits() == other.k.to_bits()
    }
}

impl Eq for Blend {}

impl std::hash::Hash for Blend {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.k.to_bits().hash(state)
    }
}

impl Blend {
    /// The output shape: x's, which the residual `r` must share and the weight `w` must
    /// broadcast to.
    pub fn out_shape(&self, x: &[usize], w: &[usize], r: &[usize]) -> Result<Vec<usize>> {
        if x != r {
            return Err(shape_err(
                "blend",
                format!("x {x:?} and residual {r:?} differ"),
            ));
        }
        if broadcast_shape("blend", x, w)? != x {
            return Err(shape_err(
                "blend",
                format!("weight {w:?} does not broadcast to {x:?}"),
            ));
        }
        Ok(x.to_vec())
    }
}

/// Shapes are right-aligned to rank 4 by prepending ones.
pub const MAX_RANK: usize = 4;

/// The broadcast shape of `a` and `b`, as NumPy defines it.
pub fn broadcast_shape(op: &'static str, a: &[usize], b: &[usize]) -> Result<Vec<usize>> {
    if a.len() > MAX_RANK || b.len() > MAX_RANK {
        return Err(shape_err(
            op,
            format!("supports rank ≤ {MAX_RANK}, got {a:?} and {b:?}"),
        ));
    }
    let rank = a.len().max(b.len());
    let dim = |s: &[usize], i: usize| {
        let pad = rank - s.len();
        if i < pad {
            1
        } else {
            s[i - pad]
        }
    };
    (0..rank)
        .map(|i| match (dim(a, i), dim(b, i)) {
            (x, y) if x == y => Ok(x),
            (1, y) => Ok(y),
            (x, 1) => Ok(x),
            _ => Err(shape_err(op, format!("cannot broadcast {a:?} with {b:?}"))),
        })
        .collect()
}

/// `shape` right-aligned to rank 4.
pub fn pad4(shape: &[usize]) -> [usize; 4] {
    let mut out = [1; 4];
    out[MAX_RANK - shape.len()..].copy_from_slice(shape);
    out
}

/// Row-major strides of `shape` viewed as `out` (rank 4), zero on broadcast axes.
pub fn broadcast_strides(shape: &[usize], out: &[usize; 4]) -> [usize; 4] {
    let s = pad4(shape);
    let mut strides = [0; 4];
    let mut step = 1;
    for i in (0..4).rev() {
        strides[i] = if s[i] == 1 && out[i] != 1 { 0 } else { step };
        step *= s[i];
    }
    strides
}

/// Per-channel affine `y = act(x · scale[c] + shift[c])` on `[N, C, ...]` (BN that cannot fold).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ChannelAffine {
    pub act: Activation,
}

/// Checks `x` is `[N, C, ...]` and `scale`, `shift` are `[C]`; returns C.
pub fn channel_affine_channels(x: &[usize], scale: &[usize], shift: &[usize]) -> Result<usize> {
    let op = "channel_affine";
    let c = *x
        .get(1)
        .ok_or_else(|| shape_err(op, format!("expects [N, C, ...], got {x:?}")))?;
    if scale != [c] || shift != [c] {
        return Err(shape_err(
            op,
            format!("scale and shift must be [{c}] for input {x:?}, got {scale:?} and {shift:?}"),
        ));
    }
    Ok(c)
}
