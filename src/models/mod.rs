//! The architectures of the four papers, built from their checkpoints by the official key names.

mod attention;
pub mod builder;
mod mobilenet;
mod resnet;
mod san;
mod triplet;

use std::collections::BTreeMap;

use crate::error::{Error, Result};
use crate::graph::Graph;
use crate::tensor::Tensor;
use crate::weights::StateDict;
use builder::{Builder, Weights};
use resnet::{Fusion, ResNetCfg};
use san::{SaType, SamCfg};

/// `--opt key=value` settings.
pub type Options = BTreeMap<String, String>;

/// Every name `gaze run --arch` accepts, networks first, then standalone modules.
pub const ARCHITECTURES: &[&str] = &[
    "resnet18",
    "resnet34",
    "resnet50",
    "resnet101",
    "resnet18_ta",
    "resnet34_ta",
    "resnet50_ta",
    "resnet101_ta",
    "mobilenet_v2",
    "mobilenet_v2_ta",
    "mobilenet_v2_ca",
    "aff_resnet18",
    "aff_resnet34",
    "aff_resnet50",
    "aff_resnet101",
    "iaff_resnet18",
    "iaff_resnet34",
    "iaff_resnet50",
    "iaff_resnet101",
    "san10_pairwise",
    "san10_patchwise",
    "san15_pairwise",
    "san15_patchwise",
    "san19_pairwise",
    "san19_patchwise",
    "triplet_attention",
    "coord_attention",
    "ms_cam",
    "aff",
    "iaff",
    "san_sam",
];

/// Options each architecture accepts.
fn accepted_options(arch: &str) -> &'static [&'static str] {
    if arch.starts_with("aff_resnet") || arch.starts_with("iaff_resnet") {
        &["small_input"]
    } else if arch.starts_with("resnet") {
        &["network_type"]
    } else if arch == "san_sam" {
        &["sa_type", "kernel_size", "share_planes", "stride"]
    } else {
        &[]
    }
}

/// Whether `arch` is a single module rather than a network: it gives a tensor, not class scores.
pub fn is_module(arch: &str) -> bool {
    matches!(
        arch,
        "triplet_attention" | "coord_attention" | "ms_cam" | "aff" | "iaff" | "san_sam"
    )
}

/// How many input tensors the architecture takes (AFF and iAFF: `x`, then `residual`).
pub fn input_count(arch: &str) -> usize {
    if matches!(arch, "aff" | "iaff") {
        2
    } else {
        1
    }
}

pub fn parse_options(pairs: &[String]) -> Result<Options> {
    pairs
        .iter()
        .map(|p| {
            p.split_once('=')
                .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
                .ok_or_else(|| Error::Input(format!("--opt `{p}` is not of the form key=value")))
        })
        .collect()
}

fn opt_usize(opts: &Options, key: &str, default: Option<usize>) -> Result<usize> {
    match opts.get(key) {
        Some(v) => v
            .parse()
            .map_err(|_| Error::Input(format!("--opt {key}={v}: expected a whole number"))),
        None => {
            default.ok_or_else(|| Error::Input(format!("this architecture needs --opt {key}=...")))
        }
    }
}

fn opt_bool(opts: &Options, key: &str) -> Result<bool> {
    match opts.get(key).map(String::as_str) {
        None | Some("false") | Some("False") | Some("0") => Ok(false),
        Some("true") | Some("True") | Some("1") => Ok(true),
        Some(v) => Err(Error::Input(format!(
            "--opt {key}={v}: expected true or false"
        ))),
    }
}

/// Triplet Attention's `network_type`: false for "ImageNet" (the default), true for the CIFAR
/// form.
fn network_type(opts: &Options) -> Result<bool> {
    match opts.get("network_type").map(|v| v.to_ascii_lowercase()) {
        None => Ok(false),
        Some(v) if v == "imagenet" => Ok(false),
        Some(v) if v == "cifar" || v == "cifar10" || v == "cifar100" => Ok(true),
        Some(v) => Err(Error::Input(format!(
            "--opt network_type={v}: expected imagenet or cifar (CIFAR10 and CIFAR100 name the \
             same form)"
        ))),
    }
}

fn sa_type(v: &str) -> Result<SaType> {
    match v {
        "pairwise" | "0" => Ok(SaType::Pairwise),
        "patchwise" | "1" => Ok(SaType::Patchwise),
        _ => Err(Error::Input(format!(
            "sa_type `{v}` is not pairwise or patchwise"
        ))),
    }
}

/// Builds the graph of `arch` from the checkpoint `sd` for inputs of the given shapes.
pub fn build(
    arch: &str,
    sd: &StateDict,
    inputs: &[Vec<usize>],
    opts: &Options,
) -> Result<Graph<Tensor>> {
    build_with(arch, Weights::Checkpoint(sd), inputs, opts)
}

/// Builds `arch` with deterministic stand-in weights of the official configuration
/// (1000 classes), for benchmarking without a checkpoint.
pub fn build_synthetic(
    arch: &str,
    seed: u64,
    inputs: &[Vec<usize>],
    opts: &Options,
) -> Result<Graph<Tensor>> {
    build_with(arch, Weights::Synthetic { seed }, inputs, opts)
}

fn build_with(
    arch: &str,
    sd: Weights,
    inputs: &[Vec<usize>],
    opts: &Options,
) -> Result<Graph<Tensor>> {
    if !ARCHITECTURES.contains(&arch) {
        return Err(Error::Input(format!(
            "unknown architecture `{arch}`; known: {}",
            ARCHITECTURES.join(", ")
        )));
    }
    if let Some(k) = opts
        .keys()
        .find(|k| !accepted_options(arch).contains(&k.as_str()))
    {
        let accepted = accepted_options(arch);
        return Err(Error::Input(format!(
            "`{arch}` has no option `{k}`{}",
            if accepted.is_empty() {
                String::new()
            } else {
                format!(" (it accepts {})", accepted.join(", "))
            }
        )));
    }
    if inputs.len() != input_count(arch) {
        return Err(Error::Input(format!(
            "`{arch}` takes {} input(s), got {}",
            input_count(arch),
            inputs.len()
        )));
    }
    for shape in inputs {
        if shape.len() != 4 || shape.contains(&0) {
            return Err(Error::Input(format!(
                "inputs must be non-empty NCHW tensors, got shape {shape:?}"
            )));
        }
    }
    let input = &inputs[0];
    let resnet = |depth: &str, fusion: Fusion| -> Result<Graph<Tensor>> {
        let depth = depth
            .parse()
            .map_err(|_| Error::Invalid(format!("bad depth in `{arch}`")))?;
        let small_input = opt_bool(opts, "small_input")?;
        let cifar = network_type(opts)?;
        resnet::build(
            sd,
            input,
            ResNetCfg {
                depth,
                fusion,
                small_input,
                cifar,
            },
        )
    };
    match arch {
        "mobilenet_v2" => mobilenet::build(sd, input, mobilenet::Variant::Plain),
        "mobilenet_v2_ta" => mobilenet::build(sd, input, mobilenet::Variant::Triplet),
        "mobilenet_v2_ca" => mobilenet::build(sd, input, mobilenet::Variant::Coord),
        "san_sam" => {
            let kernel = opt_usize(opts, "kernel_size", Some(3))?;
            let cfg = SamCfg {
                sa_type: sa_type(opts.get("sa_type").map_or("pairwise", String::as_str))?,
                kernel,
                stride: opt_usize(opts, "stride", Some(1))?,
                share_planes: opts
                    .contains_key("share_planes")
                    .then(|| opt_usize(opts, "share_planes", None))
                    .transpose()?,
            };
            san::build_sam(sd, input, cfg)
        }
        "triplet_attention" | "coord_attention" | "ms_cam" | "aff" | "iaff" => {
            module(arch, sd, inputs)
        }
        _ => {
            if let Some(rest) = arch.strip_prefix("san") {
                let (depth, kind) = rest.split_once('_').unwrap_or((rest, ""));
                let depth = depth
                    .parse()
                    .map_err(|_| Error::Invalid(format!("bad depth in `{arch}`")))?;
                return san::build(sd, input, depth, sa_type(kind)?);
            }
            if let Some(d) = arch.strip_prefix("iaff_resnet") {
                return resnet(d, Fusion::Iaff);
            }
            if let Some(d) = arch.strip_prefix("aff_resnet") {
                return resnet(d, Fusion::Aff);
            }
            let name = arch.strip_prefix("resnet").unwrap_or(arch);
            match name.strip_suffix("_ta") {
                Some(d) => resnet(d, Fusion::Triplet),
                None => resnet(name, Fusion::Add),
            }
        }
    }
}

fn module(arch: &str, sd: Weights, inputs: &[Vec<usize>]) -> Result<Graph<Tensor>> {
    let (mut b, ids) = Builder::new(sd, inputs);
    let y = match arch {
        "triplet_attention" => triplet::triplet_attention(&mut b, ids[0], "", None)?,
        "coord_attention" => attention::coord_attention(&mut b, ids[0], "")?,
        "ms_cam" => attention::ms_cam(&mut b, ids[0], "")?,
        "aff" => attention::aff(&mut b, ids[0], ids[1], "")?,
        _ => attention::iaff(&mut b, ids[0], ids[1], "")?,
    };
    b.finish(y)
}

/// The architecture and options a checkpoint's keys point to, as `gaze inspect` reports them.
pub fn infer(sd: &StateDict) -> Option<(String, Options)> {
    let has = |k: &str| sd.contains(k);
    let mut opts = Options::new();
    let count_blocks = |layer: &str| {
        (0..64)
            .take_while(|i| {
                has(&format!("{layer}.{i}.conv1.weight")) || has(&format!("{layer}.{i}.bn1.weight"))
            })
            .count()
    };
    if has("conv_in.weight") {
        let depth = match (0..5)
            .map(|l| count_blocks(&format!("layer{l}")))
            .collect::<Vec<_>>()
            .as_slice()
        {
            [2, 1, 2, 4, 1] => 10,
            [3, 2, 3, 5, 2] => 15,
            [3, 3, 4, 6, 3] => 19,
            _ => return None,
        };
        let kind = if has("layer0.0.sam.conv_p.weight") {
            "pairwise"
        } else {
            "patchwise"
        };
        return Some((format!("san{depth}_{kind}"), opts));
    }
    if has("features.0.0.weight") {
        let arch = if has("conv.0.weight") {
            "mobilenet_v2_ca"
        } else if has("features.2.conv.4.SpatialGate.spatial.conv.weight")
            || has("features.2.conv.4.ChannelGateH.spatial.conv.weight")
        {
            "mobilenet_v2_ta"
        } else {
            "mobilenet_v2"
        };
        return Some((arch.into(), opts));
    }
    if has("layer1.0.conv1.weight") {
        let counts: Vec<usize> = (1..5).map(|l| count_blocks(&format!("layer{l}"))).collect();
        let bottleneck = has("layer1.0.conv3.weight");
        let depth = match (counts.as_slice(), bottleneck) {
            ([2, 2, 2, 2], false) => 18,
            ([3, 4, 6, 3], false) => 34,
            ([3, 4, 6, 3], true) => 50,
            ([3, 4, 23, 3], true) => 101,
            _ => return None,
        };
        let arch = if has("layer1.0.fuse_mode.local_att2.0.weight") {
            format!("iaff_resnet{depth}")
        } else if has("layer1.0.fuse_mode.local_att.0.weight") {
            format!("aff_resnet{depth}")
        } else if sd.keys().any(|k| k.contains(".triplet_attention.")) {
            format!("resnet{depth}_ta")
        } else {
            format!("resnet{depth}")
        };
        if sd.get_any("conv1.weight").ok()?.shape().get(3) == Some(&3) {
            let (key, value) = if arch.contains("aff_") {
                ("small_input", "true")
            } else {
                ("network_type", "cifar")
            };
            opts.insert(key.into(), value.into());
        }
        return Some((arch, opts));
    }
    if has("ChannelGateH.spatial.conv.weight") {
        return Some(("triplet_attention".into(), opts));
    }
    if has("conv_w.0.weight") {
        let pairwise = has("conv_p.weight");
        opts.insert(
            "sa_type".into(),
            if pairwise { "pairwise" } else { "patchwise" }.into(),
        );
        if !pairwise {
            let rel = sd.get_any("conv1.weight").ok()?.shape()[0];
            let bn = sd.get_any("conv_w.0.weight").ok()?.numel();
            let k2 = bn / rel.max(1) - 1;
            let k = (k2 as f64).sqrt().round() as usize;
            opts.insert("kernel_size".into(), k.to_string());
        }
        return Some(("san_sam".into(), opts));
    }
    if has("local_att2.0.weight") {
        return Some(("iaff".into(), opts));
    }
    if has("local_att.0.weight") {
        return Some(("aff".into(), opts));
    }
    if has("conv1.weight") && has("conv2.weight") && has("conv3.weight") && has("bn1.weight") {
        return Some(("coord_attention".into(), opts));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every architecture builds in its official configuration, and networks end in 1000
    /// logits; the shape rules run on the whole graph.
    #[test]
    fn every_architecture_builds_with_synthetic_weights() {
        for arch in ARCHITECTURES {
            let (inputs, opts): (Vec<Vec<usize>>, Options) = match *arch {
                "aff" | "iaff" => (vec![vec![2, 64, 9, 7]; 2], Options::new()),
                "triplet_attention" | "coord_attention" | "ms_cam" => {
                    (vec![vec![2, 64, 9, 7]], Options::new())
                }
                "san_sam" => (vec![vec![2, 64, 9, 7]], Options::new()),
                _ => (vec![vec![2, 3, 224, 224]], Options::new()),
            };
            let graph =
                build_synthetic(arch, 1, &inputs, &opts).unwrap_or_else(|e| panic!("{arch}: {e}"));
            let refs: Vec<&[usize]> = inputs.iter().map(Vec::as_slice).collect();
            let shapes = graph.shapes(&refs).unwrap();
            let out = &shapes[graph.output().unwrap()];
            match *arch {
                "triplet_attention" | "coord_attention" | "ms_cam" | "aff" | "iaff" => {
                    assert_eq!(out, &inputs[0], "{arch}")
                }
                "san_sam" => assert_eq!(out, &vec![2, 16, 9, 7], "{arch}"),
                _ => assert_eq!(out, &vec![2, 1000], "{arch}"),
            }
        }
    }

    /// The CIFAR form's head pools a literal 4×4 window, so it reaches one pixel only for inputs
    /// of 25 to 56 pixels; outside them the error says so, as PyTorch's fc would fail.
    #[test]
    fn cifar_form_checks_its_option_and_input_size() {
        let cifar: Options = [("network_type".to_string(), "CIFAR10".to_string())].into();
        for (arch, side) in [("resnet18_ta", 25), ("resnet50", 56)] {
            build_synthetic(arch, 1, &[vec![1, 3, side, side]], &cifar).unwrap();
        }
        for side in [24, 57] {
            let err = build_synthetic("resnet18_ta", 1, &[vec![1, 3, side, side]], &cifar)
                .unwrap_err()
                .to_string();
            assert!(err.contains("avg_pool2d(x, 4) head"), "{err}");
        }
        let bad: Options = [("network_type".to_string(), "mnist".to_string())].into();
        let err = build_synthetic("resnet18", 1, &[vec![1, 3, 32, 32]], &bad).unwrap_err();
        assert!(
            err.to_string().contains("expected imagenet or cifar"),
            "{err}"
        );
        let err = build_synthetic("aff_resnet18", 1, &[vec![1, 3, 32, 32]], &cifar).unwrap_err();
        assert!(
            err.to_string().contains("has no option `network_type`"),
            "{err}"
        );
        // The caller's to fix: the web package rejects with bad-input, not internal.
        assert_eq!(err.code(), "bad-input");
        let unknown = build_synthetic("resnet51", 1, &[vec![1, 3, 32, 32]], &Options::new());
        assert_eq!(unknown.map(|_| ()).unwrap_err().code(), "bad-input");
    }
}
