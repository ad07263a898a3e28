//! Attention modules as graph fragments (spec §5 Coordinate Attention, §8 MS-CAM / AFF / iAFF).

use super::builder::{Builder, ConvCfg};
use crate::error::{Error, Result};
use crate::graph::{AttentionMap, AttentionTap, Op, ValueId};
use crate::ops::coord::{CoordApply, CoordGateSpec, CoordPool};
use crate::ops::elementwise::{Binary, BinaryOp, Blend};
use crate::ops::pool::{MeanOver, SpatialMean};
use crate::ops::Activation;
use crate::tensor::Tensor;

fn key(prefix: &str, name: &str) -> String {
    if prefix.is_empty() {
        name.to_string()
    } else {
        format!("{prefix}.{name}")
    }
}

fn mul(b: &mut Builder, x: ValueId, y: ValueId, ctx: &str) -> Result<ValueId> {
    b.push(
        Op::Binary(Binary {
            op: BinaryOp::Mul,
            act: Activation::None,
        }),
        vec![x, y],
        ctx,
    )
}

/// Coordinate attention on `x [N,C,H,W]` (§5.1) with keys `conv1`, `bn1`, `conv2` (H gate),
/// `conv3` (W gate) under `prefix`; mip is read from `conv1.weight`. Four dispatches: both
/// means into the concatenated `[N,C,H+W,1]`, conv1 + BN + h_swish, both gates, the product.
pub fn coord_attention(b: &mut Builder, x: ValueId, prefix: &str) -> Result<ValueId> {
    let [_, c, h, w] = dims4(b, x, prefix)?;
    let conv1 = key(prefix, "conv1");
    let mip = b.dim(&format!("{conv1}.weight"), 0, (c / 32).max(8))?;
    let cat = b.push(Op::CoordPool(CoordPool), vec![x], prefix)?;
    let bn1 = key(prefix, "bn1");
    let f = b.conv(
        cat,
        &ConvCfg::new(&conv1, mip, 1)
            .bias()
            .bn(&bn1)
            .act(Activation::HSwish),
    )?;
    let (weight, bias) = coord_gate_weights(b, prefix, c, mip)?;
    let spec = CoordGateSpec { h, w };
    let gates = b.push_with(
        Op::CoordGates(spec),
        f,
        vec![("gates.weight", weight), ("gates.bias", bias)],
        prefix,
    )?;
    let per_image = c * (h + w);
    b.tap(AttentionTap {
        block: prefix.to_string(),
        kind: "coord",
        maps: vec![
            AttentionMap::plain("h", gates, per_image, 0, c, h),
            AttentionMap::plain("w", gates, per_image, c * h, c, w),
        ],
    });
    b.push(Op::CoordApply(CoordApply), vec![x, gates], prefix)
}

/// `conv2` (H gate) and `conv3` (W gate) stacked as the gate op takes them: `[2,C,mip]`, `[2,C]`.
fn coord_gate_weights(b: &Builder, prefix: &str, c: usize, mip: usize) -> Result<(Tensor, Tensor)> {
    let (mut weight, mut bias) = (Vec::with_capacity(2 * c * mip), Vec::with_capacity(2 * c));
    for name in ["conv2", "conv3"] {
        let conv = key(prefix, name);
        let (w, b) = b.conv_weights(&ConvCfg::new(&conv, c, 1).bias(), mip)?;
        let b = b.ok_or_else(|| Error::Invalid(format!("{conv}: the bias is missing")))?;
        weight.extend_from_slice(w.data());
        bias.extend_from_slice(b.data());
    }
    Ok((
        Tensor::new(vec![2, c, mip], weight)?,
        Tensor::new(vec![2, c], bias)?,
    ))
}

fn dims4(b: &Builder, x: ValueId, ctx: &str) -> Result<[usize; 4]> {
    match b.shape(x) {
        [n, c, h, w] => Ok([*n, *c, *h, *w]),
        s => Err(Error::Invalid(format!(
            "{ctx}: expects an NCHW input, got {s:?}"
        ))),
    }
}

/// `σ(local_att(x) + global_att(x))` (§8.1), the multi-scale channel attention weights.
fn ms_cam_weights(
    b: &mut Builder,
    x: ValueId,
    prefix: &str,
    local: &str,
    global: &str,
) -> Result<ValueId> {
    let c = b.channels(x);
    let l0 = key(prefix, &format!("{local}.0"));
    let ci = b.dim(&format!("{l0}.weight"), 0, c / 4)?;
    let k = |i: usize, which: &str| key(prefix, &format!("{which}.{i}"));
    let (l1, l3, l4) = (k(1, local), k(3, local), k(4, local));
    let t = b.conv(
        x,
        &ConvCfg::new(&l0, ci, 1)
            .bias()
            .bn(&l1)
            .act(Activation::Relu),
    )?;
    let local_out = b.conv(t, &ConvCfg::new(&l3, c, 1).bias().bn(&l4))?;
    let pooled = b.push(
        Op::Mean(SpatialMean { over: MeanOver::HW }),
        vec![x],
        prefix,
    )?;
    let (g1, g2, g4, g5) = (k(1, global), k(2, global), k(4, global), k(5, global));
    let t = b.conv(
        pooled,
        &ConvCfg::new(&g1, ci, 1)
            .bias()
            .bn(&g2)
            .act(Activation::Relu),
    )?;
    let global_out = b.conv(t, &ConvCfg::new(&g4, c, 1).bias().bn(&g5))?;
    let add = Binary {
        op: BinaryOp::Add,
        act: Activation::Sigmoid,
    };
    b.push(Op::Binary(add), vec![local_out, global_out], prefix)
}

/// `MS_CAM`: `x ⊙ M(x)`.
pub fn ms_cam(b: &mut Builder, x: ValueId, prefix: &str) -> Result<ValueId> {
    let w = ms_cam_weights(b, x, prefix, "local_att", "global_att")?;
    mul(b, x, w, prefix)
}

/// `AFF(x, residual)` = `2·x⊙w + 2·residual⊙(1−w)`, `w = M(x + residual)` (§8.2).
pub fn aff(b: &mut Builder, x: ValueId, residual: ValueId, prefix: &str) -> Result<ValueId> {
    let add = Binary {
        op: BinaryOp::Add,
        act: Activation::None,
    };
    let xa = b.push(Op::Binary(add), vec![x, residual], prefix)?;
    let w = ms_cam_weights(b, xa, prefix, "local_att", "global_att")?;
    tap_fusion(b, prefix, "aff", &[("fusion", w)]);
    b.push(Op::Blend(Blend { k: 2.0 }), vec![x, w, residual], prefix)
}

/// `iAFF(x, residual)` as the PyTorch port computes it: the second pass reuses `global_att`;
/// `global_att2` is loaded and never used (§8.2, pitfall 1).
pub fn iaff(b: &mut Builder, x: ValueId, residual: ValueId, prefix: &str) -> Result<ValueId> {
    let add = Binary {
        op: BinaryOp::Add,
        act: Activation::None,
    };
    let xa = b.push(Op::Binary(add), vec![x, residual], prefix)?;
    let w1 = ms_cam_weights(b, xa, prefix, "local_att", "global_att")?;
    let xi = b.push(Op::Blend(Blend { k: 1.0 }), vec![x, w1, residual], prefix)?;
    let w2 = ms_cam_weights(b, xi, prefix, "local_att2", "global_att")?;
    for i in [1, 2, 4, 5] {
        let g = key(prefix, &format!("global_att2.{i}"));
        b.skip(&format!("{g}.weight"))?;
        b.skip(&format!("{g}.bias"))?;
        if i == 2 || i == 5 {
            b.skip(&format!("{g}.running_mean"))?;
            b.skip(&format!("{g}.running_var"))?;
        }
    }
    tap_fusion(b, prefix, "iaff", &[("fusion1", w1), ("fusion2", w2)]);
    b.push(Op::Blend(Blend { k: 1.0 }), vec![x, w2, residual], prefix)
}

/// Keeps the fusion weights `w [N,C,H,W]` readable as `H × W` maps, the mean over channels:
/// 1 where the block takes its branch, 0 where it takes the shortcut.
fn tap_fusion(
    b: &mut Builder,
    prefix: &str,
    kind: &'static str,
    weights: &[(&'static str, ValueId)],
) {
    let maps = weights
        .iter()
        .map(|&(label, w)| {
            let [c, h, wd] = [b.shape(w)[1], b.shape(w)[2], b.shape(w)[3]];
            AttentionMap {
                groups: c,
                ..AttentionMap::plain(label, w, c * h * wd, 0, h, wd)
            }
        })
        .collect();
    b.tap(AttentionTap {
        block: prefix.to_string(),
        kind,
        maps,
    });
}
