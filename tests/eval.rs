//! `gaze eval` on the bundled demo model against PyTorch's predictions for the same weights
//! (web/models/, written by web/models/train_fashion_mnist.py), over Fashion-MNIST's 10,000
//! test images, on the GPU and on the CPU reference.

use std::process::Command;

const WEIGHTS: &str = "web/models/fashion_mnist_mbv2_ta.safetensors";
const PREDICTIONS: &str = "web/models/fashion_mnist_mbv2_ta.predictions";

/// The bound. Kernels sum in another order than PyTorch (fp32 error ~1e-6), which
/// may flip an image whose two best logits are that close; anything systematic (a wrong
/// weight, normalization or op) changes hundreds.
const MAX_DIFFERING: usize = 5;

/// At `--precision f16` every stored value is rounded to 11 significant bits (relative error
/// up to 4.9e-4), so images whose two best logits lie within about a thousandth of each other
/// may flip: measured 3 of 10,000. 25 is about 8 times that; anything systematic (a lost
/// conversion, a wrong offset) still changes hundreds.
const MAX_DIFFERING_F16: usize = 25;

fn pytorch_accuracy() -> f64 {
    let text = std::fs::read_to_string("web/models/models.json").expect("web/models/models.json");
    let manifest: serde_json::Value = serde_json::from_str(&text).expect("models.json parses");
    manifest[0]["pytorch_test_accuracy"]
        .as_f64()
        .expect("models.json lists pytorch_test_accuracy")
}

/// `k` in the line starting with `prefix`, which ends in `: k/n ...` or `: 0.x (k/n)`.
fn count_after(out: &str, prefix: &str) -> usize {
    let line = out
        .lines()
        .find(|l| l.starts_with(prefix))
        .unwrap_or_else(|| panic!("no `{prefix}` line in:\n{out}"));
    let tail = &line[line.rfind(": ").expect("`: ` in the line") + 2..];
    let tail = tail.rsplit('(').next().unwrap_or(tail);
    let k = tail.split('/').next().unwrap_or("").trim();
    k.parse().unwrap_or_else(|_| panic!("no count in `{line}`"))
}

fn check(device: &str, precision: &str, max_differing: usize) {
    let out = Command::new(env!("CARGO_BIN_EXE_gaze"))
        .args(["--precision", precision])
        .args(["eval", "--arch", "mobilenet_v2_ta", "--weights", WEIGHTS])
        .args([
            "--dataset",
            "fashion-mnist",
            "--device",
            device,
            "--compare",
            PREDICTIONS,
        ])
        .output()
        .expect("gaze runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let last = stdout.lines().last().unwrap_or("");
    assert!(last.starts_with("accuracy: "), "the last line: {last}");
    let differ = count_after(&stdout, "differ from");
    assert!(
        differ <= max_differing,
        "{device} {precision}: {differ} predictions differ from PyTorch's"
    );
    let correct = count_after(&stdout, "accuracy:") as f64;
    let expected = pytorch_accuracy() * 10_000.0;
    assert!(
        (correct - expected).abs() <= max_differing as f64 + 0.5,
        "{device} {precision}: {correct} correct, PyTorch {expected}"
    );
    println!("{device} {precision}: {last}, {differ} differ from PyTorch");
}

#[test]
fn eval_on_gpu_matches_pytorch() {
    check("gpu", "f32", MAX_DIFFERING);
}

#[test]
fn eval_on_cpu_matches_pytorch() {
    check("cpu", "f32", MAX_DIFFERING);
}

#[test]
fn eval_on_gpu_at_f16_stays_near_pytorch() {
    check("gpu", "f16", MAX_DIFFERING_F16);
}
