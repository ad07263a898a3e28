//! Convolution and BatchNorm on the CPU, as plain loops over the formulas of MODULES.md §1.

use super::activate;
use crate::error::{shape_err, Result};
use crate::ops::conv::{BatchNorm, Conv2d, ConvDims, Epilogue};
use crate::tensor::Tensor;

/// `y[n,o,h,w] = b[o] + Σ_i Σ_a Σ_b W[o,i,a,b] · x[n, g·Cin/G + i, h·sh − ph + a·dh, w·sw − pw + b·dw]`
/// (zero outside the image), then the epilogue. The sum is accumulated in f64 so the oracle
/// carries less rounding than the kernels it checks. Each output's terms are added in the
/// formula's order (i, then a, then b); the loops only run a tap along a whole output row at a
/// time, which the compiler vectorizes (this is also the CPU fallback's conv).
pub fn conv2d(x: &Tensor, w: &Tensor, ep: &Epilogue<Tensor>, spec: &Conv2d) -> Result<Tensor> {
    let d = spec.check(x, w, ep)?;
    let (n, cin, h, wd, cout, cin_g, cout_g) = (d.n, d.cin, d.h, d.w, d.cout, d.cin_g, d.cout_g);
    let (kh, kw, ho, wo) = (d.kh, d.kw, d.ho, d.wo);
    let (xd, wdat) = (x.data(), w.data());
    let mut y = Tensor::zeros(&d.out_shape());
    let mut acc = vec![0.0f64; ho * wo];
    let mut flat = 0;
    for b in 0..n {
        for o in 0..cout {
            let group = o / cout_g;
            acc.fill(0.0);
            for i in 0..cin_g {
                let c = group * cin_g + i;
                let plane = &xd[(b * cin + c) * h * wd..][..h * wd];
                for a in 0..kh {
                    for bb in 0..kw {
                        let weight = wdat[((o * cin_g + i) * kh + a) * kw + bb] as f64;
                        add_tap(&mut acc, plane, weight, (a, bb), &d, spec);
                    }
                }
            }
            for (k, v) in acc.iter().enumerate() {
                y.data_mut()[flat + k] = epilogue(*v as f32, o, flat + k, ep, spec);
            }
            flat += ho * wo;
        }
    }
    Ok(y)
}

/// `acc[oh, ow] += weight · x[ih, iw]` for kernel tap (a, b) at every output whose input
/// (ih, iw) lies inside the `h × w` plane.
fn add_tap(
    acc: &mut [f64],
    plane: &[f32],
    weight: f64,
    (a, b): (usize, usize),
    d: &ConvDims,
    spec: &Conv2d,
) {
    let (sw, col) = (
        spec.stride.1,
        (b * spec.dilation.1) as isize - spec.padding.1 as isize,
    );
    // Outputs ow with 0 ≤ ow·sw + col < w.
    let first = if col < 0 {
        ((-col) as usize).div_ceil(sw)
    } else {
        0
    };
    let end = if (d.w as isize) > col {
        ((d.w as isize - col) as usize).div_ceil(sw)
    } else {
        0
    };
    let end = end.min(d.wo);
    if first >= end {
        return;
    }
    let start = ((first * sw) as isize + col) as usize;
    for oh in 0..d.ho {
        let ih = (oh * spec.stride.0 + a * spec.dilation.0) as isize - spec.padding.0 as isize;
        if ih < 0 || ih >= d.h as isize {
            continue;
        }
        let inputs = &plane[ih as usize * d.w + start..(ih as usize + 1) * d.w];
        let outputs = &mut acc[oh * d.wo + first..oh * d.wo + end];
        // Stride 1 on its own: a plain loop over two slices, which vectorizes.
        if sw == 1 {
            for (o, &v) in outputs.iter_mut().zip(inputs) {
                *o += v as f64 * weight;
            }
        } else {
            for (o, &v) in outputs.iter_mut().zip(inputs.iter().step_by(sw)) {
                *o += v as f64 * weight;
            }
        }
    }
}

/// `v = conv + bias[o]; v = v·scale[o] + shift[o]; v = act(v); v = post_act(v + residual)`.
fn epilogue(conv: f32, o: usize, flat: usize, ep: &Epilogue<Tensor>, spec: &Conv2d) -> f32 {
    let mut v = conv;
    if let Some(bias) = ep.bias {
        v += bias.data()[o];
    }
    if let Some((scale, shift)) = ep.affine {
        v = v * scale.data()[o] + shift.data()[o];
    }
    v = activate(spec.act, v);
    if let Some(res) = ep.residual {
        v = activate(spec.post_act, v + res.data()[flat]);
    }
    v
}

/// Inference BatchNorm straight from its definition on `[N, C, ...]`:
/// `y = (x − running_mean) / sqrt(running_var + eps) · weight + bias` per channel, in f32 the
/// way PyTorch evaluates it.
pub fn batchnorm(x: &Tensor, bn: &BatchNorm) -> Result<Tensor> {
    let c = bn.channels();
    if x.shape().len() < 2 || x.shape()[1] != c {
        return Err(shape_err(
            "batchnorm",
            format!(
                "expects [N, {c}, ...] for {c} channels, got {:?}",
                x.shape()
            ),
        ));
    }
    let inner: usize = x.shape()[2..].iter().product();
    let eps = bn.eps() as f32;
    let (g, b) = (bn.weight().data(), bn.bias().data());
    let (m, v) = (bn.running_mean().data(), bn.running_var().data());
    Ok(Tensor::from_fn(x.shape(), |i| {
        let ch = (i / inner) % c;
        (x.data()[i] - m[ch]) / (v[ch] + eps).sqrt() * g[ch] + b[ch]
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The formula one output at a time, its terms in the same order as `conv2d`'s.
    fn per_output(x: &Tensor, w: &Tensor, spec: &Conv2d) -> Vec<f32> {
        let d = spec.check(x, w, &Epilogue::default()).unwrap();
        let mut y = Vec::new();
        for (b, o) in (0..d.n).flat_map(|b| (0..d.cout).map(move |o| (b, o))) {
            for (oh, ow) in (0..d.ho).flat_map(|oh| (0..d.wo).map(move |ow| (oh, ow))) {
                let mut acc = 0.0f64;
                for i in 0..d.cin_g {
                    let c = o / d.cout_g * d.cin_g + i;
                    for (a, bb) in (0..d.kh).flat_map(|a| (0..d.kw).map(move |bb| (a, bb))) {
                        let ih = (oh * spec.stride.0 + a * spec.dilation.0) as isize
                            - spec.padding.0 as isize;
                        let iw = (ow * spec.stride.1 + bb * spec.dilation.1) as isize
                            - spec.padding.1 as isize;
                        if ih < 0 || iw < 0 || ih >= d.h as isize || iw >= d.w as isize {
                            continue;
                        }
                        let xv =
                            x.data()[((b * d.cin + c) * d.h + ih as usize) * d.w + iw as usize];
                        acc +=
                            xv as f64 * w.data()[((o * d.cin_g + i) * d.kh + a) * d.kw + bb] as f64;
                    }
                }
                y.push(acc as f32);
            }
        }
        y
    }

    /// The row-wise loops add each output's terms in the formula's order, so they give the
    /// formula's result bit for bit, padding, strides, dilation and groups included.
    #[test]
    fn row_wise_taps_equal_the_formula_exactly() {
        let geometries = [
            ([2, 6, 9, 11], [4, 6, 3, 3], Conv2d::new(1, 1)),
            (
                [1, 6, 9, 11],
                [6, 3, 3, 3],
                Conv2d::new(2, 1).with_groups(2),
            ),
            (
                [1, 4, 13, 10],
                [4, 1, 3, 3],
                Conv2d::new(2, 1).with_groups(4),
            ),
            ([1, 3, 12, 12], [5, 3, 7, 7], Conv2d::new(2, 3)),
            (
                [1, 2, 10, 9],
                [3, 2, 3, 3],
                Conv2d::new(1, 2).with_dilation(2),
            ),
            ([1, 2, 5, 4], [2, 2, 5, 5], Conv2d::new(3, 4)),
            ([2, 5, 7, 5], [7, 5, 1, 1], Conv2d::new(1, 0)),
            ([1, 3, 8, 3], [2, 3, 1, 3], Conv2d::new(1, 0)),
        ];
        for (k, (xs, ws, spec)) in geometries.into_iter().enumerate() {
            let x = Tensor::from_fn(&xs, |i| ((i * 7919 + k) % 211) as f32 / 37.0 - 2.5);
            let w = Tensor::from_fn(&ws, |i| ((i * 104_729 + 3 * k) % 97) as f32 / 53.0 - 0.9);
            let y = conv2d(&x, &w, &Epilogue::default(), &spec).unwrap();
            assert_eq!(
                y.data(),
                per_output(&x, &w, &spec).as_slice(),
                "geometry {k}: {spec:?}"
            );
        }
    }
}
