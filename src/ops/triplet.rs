//! Triplet Attention (MODULES.md §2) in index form, as three graph ops over packed values, so
//! a module costs three dispatches and every intermediate is a planned graph value:
//! - `TripletPool`: the six Z-pools of x (max and mean over C, over H, over W), one vector per
//!   image;
//! - `TripletGateSpec`: the 2→1 k×k gate convolutions with folded BN and sigmoid on those maps,
//!   one vector per image;
//! - `TripletCombine`: `act(x · (g_hw + g_cw + g_hc) · 1/3 + residual)` in the branch order of
//!   the PyTorch module (the networks add the shortcut and apply ReLU right after TA).

use super::Activation;
pub use super::Shaped;
use crate::error::{shape_err, Result};
use crate::tensor::{nchw, Tensor};

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

/// `[max, mean]` over one axis, stacked as 2 channels (channel 0 = max, 1 = mean = sum/count).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ZPool {
    pub axis: ZAxis,
}

/// Where a Z-pool reads in the contiguous NCHW input: output `(a, b)` of image `n` reduces
/// `count` elements at `n·image + a·stride_a + b·stride_b + r·stride_r`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
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

/// The three branches, in the order their maps are packed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Branch {
    /// Pools over C; gate plane `H × W`.
    Hw,
    /// Pools over H; gate plane `C × W`.
    Cw,
    /// Pools over W; gate plane `H × C`.
    Hc,
}

impl Branch {
    pub fn label(self) -> &'static str {
        match self {
            Branch::Hw => "hw",
            Branch::Cw => "cw",
            Branch::Hc => "hc",
        }
    }

    /// The axis of x this branch's Z-pool reduces.
    pub fn axis(self) -> ZAxis {
        match self {
            Branch::Hw => ZAxis::C,
            Branch::Cw => ZAxis::H,
            Branch::Hc => ZAxis::W,
        }
    }
}

/// One branch's plane in the packed values: `rows × cols`, row-major, kernel rows along
/// `rows` (§2.3). In the packed pool, the max map starts at `pooled` and the mean map follows
/// it; in the packed gates, the gate map starts at `gate`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Plane {
    pub branch: Branch,
    pub rows: usize,
    pub cols: usize,
    pub pooled: usize,
    pub gate: usize,
}

impl Plane {
    pub fn len(&self) -> usize {
        self.rows * self.cols
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The extents of one image `[C, H, W]` and the branch set, which fix the packed layouts:
/// per image, the planes hw (unless `no_spatial`), cw, hc one after the other.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TripletDims {
    pub c: usize,
    pub h: usize,
    pub w: usize,
    pub has_hw: bool,
}

impl TripletDims {
    /// The batch and dims of `x [N,C,H,W]`, refusing empty axes (a Z-pool over one is undefined).
    pub fn of(op: &'static str, x: &[usize], has_hw: bool) -> Result<(usize, Self)> {
        let [n, c, h, w] = nchw(op, x)?;
        if c == 0 || h == 0 || w == 0 {
            return Err(shape_err(
                op,
                format!("cannot pool over an empty axis of {x:?}"),
            ));
        }
        Ok((n, Self { c, h, w, has_hw }))
    }

    /// The planes in packing order, with their offsets.
    pub fn planes(&self) -> Vec<Plane> {
        let (hw, cw, hc) = self.layout();
        hw.into_iter().chain([cw, hc]).collect()
    }

    /// The hw plane: `H × W`, absent in the `no_spatial` form.
    pub fn hw(&self) -> Option<Plane> {
        self.layout().0
    }

    /// The cw plane: `C × W`.
    pub fn cw(&self) -> Plane {
        self.layout().1
    }

    /// The hc plane: `H × C`.
    pub fn hc(&self) -> Plane {
        self.layout().2
    }

    /// hw (if kept), cw and hc, each placed after the one before.
    fn layout(&self) -> (Option<Plane>, Plane, Plane) {
        let (c, h, w) = (self.c, self.h, self.w);
        let (mut pooled, mut gate) = (0, 0);
        let mut place = |branch, rows, cols| {
            let plane = Plane {
                branch,
                rows,
                cols,
                pooled,
                gate,
            };
            pooled += 2 * rows * cols;
            gate += rows * cols;
            plane
        };
        let hw = self.has_hw.then(|| place(Branch::Hw, h, w));
        let cw = place(Branch::Cw, c, w);
        let hc = place(Branch::Hc, h, c);
        (hw, cw, hc)
    }

    /// Values per image of the pooled maps: a max and a mean map per plane.
    pub fn maps_len(&self) -> usize {
        self.planes().iter().map(|p| 2 * p.len()).sum()
    }

    /// Groups of `HW_GROUP` channels the hw pool may be reduced in first.
    pub fn channel_groups(&self) -> usize {
        self.c.div_ceil(HW_GROUP)
    }

    /// Values per image of the scratch after the maps: room for a max and a sum map
    /// `[H, W]` per channel group, from which a GPU may finish the hw pool (none without hw).
    pub fn scratch_len(&self) -> usize {
        if self.has_hw {
            2 * self.channel_groups() * self.h * self.w
        } else {
            0
        }
    }

    /// Values per image of the packed pool: the maps, then the scratch.
    pub fn pooled_len(&self) -> usize {
        self.maps_len() + self.scratch_len()
    }

    /// Values per image of the packed gates.
    pub fn gates_len(&self) -> usize {
        self.planes().iter().map(Plane::len).sum()
    }
}

/// Channels per group of the hw scratch (`TripletDims::scratch_len`).
pub const HW_GROUP: usize = 32;

/// `x [N,C,H,W] → [N, pooled_len]`: per plane the max map, then the mean map (= sum/count), i.e.
/// the `[2, rows, cols]` Z-pool output of that branch; then scratch whose contents are not part
/// of the result (the reference leaves zeros; the GPU may keep channel-group partials there).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TripletPool {
    pub has_hw: bool,
}

impl TripletPool {
    pub fn dims(&self, x: &[usize]) -> Result<(usize, TripletDims)> {
        TripletDims::of("triplet_pool", x, self.has_hw)
    }

    pub fn out_shape(&self, x: &[usize]) -> Result<[usize; 2]> {
        let (n, d) = self.dims(x)?;
        Ok([n, d.pooled_len()])
    }
}

/// The gate convolutions: `pooled [N, pooled_len] → [N, gates_len]` with, per plane in
/// packing order, `σ(bias[g] + Σ_i Σ_u Σ_v K[g,i,u,v] · P[i, r+u−p, c+v−p])` (zero padding,
/// `p = (k−1)/2`), weight `[G, 2, k, k]` and bias `[G]` (G = the number of planes, BN folded).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TripletGateSpec {
    pub dims: TripletDims,
}

impl TripletGateSpec {
    /// The kernel size k, after checking weight `[G, 2, k, k]` (k odd) and bias `[G]`.
    pub fn kernel_size(&self, weight: &[usize], bias: &[usize]) -> Result<usize> {
        let g = self.dims.planes().len();
        match (weight, bias) {
            ([wg, 2, k, k2], [bg]) if *wg == g && *bg == g && k == k2 && k % 2 == 1 => Ok(*k),
            _ => Err(shape_err(
                "triplet_gates",
                format!(
                    "needs weight [{g}, 2, k, k] with k odd and bias [{g}], got {weight:?} and {bias:?}"
                ),
            )),
        }
    }

    pub fn out_shape(
        &self,
        pooled: &[usize],
        weight: &[usize],
        bias: &[usize],
    ) -> Result<[usize; 2]> {
        self.kernel_size(weight, bias)?;
        let want = self.dims.pooled_len();
        match pooled {
            [n, p] if *p == want => Ok([*n, self.dims.gates_len()]),
            _ => Err(shape_err(
                "triplet_gates",
                format!(
                    "expects packed pools [N, {want}] for {:?}, got {pooled:?}",
                    self.dims
                ),
            )),
        }
    }
}

/// `out = act(((x·g_hw + x·g_cw) + x·g_hc) · 0.33333334 + residual)`, or
/// `act((x·g_cw + x·g_hc) · 0.5 + residual)` without the hw branch; the residual is optional.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct TripletCombine {
    pub has_hw: bool,
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

impl TripletCombine {
    /// Checks `x [N,C,H,W]`, the packed gates `[N, gates_len]` and a residual shaped like x;
    /// returns the dims the gates are laid out by.
    pub fn check(
        &self,
        x: &[usize],
        gates: &[usize],
        residual: Option<&[usize]>,
    ) -> Result<TripletDims> {
        let op = "triplet_combine";
        let (n, dims) = TripletDims::of(op, x, self.has_hw)?;
        let want = [n, dims.gates_len()];
        if gates != want {
            return Err(shape_err(
                op,
                format!("the packed gates must be {want:?} for x {x:?}, got {gates:?}"),
            ));
        }
        if let Some(r) = residual.filter(|r| *r != x) {
            return Err(shape_err(
                op,
                format!("the residual must be {x:?} like x, got {r:?}"),
            ));
        }
        Ok(dims)
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
        let (w, b) = (self.weight.dims(), self.bias.dims());
        match (w, b) {
            ([1, 2, k, k2], [1]) if k == k2 && k % 2 == 1 => Ok(*k),
            _ => Err(shape_err(
                "triplet_gate",
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
    /// The common kernel size of the gates (the official code uses one k for all three).
    pub fn kernel_size(&self) -> Result<usize> {
        let ks = self
            .in_order()
            .into_iter()
            .map(Gate::kernel_size)
            .collect::<Result<Vec<_>>>()?;
        if ks.windows(2).any(|w| w[0] != w[1]) {
            return Err(shape_err(
                "triplet_attention",
                format!("the gates mix kernel sizes {ks:?}"),
            ));
        }
        Ok(ks[0])
    }

    /// The gates in packing order (hw if present, cw, hc).
    pub fn in_order(&self) -> Vec<&Gate<T>> {
        self.hw.iter().chain([&self.cw, &self.hc]).collect()
    }
}

impl TripletGates<Tensor> {
    /// The weights as the gate op takes them: `[G, 2, k, k]` and `[G]`, in packing order.
    pub fn pack(&self) -> Result<(Tensor, Tensor)> {
        let k = self.kernel_size()?;
        let gates = self.in_order();
        let weight: Vec<f32> = gates
            .iter()
            .flat_map(|g| g.weight.data().iter().copied())
            .collect();
        let bias: Vec<f32> = gates
            .iter()
            .flat_map(|g| g.bias.data().iter().copied())
            .collect();
        Ok((
            Tensor::new(vec![gates.len(), 2, k, k], weight)?,
            Tensor::new(vec![gates.len()], bias)?,
        ))
    }
}
