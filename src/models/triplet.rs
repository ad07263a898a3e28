//! Triplet Attention (spec §2) from its training-time keys; k is read from the weights and
//! the 2-branch (`no_spatial`) form is chosen when the checkpoint has no `SpatialGate`.

use super::builder::Builder;
use crate::error::{Context, Error, Result};
use crate::graph::{AttentionMap, AttentionTap, Op, ValueId};
use crate::ops::conv::fold_batchnorm;
use crate::ops::triplet::{
    Gate, TripletCombine, TripletDims, TripletGateSpec, TripletGates, TripletPool,
};
use crate::ops::Activation;
use crate::tensor::Tensor;

fn gate(b: &Builder, prefix: &str) -> Result<Gate<Tensor>> {
    let key = format!("{prefix}.spatial.conv.weight");
    // k is not stored as a number; the official code's default is 7 (spec §2.4).
    let k = b.dim(&key, 3, 7)?;
    if k % 2 == 0 {
        return Err(Error::Invalid(format!(
            "{}: key `{key}` needs shape [1, 2, k, k] with k odd, got k = {k}",
            b.source()
        )));
    }
    let weight = b.weight(&key, &[1, 2, k, k])?;
    let bn = b.batchnorm(&format!("{prefix}.spatial.bn"), 1)?;
    let (weight, bias) = fold_batchnorm(&weight, None, &bn)?;
    Ok(Gate { weight, bias })
}

/// TA on `x` with keys under `prefix` (`""` for a standalone module) as pool → gates → combine;
/// with `residual`, the block's `act(TA(x) + shortcut)` runs in the combine pass.
pub fn triplet_attention(
    b: &mut Builder,
    x: ValueId,
    prefix: &str,
    residual: Option<(ValueId, Activation)>,
) -> Result<ValueId> {
    let key = |g: &str| {
        if prefix.is_empty() {
            g.to_string()
        } else {
            format!("{prefix}.{g}")
        }
    };
    let spatial = key("SpatialGate");
    let hw = if b.has(&format!("{spatial}.spatial.conv.weight"), true) {
        Some(gate(b, &spatial)?)
    } else {
        None
    };
    let gates = TripletGates {
        hw,
        cw: gate(b, &key("ChannelGateH"))?,
        hc: gate(b, &key("ChannelGateW"))?,
    };
    gates
        .kernel_size()
        .with_context(|| format!("{}: {prefix}", b.source()))?;
    let (weight, bias) = gates.pack()?;
    let has_hw = gates.hw.is_some();
    let pooled = b.push(Op::TripletPool(TripletPool { has_hw }), vec![x], prefix)?;
    let (_, dims) = TripletDims::of("triplet_attention", b.shape(x), has_hw)
        .with_context(|| format!("{}: {prefix}", b.source()))?;
    let spec = TripletGateSpec { dims };
    let maps = b.push_with(
        Op::TripletGates(spec),
        pooled,
        vec![("gates.weight", weight), ("gates.bias", bias)],
        prefix,
    )?;
    tap(b, prefix, maps, &dims);
    let (act, residual_input) = match residual {
        Some((r, act)) => (act, Some(r)),
        None => (Activation::None, None),
    };
    let inputs = [x, maps].into_iter().chain(residual_input).collect();
    let combine = TripletCombine { has_hw, act };
    b.push(
        Op::TripletCombine {
            spec: combine,
            residual: residual_input.is_some(),
        },
        inputs,
        prefix,
    )
}

/// Keeps the gate maps readable: hw `[H,W]`, cw `[C,W]`, hc `[H,C]` (row h, column c).
fn tap(b: &mut Builder, prefix: &str, value: ValueId, dims: &TripletDims) {
    let maps = dims
        .planes()
        .iter()
        .map(|p| {
            AttentionMap::plain(
                p.branch.label(),
                value,
                dims.gates_len(),
                p.gate,
                p.rows,
                p.cols,
            )
        })
        .collect();
    b.tap(AttentionTap {
        block: prefix.to_string(),
        kind: "triplet",
        maps,
    });
}
