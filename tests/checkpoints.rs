//! Real checkpoints as PyTorch wrote them (tests/fixtures/make_checkpoints.py): the legacy and
//! zip torch.save formats; SAN's, Triplet Attention's and PyTorch's tutorial's training
//! containers with optimizer and scheduler state; EMA copies chosen by `--key`; float16,
//! bfloat16, float64 and big-endian weights; whole pickled models. Each case of
//! tests/fixtures/checkpoints/cases.json goes through `gaze run`, on the GPU and on the CPU
//! reference, and must give PyTorch's output within the parity rule, or be refused with the
//! message the case names.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/checkpoints")
}

fn gaze(args: &[String]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_gaze"))
        .args(args)
        .env("XDG_RUNTIME_DIR", std::env::temp_dir())
        .output()
        .unwrap()
}

fn path(file: &Value) -> String {
    dir()
        .join(file.as_str().expect("a file name"))
        .to_string_lossy()
        .into_owned()
}

fn cases() -> Vec<Value> {
    let text = std::fs::read_to_string(dir().join("cases.json")).expect("cases.json");
    let cases: Vec<Value> = serde_json::from_str(&text).expect("cases.json is JSON");
    assert!(cases.len() >= 19, "cases.json lists {} cases", cases.len());
    cases
}

/// `gaze run` arguments for `case` on `device`, writing to `output`.
fn run_args(case: &Value, device: &str, output: &str) -> Vec<String> {
    let mut args: Vec<String> = vec![
        "run".into(),
        "--arch".into(),
        case["arch"].as_str().unwrap().into(),
        "--weights".into(),
        path(&case["file"]),
        "--input".into(),
        path(&case["input"]),
        "--output".into(),
        output.into(),
        "--device".into(),
        device.into(),
    ];
    for opt in case["opts"].as_array().unwrap() {
        args.extend(["--opt".into(), opt.as_str().unwrap().into()]);
    }
    if let Some(key) = case["key"].as_str() {
        args.extend(["--key".into(), key.into()]);
    }
    args
}

fn check_output(case: &Value, device: &str) {
    let name = case["name"].as_str().unwrap();
    let output = std::env::temp_dir()
        .join(format!(
            "gaze-ckpt-{}-{name}-{device}.npy",
            std::process::id()
        ))
        .to_string_lossy()
        .into_owned();
    let out = gaze(&run_args(case, device, &output));
    assert!(
        out.status.success(),
        "{name} on {device}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let got = gaze::npy::read(&output).unwrap();
    let _ = std::fs::remove_file(&output);
    let want = gaze::npy::read(&path(&case["expected"])).unwrap();
    let tol = common::parity_tolerance(case["torch_fp32_rel_l2"].as_f64().unwrap());
    common::assert_close(&got, &want, tol, &format!("{name} on {device}"));
}

fn check_refusal(case: &Value) {
    let name = case["name"].as_str().unwrap();
    let mut args = vec!["inspect".to_string(), path(&case["file"])];
    if let Some(key) = case["key"].as_str() {
        args.extend(["--key".into(), key.into()]);
    }
    let out = gaze(&args);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{name}: accepted");
    assert!(!err.contains("panicked"), "{name}: {err}");
    for needle in case["refused"].as_array().unwrap() {
        let needle = needle.as_str().unwrap();
        assert!(
            err.contains(needle),
            "{name}: `{needle}` missing from: {err}"
        );
    }
}

#[test]
fn every_checkpoint_loads_and_matches_pytorch_or_is_refused_by_name() {
    for case in cases() {
        if case.get("refused").is_some() {
            check_refusal(&case);
        } else {
            for device in ["gpu", "cpu"] {
                check_output(&case, device);
            }
        }
    }
}

#[test]
fn the_key_chooses_the_entry_and_the_two_entries_differ() {
    // The EMA copy is other weights: a loader that ignored --key would pass one case only.
    let read = |name: &str| gaze::npy::read(&path(&Value::from(format!("{name}.expected.npy"))));
    let (default, ema) = (
        read("lightning_ema_default").unwrap(),
        read("lightning_ema_key").unwrap(),
    );
    assert!(common::rel_l2(default.data(), ema.data()) > 0.01);
}

#[test]
fn inspect_reports_the_format_and_the_entry_used() {
    let expect = [
        (
            "san_train_legacy.pth",
            "torch.save legacy",
            "entry: `state_dict`",
        ),
        (
            "tutorial_zip.pth",
            "torch.save zip",
            "entry: `model_state_dict`",
        ),
        (
            "coord_f16_legacy.pth",
            "torch.save legacy",
            "the file itself",
        ),
        (
            "expected.safetensors",
            "format: safetensors",
            "the file itself",
        ),
    ];
    for (file, format, entry) in expect {
        let out = gaze(&["inspect".into(), path(&Value::from(file))]);
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{file}");
        assert!(
            text.contains(format) && text.contains(entry),
            "{file}: {text}"
        );
    }
    let out = gaze(&[
        "inspect".into(),
        path(&Value::from("lightning_ema.pth")),
        "--key".into(),
        "state_dict_ema".into(),
    ]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("entry: `state_dict_ema`"));
}

#[test]
fn a_missing_key_names_the_entry_used_and_the_others() {
    // coord_attention weights run as triplet_attention: the keys are not there, and the
    // message says where gaze looked and what else the file holds.
    let output = std::env::temp_dir().join("gaze-ckpt-wrong-arch.npy");
    let mut case: Value = cases()
        .into_iter()
        .find(|c| c["name"] == "tutorial_zip")
        .unwrap();
    case["arch"] = Value::from("triplet_attention");
    let out = gaze(&run_args(&case, "cpu", &output.to_string_lossy()));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    for needle in [
        "missing key",
        "entry `model_state_dict`",
        "`optimizer_state_dict`",
        "--key",
    ] {
        assert!(err.contains(needle), "`{needle}` missing from: {err}");
    }
}
