//! Triplet Attention (MODULES.md §2) in index form: Z-pools read in place over C, H or W, three
//! 2→1 k×k gates with folded BN and sigmoid, and one combine pass (with an optional fused
//! residual add and activation, since the networks add the shortcut and apply ReLU right after).

use super::Activation;
pub use super::Shaped;
use crate::error::{shape_err, Result};
use crate::tensor::nchw;

/// The axis of `x[N,C,H,W]` a Z-pool reduces.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ZAxis {
    /// hw branch: `[N,2,H,W]`.
    C,
    /// cw branch: `[N,2,C,W]`.
    H,
    /// hc branch: `[N,2,H,C]`.
    W,
}

impl ZAxis {
    pub const ALL: [ZAxis; 3] = [ZAxis::C, ZAxis::H, ZAxis::W];
}

/// `[max, mean]` over one axis, stacked as 2 channels (channel 0 = max, 1 = mean = sum/count).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ZPool {
    pub axis: ZAxis,
}

/// Where a Z-pool reads in the contiguous NCHW input: the output plane `(a, b)` of image `n`
/// reduces `count` elements at `n·image + a·stride_a + b·stride_b + r·stride_r`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ZPoolLayout {
    pub batch: usize,
    pub a: usize,
    pub b: usize,
    pub count: usize,
    pub image: usize,
    pub stride_a: usize,
    pub stride_b: usize,
    pub stride_r: usize,
}

impl ZPool {
    pub fn layout(&self, x: &[usize]) -> Result<ZPoolLayout> {
        let op = "zpool";
        let [n, c, h, w] = nchw(op, x)?;
        let (a, b, count, stride_a, stride_b, stride_r) = match self.axis {
            ZAxis::C => (h, w, c, w, 1, h * w),
            ZAxis::H => (c, w, h, h * w, 1, w),
            ZAxis::W => (h, c, w, w, h * w, 1),
        };
        if count == 0 {
            return Err(shape_err(
                op,
                format!("cannot pool over an empty {:?} axis of {x:?}", self.axis),
            ));
        }
        Ok(ZPoolLayout {
            batch: n,
            a,
            b,
            count,
            image: c * h * w,
            stride_a,
            stride_b,
            stride_r,
        })
    }

    pub fn out_shape(&self, x: &[usize]) -> Result<[usize; 4]> {
        let l = self.layout(x)?;
        Ok([l.batch, 2, l.a, l.b])
    }
}

/// One gate after BN folding: conv weight `[1,2,k,k]` (k odd) and its scalar bias `[1]`.
#[derive(Clone, Debug)]
pub struct Gate<T> {
    pub weight: T,
    pub bias: T,
}

/// The three gates of one TA module; `hw` is `None` in the `no_spatial` (2-branch) form.
#[derive(Clone, Debug)]
pub struct TripletGates<T> {
    pub hw: Option<Gate<T>>,
    pub cw: Gate<T>,
    pub hc: Gate<T>,
}

impl<T: Shaped> Gate<T> {
    /// The kernel size k, after checking the weight is `[1,2,k,k]` with k odd and the bias `[1]`.
    pub fn kernel_size(&self) -> Result<usize> {
        let op = "triplet_gate";
        let (w, b) = (self.weight.dims(), self.bias.dims());
        match (w, b) {
            ([1, 2, k, k2], [1]) if k == k2 && k % 2 == 1 => Ok(*k),
            _ => Err(shape_err(
                op,
                format!("needs weight [1, 2, k, k] with k odd and bias [1], got {w:?} and {b:?}"),
            )),
        }
    }

    /// The gate of a pooled map `[N,2,A,B]`: `[N,1,A,B]`.
    pub fn out_shape(&self, pooled: &[usize]) -> Result<[usize; 4]> {
        self.kernel_size()?;
        match nchw("triplet_gate", pooled)? {
            [n, 2, a, b] => Ok([n, 1, a, b]),
            _ => Err(shape_err(
                "triplet_gate",
                format!("expects a pooled map [N, 2, A, B], got {pooled:?}"),
            )),
        }
    }
}

impl<T: Shaped> TripletGates<T> {
    pub fn check(&self) -> Result<()> {
        if let Some(hw) = &self.hw {
            hw.kernel_size()?;
        }
        self.cw.kernel_size()?;
        self.hc.kernel_size()?;
        Ok(())
    }
}

/// `out = act(x · (g_hw + g_cw + g_hc) · 1/3 + residual)`, or `x · (g_cw + g_hc) · 1/2` without
/// `g_hw`; the residual is optional.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TripletCombine {
    pub act: Activation,
}

/// The averaging factor as the fp32 constant PyTorch multiplies by (§2.3: 1/3 is 0.33333334).
pub fn branch_scale(has_hw: bool) -> f32 {
    if has_hw {
        1.0 / 3.0
    } else {
        0.5
    }
}

/// The gate maps of the three branches, as the combine reads them: `hw [N,1,H,W]` (absent in
/// the 2-branch form), `cw [N,1,C,W]`, `hc [N,1,H,C]`.
#[derive(Clone, Copy, Debug)]
pub struct GateMaps<T> {
    pub hw: Option<T>,
    pub cw: T,
    pub hc: T,
}

/// Checks the combine operands against `x[N,C,H,W]`: the gate maps and a residual shaped
/// like `x`.
pub fn check_combine<T: Shaped>(
    x: &[usize],
    gates: &GateMaps<T>,
    residual: Option<&[usize]>,
) -> Result<()> {
    let op = "triplet_combine";
    let [n, c, h, w] = nchw(op, x)?;
    let wrong = |what: &str, want: &[usize], got: &[usize]| {
        shape_err(
            op,
            format!("{what} must be {want:?} for x {x:?}, got {got:?}"),
        )
    };
    if let Some(g) = &gates.hw {
        if g.dims() != [n, 1, h, w] {
            return Err(wrong("the hw gate", &[n, 1, h, w], g.dims()));
        }
    }
    if gates.cw.dims() != [n, 1, c, w] {
        return Err(wrong("the cw gate", &[n, 1, c, w], gates.cw.dims()));
    }
    if gates.hc.dims() != [n, 1, h, c] {
        return Err(wrong("the hc gate", &[n, 1, h, c], gates.hc.dims()));
    }
    if let Some(r) = residual {
        if r != x {
            return Err(wrong("the residual", x, r));
        }
    }
    Ok(())
}
