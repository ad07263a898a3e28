//! ResNet-18/34/50/101 with torchvision keys (spec §3), optionally with Triplet Attention
//! (`MODELS/resnet.py`) or AFF / iAFF fusion (`aff_pytorch/aff_net/aff_resnet.py`, §8.3).

use super::attention;
use super::builder::{Builder, ConvCfg, Weights};
use super::triplet;
use crate::error::{Error, Result};
use crate::graph::{Graph, Op, ValueId};
use crate::ops::elementwise::Unary;
use crate::ops::pool::{AvgPool2d, MaxPool2d, MeanOver, SpatialMean};
use crate::ops::tensor_ops::Reshape;
use crate::ops::Activation;
use crate::tensor::Tensor;

/// What each residual block does with its branch and shortcut.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fusion {
    /// `relu(out + shortcut)` (torchvision).
    Add,
    /// `relu(TA(out) + shortcut)`.
    Triplet,
    /// `relu(AFF(out, shortcut))`.
    Aff,
    /// `relu(iAFF(out, shortcut))`.
    Iaff,
}

#[derive(Clone, Copy, Debug)]
pub struct ResNetCfg {
    pub depth: usize,
    pub fusion: Fusion,
    /// AFF port: a 3×3 stride-1 stem conv (`small_input=True`).
    pub small_input: bool,
    /// Triplet Attention's `ResidualNet("CIFAR10", …)`: a 3×3 stride-1 stem, no max pool and an
    /// `avg_pool2d(x, 4)` head.
    pub cifar: bool,
}

fn blocks(depth: usize) -> Result<([usize; 4], bool)> {
    match depth {
        18 => Ok(([2, 2, 2, 2], false)),
        34 => Ok(([3, 4, 6, 3], false)),
        50 => Ok(([3, 4, 6, 3], true)),
        101 => Ok(([3, 4, 23, 3], true)),
        d => Err(Error::Invalid(format!(
            "ResNet depth {d} is not one of 18, 34, 50, 101"
        ))),
    }
}

pub fn build(weights: Weights, input: &[usize], cfg: ResNetCfg) -> Result<Graph<Tensor>> {
    let (counts, bottleneck) = blocks(cfg.depth)?;
    let (mut b, ids) = Builder::new(weights, &[input.to_vec()]);
    // The papers' networks have a 64-channel stem; narrower ones (the demo's) load as well, each
    // stage doubling it as in the official code.
    let base = b.dim("conv1.weight", 0, 64)?;
    let stem = if cfg.small_input || cfg.cifar {
        ConvCfg::new("conv1", base, 3)
    } else {
        ConvCfg::new("conv1", base, 7).stride(2)
    };
    let mut x = b.conv(ids[0], &stem.bn("bn1").act(Activation::Relu))?;
    if !cfg.cifar {
        x = b.push(
            Op::MaxPool(MaxPool2d {
                kernel: 3,
                stride: 2,
                padding: 1,
            }),
            vec![x],
            "maxpool",
        )?;
    }
    let expansion = if bottleneck { 4 } else { 1 };
    for (stage, &count) in counts.iter().enumerate() {
        let planes = base << stage;
        for i in 0..count {
            let stride = if stage > 0 && i == 0 { 2 } else { 1 };
            let prefix = format!("layer{}.{i}", stage + 1);
            x = block(&mut b, x, &prefix, planes, stride, bottleneck, cfg.fusion)?;
        }
    }
    x = head(&mut b, x, input, &cfg, 8 * base * expansion)?;
    let out = b.linear(x, "fc", Activation::None)?;
    b.finish(out)
}

/// The pooling before `fc`, flattened to `features`. Triplet Attention's code pools with a
/// literal `AvgPool2d(7)` (ImageNet form, §3.2) or `avg_pool2d(x, 4)` (CIFAR form), which only
/// reach one pixel for some input sizes; the other ResNets pool globally.
fn head(
    b: &mut Builder,
    x: ValueId,
    input: &[usize],
    cfg: &ResNetCfg,
    features: usize,
) -> Result<ValueId> {
    let literal = if cfg.cifar {
        Some((4, "the CIFAR form's avg_pool2d(x, 4)", "25 to 56"))
    } else if cfg.fusion == Fusion::Triplet {
        Some((7, "the AvgPool2d(7)", "193 to 416"))
    } else {
        None
    };
    let head_err = |map: &[usize], (k, name, sizes): (usize, &str, &str)| {
        Error::Invalid(format!(
            "input {input:?} leaves a {map:?} map before fc, which expects {features} features: \
             {name} head needs a last feature map of {k} to {} pixels per side, i.e. inputs of \
             {sizes} pixels",
            2 * k - 1
        ))
    };
    let x = match literal {
        Some(spec @ (k, ..)) => {
            if b.shape(x)[2..].iter().any(|&d| d < k) {
                return Err(head_err(&b.shape(x)[1..], spec));
            }
            let pool = AvgPool2d {
                kernel: k,
                stride: k,
                padding: 0,
                count_include_pad: true,
            };
            let y = b.push(Op::AvgPool(pool), vec![x], &format!("avgpool ({k}×{k})"))?;
            if b.shape(y)[1..].iter().product::<usize>() != features {
                return Err(head_err(&b.shape(y)[1..], spec));
            }
            y
        }
        None => b.push(
            Op::Mean(SpatialMean { over: MeanOver::HW }),
            vec![x],
            "avgpool",
        )?,
    };
    b.push(Op::Reshape(Reshape::new(&[features])?), vec![x], "flatten")
}

fn block(
    b: &mut Builder,
    x: ValueId,
    prefix: &str,
    planes: usize,
    stride: usize,
    bottleneck: bool,
    fusion: Fusion,
) -> Result<ValueId> {
    let k = |name: &str| format!("{prefix}.{name}");
    let out_channels = if bottleneck { planes * 4 } else { planes };
    let shortcut = if stride != 1 || b.channels(x) != out_channels {
        let (conv, bn) = (k("downsample.0"), k("downsample.1"));
        b.conv(
            x,
            &ConvCfg::new(&conv, out_channels, 1).stride(stride).bn(&bn),
        )?
    } else {
        x
    };
    let (c1, c2, c3, b1, b2, b3) = (
        k("conv1"),
        k("conv2"),
        k("conv3"),
        k("bn1"),
        k("bn2"),
        k("bn3"),
    );
    let relu = Activation::Relu;
    let (t, last) = if bottleneck {
        let t = b.conv(x, &ConvCfg::new(&c1, planes, 1).bn(&b1).act(relu))?;
        let t = b.conv(
            t,
            &ConvCfg::new(&c2, planes, 3)
                .stride(stride)
                .bn(&b2)
                .act(relu),
        )?;
        (t, ConvCfg::new(&c3, out_channels, 1).bn(&b3))
    } else {
        let t = b.conv(
            x,
            &ConvCfg::new(&c1, planes, 3)
                .stride(stride)
                .bn(&b1)
                .act(relu),
        )?;
        (t, ConvCfg::new(&c2, planes, 3).bn(&b2))
    };
    match fusion {
        // The shortcut add and ReLU run in the last conv's epilogue.
        Fusion::Add => b.conv_with(t, &last, Some(shortcut), relu),
        Fusion::Triplet => {
            let out = b.conv(t, &last)?;
            triplet::triplet_attention(b, out, &k("triplet_attention"), Some((shortcut, relu)))
        }
        Fusion::Aff | Fusion::Iaff => {
            let out = b.conv(t, &last)?;
            let fused = if fusion == Fusion::Aff {
                attention::aff(b, out, shortcut, &k("fuse_mode"))?
            } else {
                attention::iaff(b, out, shortcut, &k("fuse_mode"))?
            };
            b.push(Op::Unary(Unary::act(relu)), vec![fused], prefix)
        }
    }
}
