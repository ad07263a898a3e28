//! Triplet Attention (spec §2) from its training-time keys; k is read from the weights and
//! the 2-branch (`no_spatial`) form is chosen when the checkpoint has no `SpatialGate`.

use super::builder::Builder;
use crate::error::{Error, Result};
use crate::graph::{Op, ValueId};
use crate::ops::conv::fold_batchnorm;
use crate::ops::triplet::{Gate, TripletGates};
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

/// TA on `x` with keys under `prefix` (`""` for a standalone module); with `residual`,
/// the block's `act(TA(x) + shortcut)` runs in the same pass.
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
    let ks: Vec<usize> = [gates.hw.as_ref(), Some(&gates.cw), Some(&gates.hc)]
        .into_iter()
        .flatten()
        .map(|g| g.weight.shape()[3])
        .collect();
    if ks.windows(2).any(|w| w[0] != w[1]) {
        return Err(Error::Invalid(format!(
            "{}: {prefix}: the gates mix kernel sizes {ks:?}",
            b.source()
        )));
    }
    let (inputs, act) = match residual {
        Some((r, act)) => (vec![x, r], act),
        None => (vec![x], Activation::None),
    };
    let has_residual = residual.is_some();
    b.push(
        Op::Triplet {
            gates,
            act,
            residual: has_residual,
        },
        inputs,
        prefix,
    )
}
