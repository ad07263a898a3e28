//! Deterministic stand-in weights, for benchmarking an architecture without a checkpoint.
//!
//! Each tensor is drawn from SplitMix64 seeded by the FNV-1a hash of its key, with a scale
//! fitting its role, so activations stay of order one through deep networks.

use crate::tensor::Tensor;

fn fnv1a(key: &str) -> u64 {
    key.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ b as u64).wrapping_mul(0x0100_0000_01b3)
    })
}

fn splitmix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A tensor for `key` of `shape`: BatchNorm statistics near the identity, biases small,
/// weights uniform with variance 1/fan_in.
pub fn tensor(key: &str, shape: &[usize], seed: u64) -> Tensor {
    let mut state = fnv1a(key) ^ seed;
    let mut u = || ((splitmix(&mut state) >> 40) as f64 / (1u64 << 24) as f64 * 2.0 - 1.0) as f32;
    let fan_in: usize = shape.iter().skip(1).product();
    let (scale, offset) = match (key.rsplit('.').next(), shape.len()) {
        (Some("running_var"), _) => (0.5, 1.0),
        (Some("running_mean"), _) => (0.1, 0.0),
        (Some("weight"), 1) => (0.2, 1.0),
        (Some("bias"), _) => (0.1, 0.0),
        _ => ((3.0 / fan_in.max(1) as f32).sqrt(), 0.0),
    };
    Tensor::from_fn(shape, |_| offset + scale * u())
}

#[cfg(test)]
mod tests {
    #[test]
    fn deterministic_and_shaped_by_role() {
        let a = super::tensor("layer1.0.bn1.running_var", &[64], 7);
        assert_eq!(a, super::tensor("layer1.0.bn1.running_var", &[64], 7));
        assert!(a.data().iter().all(|&v| (0.5..1.5).contains(&v)));
        let w = super::tensor("layer1.0.conv1.weight", &[64, 64, 3, 3], 7);
        let bound = (3.0f32 / 576.0).sqrt();
        assert!(w.data().iter().all(|v| v.abs() <= bound));
        assert_ne!(
            w,
            super::tensor("layer1.0.conv2.weight", &[64, 64, 3, 3], 7)
        );
    }
}
