//! The SAN primitives as plain loops over the window taps (MODULES.md §9.2).

use super::activate;
use crate::error::Result;
use crate::ops::san::{
    aggregation_shape, check_epilogue, patch_gather_shape, reflect, reflect_pad_shape,
    subtraction_shape, unfold_shape, Aggregation, Epilogue, PadMode, PatchGather, ReflectPad,
    Subtraction, Unfold, Window,
};
use crate::tensor::Tensor;

/// `x[n, c, row, col]` of an NCHW tensor.
fn at(x: &Tensor, n: usize, c: usize, row: usize, col: usize) -> f32 {
    let s = x.shape();
    x.data()[((n * s[1] + c) * s[2] + row) * s[3] + col]
}

/// The padded read of `x[n, c]` at a possibly outside `(row, col)`.
fn padded(x: &Tensor, n: usize, c: usize, row: isize, col: isize, mode: PadMode) -> f32 {
    let (h, w) = (x.shape()[2], x.shape()[3]);
    match mode {
        PadMode::Reflect => at(x, n, c, reflect(row, h), reflect(col, w)),
        PadMode::Zero => {
            if row < 0 || col < 0 || row >= h as isize || col >= w as isize {
                0.0
            } else {
                at(x, n, c, row as usize, col as usize)
            }
        }
    }
}

/// Input row (or column) of tap `a` for output index `o`.
fn tap(win: &Window, o: usize, a: usize) -> isize {
    (o * win.stride + a * win.dilation) as isize - win.padding as isize
}

pub fn subtraction2(x1: &Tensor, x2: &Tensor, spec: &Subtraction) -> Result<Tensor> {
    let shape = subtraction_shape(spec, x1.shape(), x2.shape())?;
    let win = spec.window;
    let (n_all, c_all) = (shape[0], shape[1]);
    let (ho, wo) = win.output_size("subtraction", x1.shape()[2], x1.shape()[3])?;
    let k = win.kernel;
    let mut out = Tensor::zeros(&shape);
    for n in 0..n_all {
        for c in 0..c_all {
            for a in 0..k {
                for b in 0..k {
                    for h in 0..ho {
                        for w in 0..wo {
                            let hc = h * win.stride + win.centre() - win.padding;
                            let wc = w * win.stride + win.centre() - win.padding;
                            let centre = at(x1, n, c, hc, wc);
                            let neighbour =
                                padded(x2, n, c, tap(&win, h, a), tap(&win, w, b), win.pad_mode);
                            let flat = ((n * c_all + c) * k * k + a * k + b) * ho * wo + h * wo + w;
                            out.data_mut()[flat] = activate(spec.act, centre - neighbour);
                        }
                    }
                }
            }
        }
    }
    Ok(out)
}

pub fn subtraction(x: &Tensor, spec: &Subtraction) -> Result<Tensor> {
    subtraction2(x, x, spec)
}

fn epilogue(e: &Epilogue, scale_shift: Option<(&Tensor, &Tensor)>, ch: usize, v: f32) -> f32 {
    let v = match scale_shift {
        Some((s, t)) if e.affine => s.data()[ch] * v + t.data()[ch],
        _ => v,
    };
    activate(e.act, v)
}

pub fn aggregation(
    x: &Tensor,
    wt: &Tensor,
    scale_shift: Option<(&Tensor, &Tensor)>,
    spec: &Aggregation,
) -> Result<Tensor> {
    let shape = aggregation_shape(spec, x.shape(), wt.shape())?;
    let [n_all, c_all, ho, wo] = shape;
    check_epilogue(
        "aggregation",
        &spec.epilogue,
        c_all,
        scale_shift.map(|(s, t)| (s.shape(), t.shape())),
    )?;
    let win = spec.window;
    let (k, cw, inside) = (win.kernel, wt.shape()[1], spec.window.pad_mode);
    let mut out = Tensor::zeros(&shape);
    for n in 0..n_all {
        for c in 0..c_all {
            for h in 0..ho {
                for w in 0..wo {
                    let mut sum = 0.0;
                    for a in 0..k {
                        for b in 0..k {
                            let weight = at(wt, n, c % cw, a * k + b, h * wo + w);
                            let v = padded(x, n, c, tap(&win, h, a), tap(&win, w, b), inside);
                            sum += weight * v;
                        }
                    }
                    let flat = ((n * c_all + c) * ho + h) * wo + w;
                    out.data_mut()[flat] = epilogue(&spec.epilogue, scale_shift, c, sum);
                }
            }
        }
    }
    Ok(out)
}

pub fn reflection_pad(x: &Tensor, spec: &ReflectPad) -> Result<Tensor> {
    let shape = reflect_pad_shape(spec, x.shape())?;
    let [_, c, hp, wp] = shape;
    let (h, w, p) = (x.shape()[2], x.shape()[3], spec.pad as isize);
    Ok(Tensor::from_fn(&shape, |i| {
        let (n, ch) = (i / (c * hp * wp), (i / (hp * wp)) % c);
        let (row, col) = ((i / wp) % hp, i % wp);
        at(
            x,
            n,
            ch,
            reflect(row as isize - p, h),
            reflect(col as isize - p, w),
        )
    }))
}

pub fn unfold(x: &Tensor, spec: &Unfold) -> Result<Tensor> {
    let (shape, lh, lw) = unfold_shape(spec, x.shape())?;
    let (k, s) = (spec.kernel, spec.stride);
    let mut out = Tensor::zeros(&shape);
    for n in 0..shape[0] {
        for c in 0..x.shape()[1] {
            for a in 0..k {
                for b in 0..k {
                    for oh in 0..lh {
                        for ow in 0..lw {
                            let row = (n * shape[1] + c * k * k + a * k + b) * shape[2];
                            out.data_mut()[row + oh * lw + ow] =
                                at(x, n, c, oh * s + a, ow * s + b);
                        }
                    }
                }
            }
        }
    }
    Ok(out)
}

/// Built literally as §9.3 patchwise step 2 states it: reflection pad by k//2, unfold, view,
/// then the epilogue per unfolded channel.
pub fn patch_gather(
    x: &Tensor,
    scale_shift: Option<(&Tensor, &Tensor)>,
    spec: &PatchGather,
) -> Result<Tensor> {
    let shape = patch_gather_shape(spec, x.shape())?;
    check_epilogue(
        "patch_gather",
        &spec.epilogue,
        shape[1],
        scale_shift.map(|(s, t)| (s.shape(), t.shape())),
    )?;
    let k = spec.kernel;
    let padded = reflection_pad(x, &ReflectPad { pad: k / 2 })?;
    let u = unfold(
        &padded,
        &Unfold {
            kernel: k,
            stride: 1,
        },
    )?;
    let plane = shape[3];
    let mut out = u.reshape(&shape)?;
    for (i, v) in out.data_mut().iter_mut().enumerate() {
        let ch = (i / plane) % shape[1];
        *v = epilogue(&spec.epilogue, scale_shift, ch, *v);
    }
    Ok(out)
}
