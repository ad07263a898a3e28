//! The `gaze` command line as users and the acceptance suite drive it: success paths and the
//! clear, non-zero-exit errors for bad checkpoints, inputs and options.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use gaze::Tensor;
use safetensors::tensor::{serialize_to_file, Dtype, TensorView};

struct Dir(PathBuf);

impl Dir {
    fn new(name: &str) -> Self {
        let p = std::env::temp_dir().join(format!("gaze-cli-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&p).unwrap();
        Dir(p)
    }

    fn path(&self, file: &str) -> String {
        self.0.join(file).to_string_lossy().into_owned()
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn write_weights(path: &str, tensors: &[(String, Vec<usize>, Vec<f32>)]) {
    let bytes: Vec<Vec<u8>> = tensors
        .iter()
        .map(|(_, _, v)| bytemuck::cast_slice(v).to_vec())
        .collect();
    let views: Vec<(String, TensorView)> = tensors
        .iter()
        .zip(&bytes)
        .map(|((k, s, _), b)| {
            (
                k.clone(),
                TensorView::new(Dtype::F32, s.clone(), b).unwrap(),
            )
        })
        .collect();
    serialize_to_file(views, None, Path::new(path)).unwrap();
}

/// A Triplet Attention module with k = 3 gates under the training names.
fn ta_weights(skip: Option<&str>) -> Vec<(String, Vec<usize>, Vec<f32>)> {
    let mut out = Vec::new();
    for (g, gate) in ["ChannelGateH", "ChannelGateW", "SpatialGate"]
        .iter()
        .enumerate()
    {
        if Some(*gate) == skip {
            continue;
        }
        let conv: Vec<f32> = (0..18)
            .map(|i| ((i * 7 + g * 3) % 11) as f32 / 11.0 - 0.5)
            .collect();
        out.push((
            format!("{gate}.spatial.conv.weight"),
            vec![1, 2, 3, 3],
            conv,
        ));
        for (name, v) in [
            ("weight", 1.1),
            ("bias", 0.1),
            ("running_mean", 0.05),
            ("running_var", 0.9),
        ] {
            out.push((format!("{gate}.spatial.bn.{name}"), vec![1], vec![v]));
        }
    }
    out
}

fn input(shape: &[usize]) -> Tensor {
    Tensor::from_fn(shape, |i| ((i * 37) % 101) as f32 / 50.0 - 1.0)
}

/// Triplet-attention weights and an input of `shape` written into `d`: their paths.
fn ta_case(d: &Dir, shape: &[usize]) -> (String, String) {
    let (w, x) = (d.path("w.safetensors"), d.path("x.npy"));
    write_weights(&w, &ta_weights(None));
    gaze::npy::write(&x, &input(shape)).unwrap();
    (w, x)
}

fn gaze(args: &[&str]) -> Output {
    gaze_with(args, &[])
}

/// `gaze` with these environment variables set. The tuning cache is a file of the test's own
/// unless `envs` names one, so no test reads what a developer tuned on this machine.
fn gaze_with(args: &[&str], envs: &[(&str, &str)]) -> Output {
    let own_cache = std::env::temp_dir().join(format!("gaze-cli-tune-{}.json", std::process::id()));
    Command::new(env!("CARGO_BIN_EXE_gaze"))
        .args(args)
        .env("XDG_RUNTIME_DIR", std::env::temp_dir())
        .env("GAZE_TUNE_CACHE", own_cache)
        .envs(envs.iter().copied())
        .output()
        .unwrap()
}

/// Runs gaze expecting success, which fails the test with gaze's stderr otherwise.
fn succeeds(args: &[&str]) -> Output {
    let out = gaze(args);
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Runs gaze expecting failure; returns stderr, which must name the problem.
fn fails(args: &[&str], needle: &str) -> String {
    let out = gaze(args);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "expected failure for {args:?}");
    assert!(
        err.contains(needle),
        "stderr of {args:?} lacks `{needle}`:\n{err}"
    );
    assert!(!err.contains("panicked"), "{err}");
    err
}

fn run_args<'a>(w: &'a str, x: &'a str, y: &'a str, device: &'a str) -> Vec<&'a str> {
    vec![
        "run",
        "--arch",
        "triplet_attention",
        "--weights",
        w,
        "--input",
        x,
        "--output",
        y,
        "--device",
        device,
    ]
}

#[test]
fn run_writes_the_same_output_on_gpu_and_cpu() {
    let d = Dir::new("ok");
    let (w, x) = ta_case(&d, &[2, 5, 7, 9]);
    let mut outs = Vec::new();
    for device in ["gpu", "cpu"] {
        let y = d.path(&format!("y-{device}.npy"));
        succeeds(&run_args(&w, &x, &y, device));
        outs.push(gaze::npy::read(&y).unwrap());
    }
    assert_eq!(outs[0].shape(), &[2, 5, 7, 9]);
    let diff: f32 = outs[0]
        .data()
        .iter()
        .zip(outs[1].data())
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f32::max);
    // Both are float32 implementations of the same sums; 1e-5 absolute is far below any
    // indexing mistake on values of order 1.
    assert!(diff < 1e-5, "gpu and cpu differ by {diff}");
}

/// `--precision f16` stores tensors as f16: on the GPU and on the CPU reference (which rounds
/// the same values) the outputs agree to within one f16 step of the largest value (2^-11 of
/// order-1 values: a sum's order can tip a rounding), and both differ from float32 by the
/// rounding, visibly but by less than 3e-3 relative. An overflow of f16 is reported as one; a
/// precision that does not exist is refused.
#[test]
fn run_at_f16_rounds_on_gpu_and_cpu_alike() {
    let d = Dir::new("f16");
    let (w, x) = ta_case(&d, &[2, 5, 7, 9]);
    let mut outs = Vec::new();
    for (precision, device) in [("f16", "gpu"), ("f16", "cpu"), ("f32", "cpu")] {
        let y = d.path(&format!("y-{precision}-{device}.npy"));
        let mut args = vec!["--precision", precision];
        args.extend(run_args(&w, &x, &y, device));
        succeeds(&args);
        outs.push(gaze::npy::read(&y).unwrap());
    }
    let max_diff = |a: &gaze::Tensor, b: &gaze::Tensor| {
        a.data()
            .iter()
            .zip(b.data())
            .map(|(p, q)| (p - q).abs())
            .fold(0.0f32, f32::max)
    };
    let largest = outs[2].data().iter().fold(0.0f32, |m, v| m.max(v.abs()));
    let same = max_diff(&outs[0], &outs[1]);
    assert!(same <= largest / 2048.0, "f16 gpu and cpu differ by {same}");
    let rounding = max_diff(&outs[0], &outs[2]);
    assert!(
        rounding > 0.0 && rounding < 3e-3 * largest,
        "f16 and f32 differ by {rounding} (largest value {largest})"
    );
    // Past f16's largest value the output is infinite, and run says why.
    let big = d.path("big.npy");
    let scaled = input(&[2, 5, 7, 9]);
    let scaled = gaze::Tensor::from_fn(scaled.shape(), |i| 1e5 * scaled.data()[i]);
    gaze::npy::write(&big, &scaled).unwrap();
    let y = d.path("y.npy");
    let mut args = vec!["--precision", "f16"];
    args.extend(run_args(&w, &big, &y, "gpu"));
    let out = gaze(&args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && stderr.contains("65504"), "{stderr}");

    let mut args = vec!["--precision", "f64"];
    args.extend(run_args(&w, &x, &y, "gpu"));
    fails(&args, "f64");
}

#[test]
fn checkpoint_problems_name_the_key() {
    let d = Dir::new("keys");
    let x = d.path("x.npy");
    gaze::npy::write(&x, &input(&[1, 4, 5, 5])).unwrap();
    let y = d.path("y.npy");

    let missing = d.path("missing.safetensors");
    write_weights(&missing, &ta_weights(Some("ChannelGateW")));
    fails(
        &run_args(&missing, &x, &y, "cpu"),
        "missing key `ChannelGateW.spatial.conv.weight`",
    );

    let mut shaped = ta_weights(None);
    shaped[1] = (
        "ChannelGateH.spatial.bn.weight".into(),
        vec![2],
        vec![1.0, 1.0],
    );
    let misshaped = d.path("misshaped.safetensors");
    write_weights(&misshaped, &shaped);
    fails(
        &run_args(&misshaped, &x, &y, "cpu"),
        "key `ChannelGateH.spatial.bn.weight` has shape [2], expected [1]",
    );

    let mut extra = ta_weights(None);
    extra.push(("stray.weight".into(), vec![3], vec![0.0; 3]));
    let unexpected = d.path("unexpected.safetensors");
    write_weights(&unexpected, &extra);
    fails(
        &run_args(&unexpected, &x, &y, "cpu"),
        "unexpected key(s) for this architecture: stray.weight",
    );

    let empty = d.path("empty.pth");
    std::fs::write(&empty, b"").unwrap();
    fails(&run_args(&empty, &x, &y, "cpu"), "empty");
    fails(
        &run_args(&d.path("absent.pth"), &x, &y, "cpu"),
        "absent.pth",
    );
}

#[test]
fn input_problems_are_explained() {
    let d = Dir::new("inputs");
    let w = d.path("w.safetensors");
    write_weights(&w, &ta_weights(None));
    let y = d.path("y.npy");

    let text = d.path("text.npy");
    std::fs::write(&text, "1,2,3").unwrap();
    fails(&run_args(&w, &text, &y, "cpu"), "not a usable .npy file");

    let rank3 = d.path("rank3.npy");
    gaze::npy::write(&rank3, &input(&[4, 5, 5])).unwrap();
    fails(&run_args(&w, &rank3, &y, "cpu"), "NCHW");

    let truncated = d.path("truncated.npy");
    let bytes = gaze::npy::to_bytes(&input(&[1, 4, 5, 5]));
    std::fs::write(&truncated, &bytes[..bytes.len() - 8]).unwrap();
    fails(
        &run_args(&w, &truncated, &y, "cpu"),
        "needs 400 bytes of data, the file has 392",
    );
}

#[test]
fn options_and_arity_are_checked() {
    let d = Dir::new("opts");
    let (w, x) = ta_case(&d, &[1, 4, 5, 5]);
    let y = d.path("y.npy");
    let mut args = run_args(&w, &x, &y, "cpu");
    args[2] = "nope";
    fails(&args, "unknown architecture `nope`");
    args[2] = "aff";
    fails(&args, "`aff` takes 2 input(s), got 1");
    let mut with_opt = run_args(&w, &x, &y, "cpu");
    with_opt.extend(["--opt", "small_input=true"]);
    fails(&with_opt, "`triplet_attention` has no option `small_input`");
    args[2] = "resnet18";
    fails(&args, "missing key");
}

#[test]
fn nan_inputs_do_not_crash_and_are_reported() {
    let d = Dir::new("nan");
    let (w, x, y) = (d.path("w.safetensors"), d.path("x.npy"), d.path("y.npy"));
    write_weights(&w, &ta_weights(None));
    let mut t = input(&[1, 4, 5, 5]);
    t.data_mut()[3] = f32::NAN;
    gaze::npy::write(&x, &t).unwrap();
    for device in ["cpu", "gpu"] {
        let out = gaze(&run_args(&w, &x, &y, device));
        assert!(out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("non-finite"), "{device}: {err}");
        assert!(gaze::npy::read(&y)
            .unwrap()
            .data()
            .iter()
            .any(|v| v.is_nan()));
    }
}

#[test]
fn inspect_infers_the_architecture() {
    let d = Dir::new("inspect");
    let w = d.path("w.safetensors");
    write_weights(&w, &ta_weights(None));
    let out = succeeds(&["inspect", &w]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("SpatialGate.spatial.conv.weight\t[1, 2, 3, 3]"),
        "{text}"
    );
    assert!(text.contains("architecture: triplet_attention"), "{text}");
}

#[test]
fn classify_with_the_demo_manifest() {
    let manifest = "web/models/models.json";
    let out = succeeds(&[
        "classify",
        "--manifest",
        manifest,
        "--json",
        "--device",
        "cpu",
        "web/samples/bag.png",
        "web/samples/trouser.png",
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let tops: Vec<String> = stdout
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            let total: f64 = v["probabilities"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| p.as_f64().unwrap())
                .sum();
            // Ten f32 probabilities summed: a softmax is off 1 by a few ulps at most.
            assert!((total - 1.0).abs() < 1e-5, "probabilities sum to {total}");
            v["top"][0]["label"].as_str().unwrap().to_string()
        })
        .collect();
    assert_eq!(tops, ["Bag", "Trouser"]);
    fails(
        &[
            "classify",
            "--manifest",
            manifest,
            "--model",
            "nope",
            "web/samples/bag.png",
        ],
        "has no model `nope`",
    );
    fails(
        &[
            "classify",
            "--manifest",
            "Cargo.toml",
            "web/samples/bag.png",
        ],
        "not a models.json manifest",
    );
    fails(
        &[
            "classify",
            "--manifest",
            manifest,
            "--device",
            "cpu",
            "Cargo.toml",
        ],
        "Cargo.toml: cannot decode the image",
    );
}

#[test]
fn serve_refuses_an_unbuilt_page() {
    let d = Dir::new("serve");
    fails(
        &["serve", "--dir", &d.path("")],
        "the page is not built (pkg/gaze_bg.wasm is missing): run `bash web/build.sh` first",
    );
}

/// One HTTP/1.0 GET with extra header lines; the response's head and body.
fn http_get(addr: &str, path: &str, extra: &str) -> (String, Vec<u8>) {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n{extra}\r\n").unwrap();
    let mut all = Vec::new();
    stream.read_to_end(&mut all).unwrap();
    let split = all.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    (
        String::from_utf8_lossy(&all[..split]).into_owned(),
        all[split + 4..].to_vec(),
    )
}

/// A reload revalidates rather than downloads again: every file has an ETag, and a request
/// naming it gets 304 without the body while the file is unchanged.
#[test]
fn serve_sends_etags_and_answers_revalidation_with_304() {
    use std::io::{BufRead, BufReader};
    let d = Dir::new("serve-etag");
    std::fs::create_dir_all(d.path("pkg")).unwrap();
    std::fs::write(d.path("pkg/gaze_bg.wasm"), b"\0asm").unwrap();
    std::fs::write(d.path("weights.bin"), vec![7u8; 5000]).unwrap();
    /// Stops the server however the test ends.
    struct Server(std::process::Child);
    impl Drop for Server {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let mut server = Server(
        std::process::Command::new(env!("CARGO_BIN_EXE_gaze"))
            .args(["serve", "--port", "0", "--dir", &d.path("")])
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let mut line = String::new();
    BufReader::new(server.0.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line
        .split("http://")
        .nth(1)
        .and_then(|r| r.split('/').next())
        .unwrap_or_else(|| panic!("no URL in {line}"))
        .to_string();
    let (head, body) = http_get(&addr, "/weights.bin", "");
    assert!(
        head.starts_with("HTTP/1.0 200") || head.starts_with("HTTP/1.1 200"),
        "{head}"
    );
    assert_eq!(body.len(), 5000);
    let tag = head
        .lines()
        .find_map(|l| {
            l.strip_prefix("ETag: ")
                .or_else(|| l.strip_prefix("etag: "))
        })
        .unwrap_or_else(|| panic!("no ETag in {head}"))
        .to_string();
    let (again, body) = http_get(&addr, "/weights.bin", &format!("If-None-Match: {tag}\r\n"));
    assert!(again.contains(" 304"), "{again}");
    assert!(body.is_empty());
    std::fs::write(d.path("weights.bin"), vec![8u8; 5000]).unwrap();
    let (changed, body) = http_get(&addr, "/weights.bin", &format!("If-None-Match: {tag}\r\n"));
    assert!(
        changed.contains(" 200"),
        "a changed file is sent again: {changed}"
    );
    assert_eq!(body, vec![8u8; 5000]);
}

/// An input past any device's buffers (1.2 PB) is refused by name before it is synthesized:
/// it used to abort in the host's allocator.
#[test]
fn bench_and_tune_refuse_an_input_past_the_device_buffers() {
    let size = ["--size", "10000000", "10000000"];
    for command in ["bench", "tune"] {
        let args = [&[command, "--arch", "resnet18"][..], &size].concat();
        fails(
            &args,
            "the input [1, 3, 10000000, 10000000] (--batch, --size) needs",
        );
    }
}

#[test]
fn bench_reports_json_and_pairs_against_a_baseline() {
    let args = [
        "bench",
        "--arch",
        "triplet_attention",
        "--size",
        "8",
        "8",
        "--iters",
        "3",
        "--top",
        "2",
        "--json",
        "--against",
        "coord_attention",
    ];
    let out = succeeds(&args);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    for key in [
        "cold_ms",
        "median_ms",
        "p90_ms",
        "throughput_ips",
        "gflops",
        "peak_gflops",
        "peak_gbs",
        "encode_warm_ms",
    ] {
        let v = report[key].as_f64().unwrap_or(f64::NAN);
        assert!(v.is_finite() && v > 0.0, "{key} = {}", report[key]);
    }
    // The host's share of a warm run: some time, and no device object (a compiled plan).
    let host_ms = report["host_ms"].as_f64().unwrap_or(f64::NAN);
    assert!(host_ms > 0.0 && host_ms < report["median_ms"].as_f64().unwrap_or(0.0) + 1.0);
    assert_eq!(report["objects_per_run"].as_f64(), Some(0.0));
    assert_eq!(report["arch"], "triplet_attention");
    assert_eq!(report["precision"], "f32");
    assert_eq!(report["size"], serde_json::json!([8, 8]));
    assert!(report["peak_buffer_bytes"].as_u64().unwrap_or(0) > 0);
    let ops = report["ops"].as_array().unwrap();
    assert!(!ops.is_empty() && ops.len() <= 2, "--top 2 gave {ops:?}");
    for op in ops {
        let (bytes, gbs) = (op["bytes"].as_u64(), op["gbs"].as_f64());
        assert!(
            bytes.is_some_and(|v| v > 0) && gbs.is_some_and(|v| v > 0.0),
            "{op}"
        );
    }
    // The kernels together bind the input and the output at least: 64 × 8 × 8 floats each.
    let bound: u64 = report["kernels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["bytes"].as_u64().unwrap_or(0))
        .sum();
    assert!(bound >= 2 * 64 * 8 * 8 * 4, "{}", report["kernels"]);
    let against = &report["against"];
    assert_eq!(against["arch"], "coord_attention");
    let (ms, ratio) = (against["median_ms"].as_f64(), against["ratio"].as_f64());
    assert!(
        ms.is_some_and(|v| v > 0.0) && ratio.is_some_and(|v| v > 0.0),
        "{against}"
    );

    let unknown = ["bench", "--arch", "resnet50", "--against", "resnet51"];
    fails(&unknown, "resnet51");
}

/// `bench` reports what the attention modules' dispatches bind, counted from the shapes here:
/// Coordinate Attention on x [1, 64, 8, 8] (mip 8) reads and writes, in floats,
/// pool x + [64, 16]; conv1 [64, 16] + weight [8, 64] + bias [8] + out [8, 16];
/// gates [8, 16] + weight [2, 64, 8] + bias [2, 64] + out [64, 16]; apply x + gates + out x.
#[test]
fn bench_reports_the_bytes_attention_moves() {
    let args = [
        "bench",
        "--arch",
        "coord_attention",
        "--size",
        "8",
        "8",
        "--iters",
        "1",
        "--json",
    ];
    let report = json_of(&succeeds(&args));
    let x = 64 * 8 * 8;
    let pooled = 64 * 16;
    let floats = (x + pooled)
        + (pooled + 8 * 64 + 8 + 8 * 16)
        + (8 * 16 + 2 * 64 * 8 + 2 * 64 + pooled)
        + (x + pooled + x);
    let attention = &report["attention"];
    assert_eq!(attention["dispatches"], 4, "{attention}");
    assert_eq!(attention["bytes"], 4 * floats as u64, "{attention}");
    // Alone, the module follows no depthwise conv to fuse its pool into.
    assert_eq!(attention["fused_conv_bytes"], 0, "{attention}");
    // A model without modules has no attention entry.
    let plain = [
        "bench", "--arch", "resnet18", "--size", "32", "32", "--iters", "1", "--json",
    ];
    assert!(json_of(&succeeds(&plain)).get("attention").is_none());
}

/// With fusion (GAZE_FUSION, on by default) MobileNetV2-CA's pools are summed in its
/// depthwise convs, and on this CPU device with subgroups its projection convs apply the
/// gates (read through a uniform window), so no `coord_apply` runs: the modules take three
/// dispatches each instead of four and bind fewer bytes, and bench names what the fused convs
/// bind instead; with every pass, each module is one dispatch. A bad GAZE_FUSION is refused by
/// name.
#[test]
fn bench_reports_fusion_and_what_it_moves() {
    let args = [
        "bench",
        "--arch",
        "mobilenet_v2_ca",
        "--size",
        "32",
        "32",
        "--iters",
        "1",
        "--json",
    ];
    let report = |fusion: &str| {
        let out = gaze_with(&args, &[("GAZE_FUSION", fusion)]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        json_of(&out)
    };
    let (on, off) = (report("on"), report("off"));
    assert_eq!(
        (on["fusion"].as_str(), off["fusion"].as_str()),
        (Some("on"), Some("off"))
    );
    let bytes = |r: &serde_json::Value, key: &str| r["attention"][key].as_u64().unwrap_or(0);
    assert!(bytes(&on, "bytes") < bytes(&off, "bytes"), "{on} {off}");
    assert!(bytes(&on, "fused_conv_bytes") > 0, "{}", on["attention"]);
    assert_eq!(bytes(&off, "fused_conv_bytes"), 0, "{}", off["attention"]);
    let dispatches = |r: &serde_json::Value| r["attention"]["dispatches"].as_u64().unwrap_or(0);
    assert_eq!(
        4 * dispatches(&on),
        3 * dispatches(&off),
        "{}",
        on["attention"]
    );
    // Every pass, those for GPUs included: one dispatch per module (`coord_excite`), the
    // multiply in the projection convs.
    let all = report("everywhere");
    assert_eq!(
        4 * dispatches(&all),
        dispatches(&off),
        "{}",
        all["attention"]
    );
    assert!(bytes(&all, "bytes") < bytes(&on, "bytes"), "{all} {on}");

    let bad = gaze_with(&args, &[("GAZE_FUSION", "maybe")]);
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(
        !bad.status.success() && err.contains("GAZE_FUSION"),
        "{err}"
    );
}

fn json_of(out: &Output) -> serde_json::Value {
    serde_json::from_str(&String::from_utf8_lossy(&out.stdout)).unwrap()
}

/// `gaze tune` measures every conv's candidates once, caches the fastest per adapter, and
/// plans then run those variants, as `gaze bench` shows for every dispatch.
#[test]
fn tune_caches_choices_that_bench_then_runs() {
    let d = Dir::new("tune");
    let cache = d.path("tune.json");
    let env = [("GAZE_TUNE_CACHE", cache.as_str())];
    let tune = ["tune", "--arch", "resnet18", "--size", "32", "32", "--json"];
    let ok = |args: &[&str], env: &[(&str, &str)]| {
        let out = gaze_with(args, env);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{args:?}: {err}");
        json_of(&out)
    };
    let first = ok(&tune, &env);
    assert_eq!(first["cache"], cache.as_str());
    let convs = first["convs"].as_array().unwrap();
    assert!(
        convs.len() >= 8,
        "resnet18 has at least 8 distinct convs: {convs:?}"
    );
    let mut chosen = std::collections::BTreeSet::new();
    for c in convs {
        assert_eq!(c["measured"], true, "{c}");
        let (variant, ms) = (c["variant"].as_str().unwrap(), c["ms"].as_object().unwrap());
        // The choice is the fastest of what was measured, or the heuristic's variant when
        // nothing beat it by 10% (tune::MARGIN).
        let best = ms
            .values()
            .filter_map(|v| v.as_f64())
            .fold(f64::INFINITY, f64::min);
        let took = ms[variant].as_f64().unwrap_or(f64::NAN);
        assert!(
            took == best || (c["heuristic"] == variant && best > 0.9 * took),
            "{c}"
        );
        assert!(
            ms.len() >= 2 || c["heuristic"].as_str().unwrap().contains("depthwise"),
            "{c}"
        );
        chosen.insert(variant.to_string());
    }
    assert!(std::path::Path::new(&cache).exists());

    // Tuned before: nothing is measured again, and the choices stand.
    let second = ok(&tune, &env);
    for (a, b) in second["convs"].as_array().unwrap().iter().zip(convs) {
        assert_eq!(a["measured"], false, "{a}");
        assert_eq!(a["variant"], b["variant"]);
    }

    let bench = [
        "bench", "--arch", "resnet18", "--size", "32", "32", "--iters", "2", "--json",
    ];
    let mut against = bench.to_vec();
    against.extend(["--against-tune", "off"]);
    let report = ok(&against, &env);
    assert_eq!(report["tune"], "cache");
    assert_eq!(report["against"]["tune"], "off");
    let variants = report["variants"].as_array().unwrap();
    let conv_variants: Vec<&str> = variants
        .iter()
        .filter(|v| v["op"].as_str().unwrap().contains("conv2d"))
        .map(|v| v["variant"].as_str().unwrap())
        .collect();
    assert!(!conv_variants.is_empty(), "{variants:?}");
    for v in conv_variants {
        assert!(
            chosen.contains(v),
            "bench ran {v}, which tune did not choose: {chosen:?}"
        );
    }
}

#[test]
fn tuning_modes_are_checked() {
    let err =
        String::from_utf8_lossy(&gaze_with(&["devices"], &[("GAZE_TUNE", "sometimes")]).stderr)
            .into_owned();
    assert!(
        err.contains("GAZE_TUNE") && err.contains("sometimes"),
        "{err}"
    );
    fails(&["--tune", "maybe", "devices"], "maybe");
    let d = Dir::new("tune-broken");
    let cache = d.path("tune.json");
    std::fs::write(&cache, "[1, 2").unwrap();
    let out = gaze_with(&["devices"], &[("GAZE_TUNE_CACHE", cache.as_str())]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains(&cache), "{err}");
}
