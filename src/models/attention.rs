//! Attention modules as graph fragments (spec §5 Coordinate Attention, §8 MS-CAM / AFF / iAFF).

use super::builder::{Builder, ConvCfg};
use crate::error::{Error, Result};
use crate::graph::{Op, ValueId};
use crate::ops::elementwise::{Binary, BinaryOp, Blend};
use crate::ops::pool::{MeanOver, SpatialMean};
use crate::ops::tensor_ops::{Concat, Split};
use crate::ops::Activation;

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
/// `conv3` (W gate) under `prefix`; mip is read from `conv1.weight`.
pub fn coord_attention(b: &mut Builder, x: ValueId, prefix: &str) -> Result<ValueId> {
    let [_, c, h, w] = dims4(b, x, prefix)?;
    let conv1 = key(prefix, "conv1");
    let mip = b.dim(&format!("{conv1}.weight"), 0, (c / 32).max(8))?;
    let zh = b.push(Op::Mean(SpatialMean { over: MeanOver::W }), vec![x], prefix)?;
    let zw = b.push(Op::Mean(SpatialMean { over: MeanOver::H }), vec![x], prefix)?;
    let zw = b.push(Op::Reshape(vec![c, w, 1]), vec![zw], prefix)?;
    let cat = b.push(Op::Concat(Concat { axis: 2 }), vec![zh, zw], prefix)?;
    let bn1 = key(prefix, "bn1");
    let f = b.conv(
        cat,
        &ConvCfg::new(&conv1, mip, 1)
            .bias()
            .bn(&bn1)
            .act(Activation::HSwish),
    )?;
    let split = Split {
        axis: 2,
        sizes: vec![h, w],
    };
    let fh = b.push(
        Op::SplitPart {
            spec: split.clone(),
            index: 0,
        },
        vec![f],
        prefix,
    )?;
    let fw = b.push(
        Op::SplitPart {
            spec: split,
            index: 1,
        },
        vec![f],
        prefix,
    )?;
    let (conv2, conv3) = (key(prefix, "conv2"), key(prefix, "conv3"));
    let ah = b.conv(
        fh,
        &ConvCfg::new(&conv2, c, 1).bias().act(Activation::Sigmoid),
    )?;
    let aw = b.conv(
        fw,
        &ConvCfg::new(&conv3, c, 1).bias().act(Activation::Sigmoid),
    )?;
    let aw = b.push(Op::Reshape(vec![c, 1, w]), vec![aw], prefix)?;
    // The official order: (x · a_w) · a_h.
    let y = mul(b, x, aw, prefix)?;
    mul(b, y, ah, prefix)
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
    b.push(Op::Blend(Blend { k: 1.0 }), vec![x, w2, residual], prefix)
}
