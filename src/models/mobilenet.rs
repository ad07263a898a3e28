//! MobileNetV2: torchvision's layout (plain and with Triplet Attention, spec §4) and the flat
//! layout of `mbv2_ca.py` with Coordinate Attention (§6). Channel counts are read from the
//! weights, so any width multiplier loads; each shape is still checked against its neighbours.

use super::attention;
use super::builder::{Builder, ConvCfg, Weights};
use super::triplet;
use crate::error::Result;
use crate::graph::{Graph, Op, ValueId};
use crate::ops::pool::{MeanOver, SpatialMean};
use crate::ops::tensor_ops::Reshape;
use crate::ops::Activation;
use crate::tensor::Tensor;

/// Strides of the inverted-residual blocks `features.1` … `features.17`.
const STRIDES: [usize; 17] = [1, 2, 1, 2, 1, 1, 2, 1, 1, 1, 1, 1, 1, 2, 1, 1, 1];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Variant {
    Plain,
    Triplet,
    Coord,
}

/// Output channels of `features.1` … `features.17` in the official width-1.0 networks.
const OFFICIAL_OUT: [usize; 17] = [
    16, 24, 24, 32, 32, 32, 64, 64, 64, 64, 96, 96, 96, 160, 160, 160, 320,
];

/// Output channels of the conv at `key` (dimension 0 of its weight; `official` for synthetic
/// weights).
fn out_channels(b: &Builder, key: &str, official: usize) -> Result<usize> {
    b.dim(&format!("{key}.weight"), 0, official)
}

pub fn build(weights: Weights, input: &[usize], variant: Variant) -> Result<Graph<Tensor>> {
    let (mut b, ids) = Builder::new(weights, &[input.to_vec()]);
    let relu6 = Activation::Relu6;
    let stem = out_channels(&b, "features.0.0", 32)?;
    let mut x = b.conv(
        ids[0],
        &ConvCfg::new("features.0.0", stem, 3)
            .stride(2)
            .bn("features.0.1")
            .act(relu6),
    )?;
    for (i, &stride) in STRIDES.iter().enumerate() {
        let prefix = format!("features.{}.conv", i + 1);
        x = match variant {
            Variant::Coord => flat_block(&mut b, x, &prefix, stride, i)?,
            _ => torchvision_block(&mut b, x, &prefix, stride, i, variant == Variant::Triplet)?,
        };
    }
    let (last_conv, last_bn) = match variant {
        Variant::Coord => ("conv.0", "conv.1"),
        _ => ("features.18.0", "features.18.1"),
    };
    let last = out_channels(&b, last_conv, 1280)?;
    x = b.conv(x, &ConvCfg::new(last_conv, last, 1).bn(last_bn).act(relu6))?;
    x = b.push(
        Op::Mean(SpatialMean { over: MeanOver::HW }),
        vec![x],
        "avgpool",
    )?;
    x = b.push(Op::Reshape(Reshape::new(&[last])?), vec![x], "flatten")?;
    let out = b.linear(x, "classifier.1", Activation::None)?;
    b.finish(out)
}

/// torchvision `InvertedResidual`: `conv.0` ConvBNReLU (1×1 expand, absent when t = 1),
/// depthwise ConvBNReLU, 1×1 projection, BN, then TA (`conv.3`/`conv.4`) in the TA variant.
fn torchvision_block(
    b: &mut Builder,
    x: ValueId,
    prefix: &str,
    stride: usize,
    index: usize,
    triplet: bool,
) -> Result<ValueId> {
    let k = |name: &str| format!("{prefix}.{name}");
    let relu6 = Activation::Relu6;
    let inp = b.channels(x);
    // With t = 1 the first conv is the depthwise one: weight [hidden, 1, 3, 3].
    let expands = b.dim(&k("0.0.weight"), 3, if index == 0 { 3 } else { 1 })? == 1;
    let (mut t, next) = if expands {
        let hidden = out_channels(b, &k("0.0"), inp * 6)?;
        (
            b.conv(
                x,
                &ConvCfg::new(&k("0.0"), hidden, 1).bn(&k("0.1")).act(relu6),
            )?,
            1,
        )
    } else {
        (x, 0)
    };
    let hidden = b.channels(t);
    let (dw, dw_bn) = (k(&format!("{next}.0")), k(&format!("{next}.1")));
    t = b.conv(
        t,
        &ConvCfg::new(&dw, hidden, 3)
            .stride(stride)
            .groups(hidden)
            .bn(&dw_bn)
            .act(relu6),
    )?;
    let (proj, proj_bn, ta) = (
        k(&format!("{}", next + 1)),
        k(&format!("{}", next + 2)),
        k(&format!("{}", next + 3)),
    );
    let oup = out_channels(b, &proj, OFFICIAL_OUT[index])?;
    let residual = (stride == 1 && inp == oup).then_some(x);
    let cfg = ConvCfg::new(&proj, oup, 1).bn(&proj_bn);
    if triplet {
        let out = b.conv(t, &cfg)?;
        triplet::triplet_attention(b, out, &ta, residual.map(|r| (r, Activation::None)))
    } else {
        b.conv_with(t, &cfg, residual, Activation::None)
    }
}

/// `mbv2_ca.py` `InvertedResidual`: flat `conv.N` entries, CA at `conv.6` after the depthwise
/// conv (§6.1); block 1 (t = 1) has no CA.
/// `index` is the block's position (0 for `features.1`), for the official defaults.
fn flat_block(
    b: &mut Builder,
    x: ValueId,
    prefix: &str,
    stride: usize,
    index: usize,
) -> Result<ValueId> {
    let k = |name: &str| format!("{prefix}.{name}");
    let relu6 = Activation::Relu6;
    let inp = b.channels(x);
    let expands = b.dim(&k("0.weight"), 3, if index == 0 { 3 } else { 1 })? == 1;
    let (proj, proj_bn) = if expands {
        let hidden = out_channels(b, &k("0"), inp * 6)?;
        let t = b.conv(x, &ConvCfg::new(&k("0"), hidden, 1).bn(&k("1")).act(relu6))?;
        let t = b.conv(
            t,
            &ConvCfg::new(&k("3"), hidden, 3)
                .stride(stride)
                .groups(hidden)
                .bn(&k("4"))
                .act(relu6),
        )?;
        let t = attention::coord_attention(b, t, &k("6"))?;
        (t, (k("7"), k("8")))
    } else {
        let t = b.conv(
            x,
            &ConvCfg::new(&k("0"), inp, 3)
                .stride(stride)
                .groups(inp)
                .bn(&k("1"))
                .act(relu6),
        )?;
        (t, (k("3"), k("4")))
    };
    let oup = out_channels(b, &proj_bn.0, OFFICIAL_OUT[index])?;
    let residual = (stride == 1 && inp == oup).then_some(x);
    b.conv_with(
        proj,
        &ConvCfg::new(&proj_bn.0, oup, 1).bn(&proj_bn.1),
        residual,
        Activation::None,
    )
}
