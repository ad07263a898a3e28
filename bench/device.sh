#!/usr/bin/env bash
# The real-GPU numbers of the README in one run, for a machine with a GPU and a built gaze:
#   - the adapters, and the official parity cases on the GPU when their folder is given;
#   - ResNet-50-TA and MobileNetV2-CA at batch 1, each timed alternately with its backbone
#     (`--against`: the attention overhead as the median of paired ratios);
#   - both at a large batch (throughput);
#   - every run at f32, and at f16 where the adapter has shader-f16.
# The output folder gets four files: devices.txt, parity.txt, reports.jsonl (one
# `gaze bench --json` report a line) and table.md, the table that closes the run.
#   bash bench/device.sh [--gaze PATH] [--adapter NAME] [--iters N] [--batch N]
#                        [--batch-iters N] [--parity DIR] [--out DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-/tmp}"

gaze=target/release/gaze
adapter=""
iters=50
batch=64
batch_iters=10
parity=""
out="${OUT:-bench/out/device}"
while [ $# -gt 0 ]; do
  case "$1" in
    --gaze) gaze="$2"; shift 2 ;;
    --adapter) adapter="$2"; shift 2 ;;
    --iters) iters="$2"; shift 2 ;;
    --batch) batch="$2"; shift 2 ;;
    --batch-iters) batch_iters="$2"; shift 2 ;;
    --parity) parity="$2"; shift 2 ;;
    --out) out="$2"; shift 2 ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
done
[ -x "$gaze" ] || { echo "no gaze binary at $gaze (cargo build --release)" >&2; exit 1; }
mkdir -p "$out"
: > "$out/reports.jsonl"
run() { "$gaze" ${adapter:+--adapter "$adapter"} "$@"; }

run devices | tee "$out/devices.txt"
precisions=(f32)
# Opening the device at f16 fails unless the adapter has shader-f16.
if run --precision f16 devices > /dev/null 2>&1; then
  precisions+=(f16)
fi

if [ -n "$parity" ]; then
  # A failing case is reported in parity.txt; the timings still run.
  python3 "$parity/check.py" --cases "$parity" --gaze "$gaze" --device gpu \
    | tee "$out/parity.txt" || echo "parity: some cases failed (parity.txt)" >&2
fi

for p in "${precisions[@]}"; do
  for pair in resnet50_ta:resnet50 mobilenet_v2_ca:mobilenet_v2; do
    arch="${pair%%:*}" base="${pair##*:}"
    echo "== $arch against $base, batch 1, $p" >&2
    run --precision "$p" bench --arch "$arch" --against "$base" --iters "$iters" --json \
      >> "$out/reports.jsonl"
    echo "== $arch, batch $batch, $p" >&2
    run --precision "$p" bench --arch "$arch" --batch "$batch" --iters "$batch_iters" --json \
      >> "$out/reports.jsonl"
  done
done

python3 - "$out/reports.jsonl" <<'EOF' | tee "$out/table.md"
import json, sys
rows = []
for line in open(sys.argv[1]):
    r = json.loads(line)
    against = r.get("against") or {}
    rows.append((r["arch"], r["batch"], r["precision"], r["median_ms"], r["p90_ms"],
                 r["throughput_ips"], 100 * r["gflops"] / r["peak_gflops"], r["peak_gbs"],
                 against.get("arch", ""), against.get("ratio")))
print(f"adapter: {r['adapter']}")
print("| arch | batch | precision | median ms | p90 ms | images/s | % of FMA peak | copy GB/s | against | paired ratio |")
print("|---|---|---|---|---|---|---|---|---|---|")
for a, b, p, med, p90, ips, pct, gbs, base, ratio in sorted(rows):
    ratio = f"{ratio:.3f}" if ratio is not None else ""
    print(f"| {a} | {b} | {p} | {med:.2f} | {p90:.2f} | {ips:.1f} | {pct:.1f} | {gbs:.1f} | {base} | {ratio} |")
EOF
