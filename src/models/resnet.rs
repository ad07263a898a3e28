//! ResNet-18/34/50/101 with torchvision keys (spec §3), optionally with Triplet Attention
//! (`MODELS/resnet.py`) or AFF / iAFF fusion (`aff_pytorch/aff_net/aff_resnet.py`, §8.3).

use super::attention;
use super::builder::{Builder, ConvCfg, Weights};
use super::triplet;
use crate::error::{Error, Result};
use crate::graph::{Graph, Op, ValueId};
use crate::ops::elementwise::Unary;
use crate::ops::pool::{AvgPool2d, MaxPool2d, MeanOver, SpatialMean};
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
    let stem = if cfg.small_input {
        ConvCfg::new("conv1", 64, 3)
    } else {
        ConvCfg::new("conv1", 64, 7).stride(2)
    };
    let mut x = b.conv(ids[0], &stem.bn("bn1").act(Activation::Relu))?;
    x = b.push(
        Op::MaxPool(MaxPool2d {
            kernel: 3,
            stride: 2,
            padding: 1,
        }),
        vec![x],
        "maxpool",
    )?;
    let expansion = if bottleneck { 4 } else { 1 };
    for (stage, &count) in counts.iter().enumerate() {
        let planes = 64 << stage;
        for i in 0..count {
            let stride = if stage > 0 && i == 0 { 2 } else { 1 };
            let prefix = format!("layer{}.{i}", stage + 1);
            x = block(&mut b, x, &prefix, planes, stride, bottleneck, cfg.fusion)?;
        }
    }
    let head_err = |map: &[usize]| {
        Error::Invalid(format!(
            "input {input:?} leaves a {map:?} map before fc, which expects {} features: the \
             AvgPool2d(7) head needs a last feature map of 7 to 13 pixels per side, i.e. inputs \
             of 193 to 416 pixels",
            512 * expansion
        ))
    };
    // Triplet Attention's head is AvgPool2d(7), reproduced literally (§3.2); the others pool
    // globally.
    if cfg.fusion == Fusion::Triplet && b.shape(x)[2..].iter().any(|&d| d < 7) {
        return Err(head_err(&b.shape(x)[1..]));
    }
    x = if cfg.fusion == Fusion::Triplet {
        let pool = AvgPool2d {
            kernel: 7,
            stride: 7,
            padding: 0,
            count_include_pad: true,
        };
        b.push(Op::AvgPool(pool), vec![x], "avgpool (AvgPool2d(7))")?
    } else {
        b.push(
            Op::Mean(SpatialMean { over: MeanOver::HW }),
            vec![x],
            "avgpool",
        )?
    };
    let features: usize = b.shape(x)[1..].iter().product();
    if features != 512 * expansion {
        return Err(head_err(&b.shape(x)[1..]));
    }
    x = b.push(Op::Reshape(vec![features]), vec![x], "flatten")?;
    let out = b.linear(x, "fc", Activation::None)?;
    b.finish(out)
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
