//! Key aliases of the official code bases, mapped to one canonical spelling (spec §2.6, §5.2).
//!
//! Canonical: no `module.` prefix; Triplet Attention in its training naming
//! (`triplet_attention.ChannelGateH.spatial.conv.weight`); Coordinate Attention in the naming of
//! `mbv2_ca.py` (`conv2` = H gate, `conv3` = W gate).

const GATES: [(&str, &str); 3] = [
    ("cw", "ChannelGateH"),
    ("hc", "ChannelGateW"),
    ("hw", "SpatialGate"),
];

fn is_gate(seg: &str) -> bool {
    GATES
        .iter()
        .any(|(short, long)| seg == *short || seg == *long)
}

pub fn canonical_key(key: &str) -> String {
    // DataParallel / DistributedDataParallel and EMA wrappers (`module.`) and torch.compile
    // (`_orig_mod.`) put their prefix before every key of the model they wrap, in any nesting.
    let mut rest = key;
    while let Some(stripped) = rest
        .strip_prefix("module.")
        .or_else(|| rest.strip_prefix("_orig_mod."))
    {
        rest = stripped;
    }
    let mut segs: Vec<String> = rest.split('.').map(str::to_string).collect();
    for i in 0..segs.len() {
        let next = segs.get(i + 1).cloned().unwrap_or_default();
        let after = segs.get(i + 2).cloned().unwrap_or_default();
        if matches!(segs[i].as_str(), "pcam" | "triplet") && is_gate(&next) {
            segs[i] = "triplet_attention".into();
        }
        // Root-file gates: `cw.conv.conv.*` / `cw.conv.bn.*` → `ChannelGateH.spatial.{conv,bn}.*`.
        if let Some((_, long)) = GATES.iter().find(|(short, _)| segs[i] == *short) {
            if next == "conv" && matches!(after.as_str(), "conv" | "bn") {
                segs[i] = long.to_string();
                segs[i + 1] = "spatial".into();
            }
        }
        // coordatt.py's gates hold their tensors directly; SAN's `conv_w` is a Sequential
        // (`conv_w.0.weight`) and keeps its name.
        if matches!(next.as_str(), "weight" | "bias") {
            match segs[i].as_str() {
                "conv_h" => segs[i] = "conv2".into(),
                "conv_w" => segs[i] = "conv3".into(),
                _ => {}
            }
        }
    }
    segs.join(".")
}

#[cfg(test)]
mod tests {
    use super::canonical_key as c;

    #[test]
    fn aliases_map_to_the_training_names() {
        assert_eq!(c("module.conv1.weight"), "conv1.weight");
        assert_eq!(c("_orig_mod.module.conv1.weight"), "conv1.weight");
        assert_eq!(
            c("module.layer1.0.pcam.ChannelGateH.spatial.conv.weight"),
            "layer1.0.triplet_attention.ChannelGateH.spatial.conv.weight"
        );
        assert_eq!(
            c("layer2.1.triplet.hc.conv.bn.running_var"),
            "layer2.1.triplet_attention.ChannelGateW.spatial.bn.running_var"
        );
        assert_eq!(c("hw.conv.conv.weight"), "SpatialGate.spatial.conv.weight");
        assert_eq!(c("cw.conv.bn.bias"), "ChannelGateH.spatial.bn.bias");
        assert_eq!(
            c("features.2.conv.6.conv_h.weight"),
            "features.2.conv.6.conv2.weight"
        );
        assert_eq!(c("conv_w.bias"), "conv3.bias");
        assert_eq!(
            c("layer0.0.sam.conv_w.5.weight"),
            "layer0.0.sam.conv_w.5.weight"
        );
        assert_eq!(c("conv_w.0.running_mean"), "conv_w.0.running_mean");
        // Names that merely contain the words stay as they are.
        assert_eq!(
            c("features.3.conv.4.SpatialGate.spatial.conv.weight"),
            "features.3.conv.4.SpatialGate.spatial.conv.weight"
        );
        assert_eq!(c("layer1.0.conv2.weight"), "layer1.0.conv2.weight");
    }
}
