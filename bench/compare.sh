#!/usr/bin/env bash
# gaze beside its peers on this machine, same model and weights (torchvision's ResNet-50 and
# MobileNetV2, seeded random weights, 224×224, batch 1), warm medians:
#   - gaze native (`gaze bench`, the wgpu adapter: lavapipe here);
#   - gaze's wasm build, ONNX Runtime Web's WebGPU backend and TF.js's WebGPU backend (running
#     the same network as TF.js ops, BN folded, fused conv + ReLU), each in a fresh page of the
#     same headless Chromium (--enable-unsafe-webgpu: SwiftShader here), output read back every
#     run, the peers' logits checked against PyTorch's.
#   - wonnx 0.5 (bench/wonnx, a small driver built with its own, older wgpu) on the same
#     native adapter as gaze, on the same ONNX file ORT-Web runs.
# Needs python3 with torch, torchvision and onnx (for bench/out), node, npm and Debian's chromium.
#   bash bench/compare.sh [--iters N] [--browser-iters N] [ARCH...]
set -euo pipefail
cd "$(dirname "$0")/.."
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-/tmp}"

iters=5
browser_iters=3
archs=()
while [ $# -gt 0 ]; do
  case "$1" in
    --iters) iters="$2"; shift 2 ;;
    --browser-iters) browser_iters="$2"; shift 2 ;;
    *) archs+=("$1"); shift ;;
  esac
done
[ ${#archs[@]} -gt 0 ] || archs=(resnet50 mobilenet_v2)

for arch in "${archs[@]}"; do
  [ -f "bench/out/$arch.expected.json" ] || python3 bench/export_models.py "$arch"
done
cargo build --release --quiet
cargo build --release --quiet --manifest-path bench/wonnx/Cargo.toml
[ -f web/pkg/gaze_bg.wasm ] || bash web/build.sh
(cd bench && npm ci --no-audit --no-fund --silent)

results=$(mktemp)
for arch in "${archs[@]}"; do
  target/release/gaze bench --arch "$arch" --weights "bench/out/$arch.pth" --iters "$iters" --json \
    | python3 -c 'import json,sys; d=json.load(sys.stdin); print(json.dumps({"runtime": "native", "arch": d["arch"], "cold_ms": d["cold_ms"], "median_ms": d["median_ms"], "device": d["adapter"]}))' \
    >> "$results"
  # The driver prints its own error line when wonnx refuses the model; a crash prints none.
  line=$(bench/wonnx/target/release/gaze-bench-wonnx "$arch" "bench/out/$arch.onnx" "$iters") \
    || [ -n "$line" ] || line="{\"runtime\": \"wonnx\", \"arch\": \"$arch\", \"error\": \"crashed\"}"
  echo "$line" >> "$results"
done
browser_status=0
node bench/compare.mjs --iters "$browser_iters" "${archs[@]}" >> "$results" || browser_status=$?

python3 - "$results" <<'PY'
import json, sys
rows = [json.loads(line) for line in open(sys.argv[1])]
by = {(r["runtime"], r["arch"]): r for r in rows}
def ms(r):
    return "failed: " + r["error"] if "error" in r else f'{r["median_ms"]:.0f} ms (cold {r["cold_ms"] / 1000:.1f} s)'
device = next((r["device"] for r in rows if r["runtime"] == "native"), "?")
def ratio(slow, fast):
    if slow and fast and "median_ms" in slow and "median_ms" in fast:
        return f'{slow["median_ms"] / fast["median_ms"]:.1f}×'
    return "—"
print(f"| arch | gaze native ({device}) | wonnx, same adapter | wonnx / gaze | gaze wasm, WebGPU "
      "| ONNX Runtime Web, WebGPU | ORT-Web / gaze wasm | TF.js, WebGPU | TF.js / gaze wasm |")
print("|---|---|---|---|---|---|---|---|---|")
checks = []
for arch in dict.fromkeys(r["arch"] for r in rows):
    native, wonnx, wasm, ort, tfjs = (by.get((rt, arch)) for rt in ("native", "wonnx", "gaze", "ort", "tfjs"))
    cell = lambda c: ms(c) if c else "not run"
    print(f"| {arch} | {cell(native)} | {cell(wonnx)} | {ratio(wonnx, native)} | {cell(wasm)} "
          f"| {cell(ort)} | {ratio(ort, wasm)} | {cell(tfjs)} | {ratio(tfjs, wasm)} |")
    checks += [f"{rt} {arch} {r['rel_err']:.1e}" for rt, r in (("ORT-Web", ort), ("TF.js", tfjs))
               if r and "rel_err" in r]
if checks:
    print("\nLargest logit difference from PyTorch, relative to its largest logit: " + "; ".join(checks))
PY
rm -f "$results"
exit "$browser_status"
