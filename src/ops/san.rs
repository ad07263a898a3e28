//! The SAN primitives (MODULES.md §9.2): subtraction, aggregation, reflection padding, unfold,
//! the fused patchwise gather, and the position grid.
//!
//! A window op slides a `k × k` window (k odd) with stride `s` and dilation `d` over a map
//! padded by `p` on every side. Tap `j = a·k + b` of output `(h, w)` reads input row
//! `h·s − p + a·d` and column `w·s − p + b·d`; the centre is row `h·s − p + ((k−1)/2)·d`.

use super::Activation;
use crate::error::{shape_err, Result};
use crate::tensor::{nchw, Tensor};

/// What a window reads outside the map.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum PadMode {
    /// Zero (the CUDA "zeropad" kernels; implemented there but unused by SAN).
    Zero,
    /// Single reflection without edge repetition (`ReflectionPad2d`), used by every SAN layer.
    #[default]
    Reflect,
}

impl PadMode {
    /// The code the SAN shaders switch on.
    pub fn code(self) -> u32 {
        match self {
            PadMode::Zero => 0,
            PadMode::Reflect => 1,
        }
    }
}

/// The sliding window of Subtraction and Aggregation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Window {
    pub kernel: usize,
    pub stride: usize,
    pub dilation: usize,
    pub padding: usize,
    pub pad_mode: PadMode,
}

impl Window {
    /// Reflect padding by SAN's own rule `p = (d·(k−1) + 1) // 2`.
    pub fn new(kernel: usize, stride: usize, dilation: usize) -> Self {
        Self {
            kernel,
            stride,
            dilation,
            // (d·(k−1) + 1) // 2
            padding: (dilation * kernel.saturating_sub(1)).div_ceil(2),
            pad_mode: PadMode::Reflect,
        }
    }

    pub fn with_padding(self, padding: usize) -> Self {
        Self { padding, ..self }
    }

    pub fn with_pad_mode(self, pad_mode: PadMode) -> Self {
        Self { pad_mode, ..self }
    }

    /// Number of taps, `k²`.
    pub fn taps(&self) -> usize {
        self.kernel * self.kernel
    }

    /// Rows or columns the window spans, `d·(k−1) + 1`.
    pub fn extent(&self) -> usize {
        self.dilation * (self.kernel - 1) + 1
    }

    /// Offset of the centre tap from the window origin, `((k−1)/2)·d`.
    pub fn centre(&self) -> usize {
        (self.kernel - 1) / 2 * self.dilation
    }

    /// `(Ho, Wo)` for an `H × W` map, or an error when the window does not fit or reflect
    /// padding exceeds the map (`R(i, L)` needs `p ≤ L − 1`).
    pub fn output_size(&self, op: &'static str, h: usize, w: usize) -> Result<(usize, usize)> {
        if self.kernel.is_multiple_of(2) || self.stride == 0 || self.dilation == 0 {
            return Err(shape_err(
                op,
                format!(
                    "needs an odd kernel and stride, dilation ≥ 1, got {:?}",
                    self
                ),
            ));
        }
        if self.pad_mode == PadMode::Reflect && (self.padding >= h || self.padding >= w) {
            return Err(shape_err(
                op,
                format!(
                    "reflect padding {} needs a map of at least {}×{}, got {h}×{w}",
                    self.padding,
                    self.padding + 1,
                    self.padding + 1
                ),
            ));
        }
        let size = |len: usize| {
            let padded = len + 2 * self.padding;
            if padded < self.extent() {
                return Err(shape_err(
                    op,
                    format!(
                        "a window spanning {} does not fit the {h}×{w} map padded by {}",
                        self.extent(),
                        self.padding
                    ),
                ));
            }
            Ok((padded - self.extent()) / self.stride + 1)
        };
        Ok((size(h)?, size(w)?))
    }
}

/// `R(i, L)`: the index a reflect-padded read at `i ∈ [−(L−1), 2(L−1)]` lands on.
pub fn reflect(i: isize, len: usize) -> usize {
    let last = len as isize - 1;
    let r = if i < 0 {
        -i
    } else if i > last {
        2 * last - i
    } else {
        i
    };
    r as usize
}

/// `Subtraction2(x1, x2)`: `out[n,c,j,h·Wo+w] = act(x1[n,c,centre] − x2[n,c,tap j])`, where
/// the neighbour is reflected or zero outside the map and the centre is never padded.
/// `Subtraction(x)` is `Subtraction2(x, x)`. `act` is an epilogue for fusing the ReLU of
/// `conv_w.1` once `conv_w.0` is folded into the producers (§9.7); SAN itself has `None`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Subtraction {
    pub window: Window,
    pub act: Activation,
}

/// Output shape `[N, C, k², Ho·Wo]` of `Subtraction2` on `x1` and `x2` (both `[N,C,H,W]`).
pub fn subtraction_shape(spec: &Subtraction, x1: &[usize], x2: &[usize]) -> Result<[usize; 4]> {
    let op = "subtraction";
    let [n, c, h, w] = nchw(op, x1)?;
    if x1 != x2 {
        return Err(shape_err(
            op,
            format!("x1 and x2 must have one shape, got {x1:?} and {x2:?}"),
        ));
    }
    let win = spec.window;
    let (ho, wo) = win.output_size(op, h, w)?;
    // The centre is read unpadded (as the CUDA kernels do), so it must lie inside the map.
    let last_centre = |out: usize| (out - 1) * win.stride + win.centre();
    if win.padding > win.centre()
        || last_centre(ho) >= h + win.padding
        || last_centre(wo) >= w + win.padding
    {
        return Err(shape_err(
            op,
            format!(
                "padding {} puts window centres outside the {h}×{w} map ({win:?})",
                win.padding
            ),
        ));
    }
    Ok([n, c, win.taps(), ho * wo])
}

/// An optional per-channel epilogue `act(scale[c] · v + shift[c])`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Epilogue {
    /// Whether `scale` and `shift` tensors (`[channels]`) are applied.
    pub affine: bool,
    pub act: Activation,
}

/// `Aggregation(x, wt)`: `out[n,c,h,w] = Σ_j wt[n, c mod Cw, j, h·Wo+w] · x[n, c, tap j]` with
/// reflect padding, or zero-padded taps skipped; then the epilogue over the C channels (the
/// patchwise bn2 shift and ReLU, §9.7).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Aggregation {
    pub window: Window,
    pub epilogue: Epilogue,
}

/// Output shape `[N, C, Ho, Wo]` of `Aggregation` on `x [N,C,H,W]` and `wt [N,Cw,k²,Ho·Wo]`.
pub fn aggregation_shape(spec: &Aggregation, x: &[usize], wt: &[usize]) -> Result<[usize; 4]> {
    let op = "aggregation";
    let [n, c, h, w] = nchw(op, x)?;
    let [wn, cw, taps, positions] = nchw(op, wt)?;
    let (ho, wo) = spec.window.output_size(op, h, w)?;
    let k2 = spec.window.taps();
    if wn != n || cw == 0 || c % cw != 0 || taps != k2 || positions != ho * wo {
        return Err(shape_err(
            op,
            format!(
                "weights must be [{n}, Cw, {k2}, {}] with Cw dividing {c} for input {x:?}, got {wt:?}",
                ho * wo
            ),
        ));
    }
    Ok([n, c, ho, wo])
}

/// `ReflectionPad2d(pad)`: `out[n,c,h,w] = x[n,c,R(h−pad,H),R(w−pad,W)]`, `[N,C,H+2p,W+2p]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ReflectPad {
    pub pad: usize,
}

pub fn reflect_pad_shape(spec: &ReflectPad, x: &[usize]) -> Result<[usize; 4]> {
    let op = "reflection_pad";
    let [n, c, h, w] = nchw(op, x)?;
    if spec.pad >= h || spec.pad >= w {
        return Err(shape_err(
            op,
            format!("padding {} must be below both sides of {x:?}", spec.pad),
        ));
    }
    Ok([n, c, h + 2 * spec.pad, w + 2 * spec.pad])
}

/// `nn.Unfold(k, dilation=1, padding=0, stride)`:
/// `out[n, c·k² + a·k + b, l] = x[n, c, lh·s + a, lw·s + b]` with `l = lh·Lw + lw`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Unfold {
    pub kernel: usize,
    pub stride: usize,
}

/// `(output shape [N, C·k², Lh·Lw], Lh, Lw)`.
pub fn unfold_shape(spec: &Unfold, x: &[usize]) -> Result<([usize; 3], usize, usize)> {
    let op = "unfold";
    let [n, c, h, w] = nchw(op, x)?;
    let k = spec.kernel;
    if k == 0 || spec.stride == 0 || k > h || k > w {
        return Err(shape_err(
            op,
            format!(
                "kernel {k} and stride {} must be ≥ 1 with the kernel inside {x:?}",
                spec.stride
            ),
        ));
    }
    let (lh, lw) = ((h - k) / spec.stride + 1, (w - k) / spec.stride + 1);
    Ok(([n, c * k * k, lh * lw], lh, lw))
}

/// The patchwise gather: `Unfold(k)(ReflectionPad2d(k//2)(x))` laid out as `[N, C·k², 1, H·W]`,
/// `out[n, c·k²+j, 0, h·W+w] = act(scale[c·k²+j] · x[n,c,R(h+a−k//2,H),R(w+b−k//2,W)] + shift[·])`
/// when `epilogue.affine` (the unfolded part of the `conv_w.0` BN, §9.7), else `act(x[…])`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PatchGather {
    pub kernel: usize,
    pub epilogue: Epilogue,
}

pub fn patch_gather_shape(spec: &PatchGather, x: &[usize]) -> Result<[usize; 4]> {
    let op = "patch_gather";
    let [n, c, h, w] = nchw(op, x)?;
    let k = spec.kernel;
    if k.is_multiple_of(2) || k / 2 >= h || k / 2 >= w {
        return Err(shape_err(
            op,
            format!("needs an odd kernel with reflect padding {} below both sides of {x:?}, got k = {k}", k / 2),
        ));
    }
    Ok([n, c * k * k, 1, h * w])
}

/// Checks an epilogue's `scale` and `shift` are `[channels]` when it has them.
pub fn check_epilogue(
    op: &'static str,
    epilogue: &Epilogue,
    channels: usize,
    scale_shift: Option<(&[usize], &[usize])>,
) -> Result<()> {
    match (epilogue.affine, scale_shift) {
        (false, None) => Ok(()),
        (true, Some((s, t))) if s == [channels] && t == [channels] => Ok(()),
        (true, Some((s, t))) => Err(shape_err(
            op,
            format!("scale and shift must be [{channels}], got {s:?} and {t:?}"),
        )),
        (affine, _) => Err(shape_err(
            op,
            format!("epilogue affine = {affine} needs scale and shift exactly when set"),
        )),
    }
}

/// The SAN pairwise position grid `[1, 2, H, W]`: channel 0 is `linspace(−1, 1, W)[w]`, channel 1
/// `linspace(−1, 1, H)[h]`, where `linspace(−1, 1, 1) = [−1]`. Computed in f64, stored in f32.
pub fn position_grid(h: usize, w: usize) -> Tensor {
    let lin = |i: usize, len: usize| {
        if len <= 1 {
            -1.0
        } else {
            -1.0 + 2.0 * i as f64 / (len - 1) as f64
        }
    };
    let plane = h * w;
    Tensor::from_fn(&[1, 2, h, w], |i| {
        let (ch, r) = (i / plane, i % plane);
        let v = if ch == 0 {
            lin(r % w, w)
        } else {
            lin(r / w, h)
        };
        v as f32
    })
}
