//! Triplet Attention on the CPU: the Z-pool and gate of one branch from the index formulas of
//! MODULES.md §2.3, the packed three-op form the GPU runs built from them, and the whole module
//! computed the way the PyTorch code does it (permute, Z-pool over dim 1, gate, multiply, permute
//! back, `((Y_hw + Y_cw) + Y_hc) · 0.33333334`), so the module test checks the index form
//! against the permuted original. Sums accumulate in f64.

use super::activate;
use crate::error::{shape_err, Result};
use crate::ops::triplet::{
    branch_scale, Gate, TripletCombine, TripletGateSpec, TripletGates, TripletPool, ZAxis, ZPool,
};
use crate::ops::Activation;
use crate::tensor::{nchw, Tensor};

fn idx(shape: [usize; 4], i: [usize; 4]) -> usize {
    ((i[0] * shape[1] + i[1]) * shape[2] + i[2]) * shape[3] + i[3]
}

/// Max and mean of `values` (non-empty).
fn max_mean(values: impl Iterator<Item = f32>) -> (f32, f32) {
    let (mut best, mut sum, mut count) = (f32::NEG_INFINITY, 0.0f64, 0usize);
    for v in values {
        best = best.max(v);
        sum += v as f64;
        count += 1;
    }
    (best, (sum / count as f64) as f32)
}

/// `P[n,0,a,b] = max_r x[...]`, `P[n,1,a,b] = mean_r x[...]` with (a, b, r) = (h, w, c) for C,
/// (c, w, h) for H and (h, c, w) for W.
pub fn zpool(x: &Tensor, spec: &ZPool) -> Result<Tensor> {
    let out = spec.out_shape(x.shape())?;
    let s = nchw("zpool", x.shape())?;
    let at = |n, c, h, w| x.data()[idx(s, [n, c, h, w])];
    let mut y = Tensor::zeros(&out);
    let [_, c, h, w] = s;
    for n in 0..s[0] {
        for a in 0..out[2] {
            for b in 0..out[3] {
                let (m, mean) = match spec.axis {
                    ZAxis::C => max_mean((0..c).map(|r| at(n, r, a, b))),
                    ZAxis::H => max_mean((0..h).map(|r| at(n, a, r, b))),
                    ZAxis::W => max_mean((0..w).map(|r| at(n, b, a, r))),
                };
                y.data_mut()[idx(out, [n, 0, a, b])] = m;
                y.data_mut()[idx(out, [n, 1, a, b])] = mean;
            }
        }
    }
    Ok(y)
}

/// `G[n,0,a,b] = σ(bias + Σ_i Σ_{u,v<k} K[0,i,u,v] · P[n,i,a+u−p,b+v−p])`, zero padding,
/// p = (k−1)/2: kernel rows run along the first plane axis A.
pub fn gate(pooled: &Tensor, gate: &Gate<Tensor>) -> Result<Tensor> {
    let out = gate.out_shape(pooled.shape())?;
    let k = gate.kernel_size()?;
    let p = (k / 2) as isize;
    let ps = [out[0], 2, out[2], out[3]];
    let kw = gate.weight.data();
    let mut y = Tensor::zeros(&out);
    for n in 0..out[0] {
        for a in 0..out[2] {
            for b in 0..out[3] {
                let mut sum = gate.bias.data()[0] as f64;
                for i in 0..2 {
                    for u in 0..k {
                        for v in 0..k {
                            let (pa, pb) =
                                (a as isize + u as isize - p, b as isize + v as isize - p);
                            if pa < 0 || pb < 0 || pa >= ps[2] as isize || pb >= ps[3] as isize {
                                continue;
                            }
                            let pv = pooled.data()[idx(ps, [n, i, pa as usize, pb as usize])];
                            sum += kw[(i * k + u) * k + v] as f64 * pv as f64;
                        }
                    }
                }
                y.data_mut()[idx(out, [n, 0, a, b])] = activate(Activation::Sigmoid, sum as f32);
            }
        }
    }
    Ok(y)
}

/// Per image and plane (in packing order), the branch's Z-pool `[2, rows, cols]`.
pub fn triplet_pool(x: &Tensor, spec: &TripletPool) -> Result<Tensor> {
    let [n, len] = spec.out_shape(x.shape())?;
    let (_, dims) = spec.dims(x.shape())?;
    let mut y = Tensor::zeros(&[n, len]);
    for plane in dims.planes() {
        let pooled = zpool(
            x,
            &ZPool {
                axis: plane.branch.axis(),
            },
        )?;
        let per = 2 * plane.len();
        for i in 0..n {
            let dst = i * len + plane.pooled;
            y.data_mut()[dst..dst + per].copy_from_slice(&pooled.data()[i * per..(i + 1) * per]);
        }
    }
    Ok(y)
}

/// Per image and plane, `gate` on that plane's pools with that plane's weights.
pub fn triplet_gates(
    pooled: &Tensor,
    weight: &Tensor,
    bias: &Tensor,
    spec: &TripletGateSpec,
) -> Result<Tensor> {
    let [n, len] = spec.out_shape(pooled.shape(), weight.shape(), bias.shape())?;
    let k = spec.kernel_size(weight.shape(), bias.shape())?;
    let plen = spec.dims.pooled_len();
    let mut y = Tensor::zeros(&[n, len]);
    for (g, plane) in spec.dims.planes().iter().enumerate() {
        let taps = 2 * k * k;
        let one = Gate {
            weight: Tensor::new(
                vec![1, 2, k, k],
                weight.data()[g * taps..(g + 1) * taps].to_vec(),
            )?,
            bias: Tensor::new(vec![1], vec![bias.data()[g]])?,
        };
        let per = 2 * plane.len();
        let maps = Tensor::from_fn(&[n, 2, plane.rows, plane.cols], |i| {
            pooled.data()[(i / per) * plen + plane.pooled + i % per]
        });
        let gates = gate(&maps, &one)?;
        for i in 0..n {
            let dst = i * len + plane.gate;
            let src = &gates.data()[i * plane.len()..(i + 1) * plane.len()];
            y.data_mut()[dst..dst + plane.len()].copy_from_slice(src);
        }
    }
    Ok(y)
}

/// `out = act(((x·g_hw + x·g_cw) + x·g_hc) · 1/3 [+ residual])`, or
/// `act((x·g_cw + x·g_hc) · 1/2 [+ residual])`, gates read from the packed maps.
pub fn triplet_combine(
    x: &Tensor,
    gates: &Tensor,
    residual: Option<&Tensor>,
    spec: &TripletCombine,
) -> Result<Tensor> {
    let dims = spec.check(x.shape(), gates.shape(), residual.map(|r| r.shape()))?;
    let s = nchw("triplet_combine", x.shape())?;
    let [_, c, h, w] = s;
    let len = dims.gates_len();
    let (hw, cw, hc) = (dims.hw().map(|p| p.gate), dims.cw().gate, dims.hc().gate);
    let scale = branch_scale(spec.has_hw);
    let g = gates.data();
    let mut y = Tensor::zeros(&s);
    for n in 0..s[0] {
        for ci in 0..c {
            for hi in 0..h {
                for wi in 0..w {
                    let i = idx(s, [n, ci, hi, wi]);
                    let v = x.data()[i];
                    let y_cw = v * g[n * len + cw + ci * w + wi];
                    let y_hc = v * g[n * len + hc + hi * c + ci];
                    let sum = match hw {
                        Some(o) => (v * g[n * len + o + hi * w + wi] + y_cw) + y_hc,
                        None => y_cw + y_hc,
                    };
                    let r = residual.map_or(0.0, |r| r.data()[i]);
                    y.data_mut()[i] = activate(spec.act, sum * scale + r);
                }
            }
        }
    }
    Ok(y)
}

/// `t` with its axes reordered: `out.shape[d] = t.shape[perm[d]]` (torch `permute`).
fn permute(t: &Tensor, perm: [usize; 4]) -> Result<Tensor> {
    let s = nchw("permute", t.shape())?;
    let out = perm.map(|d| s[d]);
    let mut y = Tensor::zeros(&out);
    for (o, v) in y.data_mut().iter_mut().enumerate() {
        let mut rest = o;
        let mut src = [0; 4];
        for d in (0..4).rev() {
            src[perm[d]] = rest % out[d];
            rest /= out[d];
        }
        *v = t.data()[idx(s, src)];
    }
    Ok(y)
}

/// The PyTorch gate on `t[N,A,B,D]`: ZPool over dim 1, conv + BN (folded) + sigmoid on the
/// (B, D) plane, then `t ⊙ G` broadcast over A.
fn gate_branch(t: &Tensor, g: &Gate<Tensor>) -> Result<Tensor> {
    let s = nchw("triplet_attention", t.shape())?;
    let pooled = zpool(t, &ZPool { axis: ZAxis::C })?;
    let gates = gate(&pooled, g)?;
    Ok(Tensor::from_fn(&s, |i| {
        let plane = s[2] * s[3];
        t.data()[i] * gates.data()[(i / (s[1] * plane)) * plane + i % plane]
    }))
}

/// The whole module as the reference code computes it, then `act(out + residual)`.
pub fn triplet_attention(
    x: &Tensor,
    gates: &TripletGates<Tensor>,
    residual: Option<&Tensor>,
    act: Activation,
) -> Result<Tensor> {
    gates.kernel_size()?;
    nchw("triplet_attention", x.shape())?;
    if let Some(r) = residual.filter(|r| r.shape() != x.shape()) {
        return Err(shape_err(
            "triplet_attention",
            format!("residual {:?} differs from x {:?}", r.shape(), x.shape()),
        ));
    }
    // (0,2,1,3) and (0,3,2,1) are their own inverses.
    let y_cw = permute(
        &gate_branch(&permute(x, [0, 2, 1, 3])?, &gates.cw)?,
        [0, 2, 1, 3],
    )?;
    let y_hc = permute(
        &gate_branch(&permute(x, [0, 3, 2, 1])?, &gates.hc)?,
        [0, 3, 2, 1],
    )?;
    let y_hw = gates.hw.as_ref().map(|g| gate_branch(x, g)).transpose()?;
    let scale = branch_scale(y_hw.is_some());
    Ok(Tensor::from_fn(x.shape(), |i| {
        let sum = match &y_hw {
            Some(hw) => (hw.data()[i] + y_cw.data()[i]) + y_hc.data()[i],
            None => y_cw.data()[i] + y_hc.data()[i],
        };
        let r = residual.map_or(0.0, |r| r.data()[i]);
        activate(act, sum * scale + r)
    }))
}
