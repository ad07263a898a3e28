//! SAN (spec §9): the SAM self-attention module and the SAN10/15/19 networks, with the
//! BatchNorms folded as §9.7 shows is valid.

use super::builder::{Builder, ConvCfg, Weights};
use crate::error::{Error, Result};
use crate::graph::{AttentionMap, AttentionTap, Graph, Op, ValueId};
use crate::ops::conv::Conv2d;
use crate::ops::linear::Softmax;
use crate::ops::pool::{MaxPool2d, MeanOver, SpatialMean};
use crate::ops::san::{position_grid, Aggregation, Epilogue, PatchGather, Subtraction, Window};
use crate::ops::tensor_ops::{Concat, Reshape};
use crate::ops::Activation;
use crate::reference;
use crate::tensor::Tensor;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SaType {
    Pairwise,
    Patchwise,
}

/// One SAM as SAN builds it: kernel size and stride (dilation is always 1).
#[derive(Clone, Copy, Debug)]
pub struct SamCfg {
    pub sa_type: SaType,
    pub kernel: usize,
    pub stride: usize,
    /// Expected `mid / Cw` (8 in SAN); `None` accepts what the weights say.
    pub share_planes: Option<usize>,
}

/// Output channels of the weight `key` (`official` for synthetic weights).
fn dim0(b: &Builder, key: &str, official: usize) -> Result<usize> {
    b.dim(key, 0, official)
}

/// `W'[o] = s[o]·W[o]`, `b'[o] = s[o]·b[o] + t[o]` for the output channels `range` of a BN.
fn scale_rows(
    w: &Tensor,
    b: &Tensor,
    scale: &[f32],
    shift: Option<&[f32]>,
) -> Result<(Tensor, Tensor)> {
    let rows = b.numel();
    let per_row = w.numel() / rows.max(1);
    let w2 = Tensor::from_fn(w.shape(), |i| w.data()[i] * scale[i / per_row]);
    let b2 = Tensor::from_fn(b.shape(), |o| {
        b.data()[o] * scale[o] + shift.map_or(0.0, |t| t[o])
    });
    Ok((w2, b2))
}

/// The SAM at `prefix` on `x`, followed by `act(scale·y + shift)` per output channel when
/// `epilogue` is given (the block's bn2 and ReLU).
pub fn sam(
    b: &mut Builder,
    x: ValueId,
    prefix: &str,
    cfg: SamCfg,
    epilogue: Option<(&str, Activation)>,
) -> Result<ValueId> {
    let key = |name: &str| {
        if prefix.is_empty() {
            name.to_string()
        } else {
            format!("{prefix}.{name}")
        }
    };
    let c = b.channels(x);
    let rel = dim0(b, &key("conv1.weight"), c / 16)?;
    let mid = dim0(b, &key("conv3.weight"), c / 4)?;
    let k2 = cfg.kernel * cfg.kernel;
    let cw = match cfg.sa_type {
        SaType::Pairwise => dim0(b, &key("conv_w.5.weight"), mid / 8)?,
        SaType::Patchwise => dim0(b, &key("conv_w.5.weight"), k2 * (mid / 8))? / k2.max(1),
    };
    if let Some(share) = cfg.share_planes {
        if cw * share != mid {
            return Err(Error::Invalid(format!(
                "{}: {prefix}: share_planes {share} needs {} weight groups for {mid} planes, the weights have {cw}",
                b.source(),
                mid / share.max(1)
            )));
        }
    }
    let window = Window::new(cfg.kernel, cfg.stride, 1);
    let x3 = b.conv(x, &ConvCfg::new(&key("conv3"), mid, 1).stride(1).bias())?;
    let weights = match cfg.sa_type {
        SaType::Pairwise => pairwise_weights(b, x, &key, rel, cw, c, window)?,
        SaType::Patchwise => {
            if cfg.stride != 1 {
                return Err(Error::Invalid(format!(
                    "{prefix}: patchwise SAM only runs with stride 1, as in the official code"
                )));
            }
            patchwise_weights(b, x, &key, rel, cw, c, cfg.kernel)?
        }
    };
    let [h, w] = [b.shape(x)[2], b.shape(x)[3]];
    let (ho, wo) = window.output_size("SAM", h, w)?;
    tap_neighbourhood(b, prefix, weights, [ho, wo]);
    let mut inputs = vec![x3, weights];
    let spec = match epilogue {
        Some((bn, act)) => {
            let (s, t) = b.batchnorm(bn, mid)?.scale_shift();
            inputs.push(b.constant(s, &format!("{bn}.scale")));
            inputs.push(b.constant(t, &format!("{bn}.shift")));
            Aggregation {
                window,
                epilogue: Epilogue { affine: true, act },
            }
        }
        None => Aggregation {
            window,
            epilogue: Epilogue::default(),
        },
    };
    b.push(Op::Aggregation(spec), inputs, prefix)
}

/// Keeps the weights `[N, Cw, k², Ho·Wo]` readable: per output pixel (column), the weight of
/// each tap of its k×k window (row), averaged over the Cw weight groups.
fn tap_neighbourhood(b: &mut Builder, prefix: &str, weights: ValueId, out: [usize; 2]) {
    let [_, cw, k2, pixels] = [0, 1, 2, 3].map(|i| b.shape(weights)[i]);
    b.tap(AttentionTap {
        block: prefix.to_string(),
        kind: "san",
        maps: vec![AttentionMap {
            groups: cw,
            pixels: Some(out),
            ..AttentionMap::plain("neighbourhood", weights, cw * k2 * pixels, 0, k2, pixels)
        }],
    });
}

/// Pairwise attention weights `[N, Cw, k², Ho·Wo]` (§9.3): relation ‖ position, conv_w, softmax.
/// `conv_w.0` is folded into conv1/conv2 (valid because both only feed the subtraction) and into
/// the precomputed position term.
fn pairwise_weights(
    b: &mut Builder,
    x: ValueId,
    key: &dyn Fn(&str) -> String,
    rel: usize,
    cw: usize,
    c: usize,
    window: Window,
) -> Result<ValueId> {
    let (s0, t0) = b.batchnorm(&key("conv_w.0"), rel + 2)?.scale_shift();
    let (s0, t0) = (s0.data(), t0.data());
    let w1 = b.weight(&key("conv1.weight"), &[rel, c, 1, 1])?;
    let b1 = b.weight(&key("conv1.bias"), &[rel])?;
    let w2 = b.weight(&key("conv2.weight"), &[rel, c, 1, 1])?;
    let b2 = b.weight(&key("conv2.bias"), &[rel])?;
    let (w1, b1) = scale_rows(&w1, &b1, &s0[..rel], Some(&t0[..rel]))?;
    let (w2, b2) = scale_rows(&w2, &b2, &s0[..rel], None)?;
    let x1 = b.conv_raw(x, w1, Some(b1), Conv2d::new(1, 0), &key("conv1"))?;
    let x2 = b.conv_raw(x, w2, Some(b2), Conv2d::new(1, 0), &key("conv2"))?;
    let relation = b.push(
        Op::Subtraction(Subtraction {
            window,
            act: Activation::Relu,
        }),
        vec![x1, x2],
        &key("subtraction"),
    )?;

    let [h, w] = [b.shape(x)[2], b.shape(x)[3]];
    let wp = b.weight(&key("conv_p.weight"), &[2, 2, 1, 1])?;
    let bp = b.weight(&key("conv_p.bias"), &[2])?;
    let ep = crate::ops::conv::Epilogue::with_bias(&bp);
    let pe = reference::conv::conv2d(&position_grid(h, w), &wp, &ep, &Conv2d::new(1, 0))?;
    let delta = reference::san::subtraction(
        &pe,
        &Subtraction {
            window,
            act: Activation::None,
        },
    )?;
    let per_channel = delta.numel() / 2;
    let position = Tensor::from_fn(delta.shape(), |i| {
        let ch = rel + i / per_channel;
        (delta.data()[i] * s0[ch] + t0[ch]).max(0.0)
    });
    let position = b.constant(position, &key("conv_p"));
    let r = b.push(
        Op::Concat(Concat { axis: 1 }),
        vec![relation, position],
        &key("conv_w"),
    )?;

    let relu = Activation::Relu;
    let t = b.conv(
        r,
        &ConvCfg::new(&key("conv_w.2"), rel, 1)
            .bn(&key("conv_w.3"))
            .act(relu),
    )?;
    let a = b.conv(t, &ConvCfg::new(&key("conv_w.5"), cw, 1).bias())?;
    b.push(Op::Softmax(Softmax { axis: 2 }), vec![a], &key("softmax"))
}

/// Patchwise attention weights `[N, Cw, k², H·W]` (§9.3): x1 ‖ unfold(x2), conv_w, no softmax.
/// `conv_w.0` folds into conv1 for the x1 channels; the unfolded channels get their own
/// scale/shift inside the gather.
fn patchwise_weights(
    b: &mut Builder,
    x: ValueId,
    key: &dyn Fn(&str) -> String,
    rel: usize,
    cw: usize,
    c: usize,
    kernel: usize,
) -> Result<ValueId> {
    let k2 = kernel * kernel;
    let [h, w] = [b.shape(x)[2], b.shape(x)[3]];
    let (s0, t0) = b.batchnorm(&key("conv_w.0"), rel * (k2 + 1))?.scale_shift();
    let w1 = b.weight(&key("conv1.weight"), &[rel, c, 1, 1])?;
    let b1 = b.weight(&key("conv1.bias"), &[rel])?;
    let (w1, b1) = scale_rows(&w1, &b1, &s0.data()[..rel], Some(&t0.data()[..rel]))?;
    let relu = Activation::Relu;
    let x1 = b.conv_raw(
        x,
        w1,
        Some(b1),
        Conv2d::new(1, 0).with_act(relu),
        &key("conv1"),
    )?;
    let x1 = b.push(
        Op::Reshape(Reshape::new(&[rel, 1, h * w])?),
        vec![x1],
        &key("conv1"),
    )?;
    let x2 = b.conv(x, &ConvCfg::new(&key("conv2"), rel, 1).bias())?;
    let rest = |t: &Tensor| Tensor::from_fn(&[rel * k2], |i| t.data()[rel + i]);
    let spec = PatchGather {
        kernel,
        epilogue: Epilogue {
            affine: true,
            act: relu,
        },
    };
    let unfolded = b.push_with(
        Op::PatchGather(spec),
        x2,
        vec![("scale", rest(&s0)), ("shift", rest(&t0))],
        &key("unfold"),
    )?;
    let r = b.push(
        Op::Concat(Concat { axis: 1 }),
        vec![x1, unfolded],
        &key("conv_w"),
    )?;
    let t = b.conv(
        r,
        &ConvCfg::new(&key("conv_w.2"), cw, 1)
            .bn(&key("conv_w.3"))
            .act(relu),
    )?;
    let a = b.conv(t, &ConvCfg::new(&key("conv_w.5"), k2 * cw, 1).bias())?;
    b.push(
        Op::Reshape(Reshape::new(&[cw, k2, h * w])?),
        vec![a],
        &key("conv_w.5"),
    )
}

/// The standalone SAM (`san_sam`): input `[N, C, H, W]`, output `[N, mid, Ho, Wo]`.
pub fn build_sam(weights: Weights, input: &[usize], cfg: SamCfg) -> Result<Graph<Tensor>> {
    let (mut b, ids) = Builder::new(weights, &[input.to_vec()]);
    let y = sam(&mut b, ids[0], "", cfg, None)?;
    b.finish(y)
}

/// Blocks per stage of SAN10/15/19 (§9.1); kernels are [3, 7, 7, 7, 7] for all.
pub fn layers(depth: usize) -> Result<[usize; 5]> {
    match depth {
        10 => Ok([2, 1, 2, 4, 1]),
        15 => Ok([3, 2, 3, 5, 2]),
        19 => Ok([3, 3, 4, 6, 3]),
        d => Err(Error::Invalid(format!(
            "SAN depth {d} is not one of 10, 15, 19"
        ))),
    }
}

pub fn build(
    weights: Weights,
    input: &[usize],
    depth: usize,
    sa_type: SaType,
) -> Result<Graph<Tensor>> {
    const KERNELS: [usize; 5] = [3, 7, 7, 7, 7];
    let counts = layers(depth)?;
    // Stage s sees the input pooled 2^(s+1) times, and its k×k window is reflect-padded by k/2,
    // which needs a map larger than the padding.
    let smallest = (0..5)
        .map(|s| (KERNELS[s] / 2 + 1) << (s + 1))
        .max()
        .unwrap_or(0);
    if input.len() == 4 && input[2..].iter().any(|&d| d < smallest) {
        return Err(Error::Invalid(format!(
            "input {input:?}: SAN needs inputs of at least {smallest}×{smallest} pixels (its \
             five 2×2 poolings shrink the map 32-fold and the last stage's 7×7 window needs a \
             4×4 map)"
        )));
    }
    let (mut b, ids) = Builder::new(weights, &[input.to_vec()]);
    // The papers' networks have a 64-channel base; narrower ones (the demo's) load as well, with
    // the official ratios between stages.
    let base = b.dim("conv_in.weight", 0, 64)?;
    let planes = [base, 4 * base, 8 * base, 16 * base, 32 * base];
    let relu = Activation::Relu;
    let mut x = b.conv(
        ids[0],
        &ConvCfg::new("conv_in", base, 1).bn("bn_in").act(relu),
    )?;
    for stage in 0..5 {
        x = b.push(
            Op::MaxPool(MaxPool2d {
                kernel: 2,
                stride: 2,
                padding: 0,
            }),
            vec![x],
            "pool",
        )?;
        x = b.conv(x, &ConvCfg::new(&format!("conv{stage}"), planes[stage], 1))?;
        let cfg = SamCfg {
            sa_type,
            kernel: KERNELS[stage],
            stride: 1,
            share_planes: Some(8),
        };
        for i in 0..counts[stage] {
            x = block(&mut b, x, &format!("layer{stage}.{i}"), cfg)?;
        }
        x = b.bn_act(x, &format!("bn{stage}"), relu)?;
    }
    x = b.push(
        Op::Mean(SpatialMean { over: MeanOver::HW }),
        vec![x],
        "avgpool",
    )?;
    x = b.push(Op::Reshape(Reshape::new(&[planes[4]])?), vec![x], "flatten")?;
    let out = b.linear(x, "fc", Activation::None)?;
    b.finish(out)
}

/// Pre-activation block (§9.4): `x + conv(relu(bn2(SAM(relu(bn1(x))))))`, no final ReLU.
fn block(b: &mut Builder, x: ValueId, prefix: &str, cfg: SamCfg) -> Result<ValueId> {
    let c = b.channels(x);
    let relu = Activation::Relu;
    let t = b.bn_act(x, &format!("{prefix}.bn1"), relu)?;
    let bn2 = format!("{prefix}.bn2");
    let t = sam(b, t, &format!("{prefix}.sam"), cfg, Some((&bn2, relu)))?;
    let conv = format!("{prefix}.conv");
    b.conv_with(
        t,
        &ConvCfg::new(&conv, c, 1).bias(),
        Some(x),
        Activation::None,
    )
}
