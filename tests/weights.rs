//! Checkpoint loading: real torch.save files (tests/fixtures/make_checkpoints.py) and broken ones.

use gaze::weights::StateDict;

const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/checkpoints");

fn load(name: &str) -> gaze::Result<StateDict> {
    StateDict::load(&format!("{DIR}/{name}"))
}

fn error(name: &str) -> String {
    load(name).unwrap_err().to_string()
}

fn assert_same_tensors(got: &StateDict, want: &StateDict) {
    let got_keys: Vec<&str> = got.keys().collect();
    let want_keys: Vec<&str> = want.keys().collect();
    assert_eq!(got_keys, want_keys);
    for k in want.keys() {
        let (g, w) = (got.get_any(k).unwrap(), want.get_any(k).unwrap());
        assert_eq!(g.shape(), w.shape(), "{k}");
        // Both sides hold the same float32 values (f16 and f64 sources round identically).
        assert_eq!(g.data(), w.data(), "{k}");
    }
}

#[test]
fn training_container_with_module_prefix() {
    let want = load("expected.safetensors").unwrap();
    assert_same_tensors(&load("training.pth").unwrap(), &want);
    assert_same_tensors(&load("bare.pth").unwrap(), &want);
}

#[test]
fn shared_and_strided_storages_are_read_as_views() {
    let sd = load("training.pth").unwrap();
    let a = sd.get("shared.a", &[6]).unwrap();
    let expect: Vec<f32> = (2..8).map(|i| i as f32 / 7.0).collect();
    assert_eq!(a.data(), expect.as_slice());
    // base.view(4, 6).t(): element [i, j] is base[j * 6 + i].
    let b = sd.get("shared.b", &[6, 4]).unwrap();
    let (i, j) = (1, 2);
    assert_eq!(b.data()[i * 4 + j], (j * 6 + i) as f32 / 7.0);
}

#[test]
fn pickles_that_name_other_globals_are_refused_and_never_run() {
    let _ = std::fs::remove_file("/tmp/gaze_pwned");
    let msg = error("evil.pth");
    assert!(msg.contains("system") && msg.contains("refuses"), "{msg}");
    assert!(!std::path::Path::new("/tmp/gaze_pwned").exists());
}

#[test]
fn legacy_format_is_read() {
    let legacy = load("legacy.pth").unwrap();
    assert_eq!(legacy.format(), gaze::weights::Format::TorchLegacy);
    assert_same_tensors(&legacy, &load("expected.safetensors").unwrap());
}

#[test]
fn missing_unexpected_and_misshaped_keys_are_named() {
    let sd = load("training.pth").unwrap();
    let msg = sd
        .get("conv1.weight", &[4, 3, 5, 5])
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("conv1.weight")
            && msg.contains("[4, 3, 3, 3]")
            && msg.contains("[4, 3, 5, 5]"),
        "{msg}"
    );
    let msg = sd.get_any("conv9.weight").unwrap_err().to_string();
    assert!(msg.contains("missing key `conv9.weight`"), "{msg}");
    let msg = sd.check_all_used().unwrap_err().to_string();
    assert!(
        msg.contains("unexpected key") && msg.contains("bn1.bias"),
        "{msg}"
    );
}

#[test]
fn broken_files_give_clear_errors() {
    let bytes = std::fs::read(format!("{DIR}/training.pth")).unwrap();
    for cut in [10, bytes.len() / 2, bytes.len() - 30] {
        let msg = StateDict::from_bytes(&bytes[..cut], "cut.pth")
            .unwrap_err()
            .to_string();
        assert!(msg.starts_with("cut.pth:"), "{msg}");
    }
    let msg = StateDict::from_bytes(&[], "empty.pth")
        .unwrap_err()
        .to_string();
    assert!(msg.contains("empty"), "{msg}");

    // A safetensors header that claims 2^63 bytes.
    let mut huge = (1u64 << 63).to_le_bytes().to_vec();
    huge.extend_from_slice(b"{}");
    let msg = StateDict::from_bytes(&huge, "huge.safetensors")
        .unwrap_err()
        .to_string();
    assert!(msg.contains("huge.safetensors"), "{msg}");

    // Tensor data offsets past the end of the file.
    let header = br#"{"w":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}"#;
    let mut past_end = (header.len() as u64).to_le_bytes().to_vec();
    past_end.extend_from_slice(header);
    past_end.extend_from_slice(&[0; 8]);
    let msg = StateDict::from_bytes(&past_end, "short.safetensors")
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("short.safetensors") && msg.contains("safetensors"),
        "{msg}"
    );
}

#[test]
fn checkpoint_errors_carry_the_bad_checkpoint_code_through_context() {
    use gaze::error::Context;
    let err = load("evil.pth").unwrap_err();
    assert_eq!(err.code(), "bad-checkpoint");
    // Wrapped with what was being done, the kind survives and the words keep both parts.
    let wrapped = load("evil.pth").context("loading the demo").unwrap_err();
    assert_eq!(wrapped.code(), "bad-checkpoint");
    assert!(
        wrapped.to_string().starts_with("loading the demo: "),
        "{wrapped}"
    );
    assert!(wrapped.to_string().contains("refuses"), "{wrapped}");
    let io = load("no-such-file.pth").unwrap_err();
    assert_eq!(io.code(), "internal");
}
