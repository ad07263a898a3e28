#!/usr/bin/env bash
# What fusion (GAZE_FUSION) changes in the attention networks' overhead, natively: each
# network timed run for run alternately with its backbone (`gaze bench --against`), with
# fusion on and off in turn, `--runs` rounds in a row. Prints a markdown table of the paired
# ratios and of what the modules' dispatches bind (and the fused convs bind beyond plain
# convs); bench.jsonl keeps every report.
#   bash bench/fusion.sh [--gaze PATH] [--iters N] [--runs N] [--out DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-/tmp}"

gaze=target/release/gaze
iters=15
runs=3
out=bench/out/fusion
while [ $# -gt 0 ]; do
  case "$1" in
    --gaze) gaze="$2"; shift 2 ;;
    --iters) iters="$2"; shift 2 ;;
    --runs) runs="$2"; shift 2 ;;
    --out) out="$2"; shift 2 ;;
    *) echo "unknown option: $1" >&2; exit 2 ;;
  esac
done
[ -x "$gaze" ] || { echo "no gaze binary at $gaze (cargo build --release)" >&2; exit 1; }
mkdir -p "$out"
: > "$out/bench.jsonl"

for pair in "resnet50_ta resnet50" "mobilenet_v2_ca mobilenet_v2"; do
  set -- $pair
  for _ in $(seq "$runs"); do
    for fusion in on off; do
      echo "== $1 against $2, fusion $fusion" >&2
      GAZE_FUSION=$fusion "$gaze" bench --arch "$1" --against "$2" --iters "$iters" --json >> "$out/bench.jsonl"
    done
  done
done

python3 - "$out/bench.jsonl" <<'PY'
import json, sys
benches = [json.loads(l) for l in open(sys.argv[1])]
print(f"adapter: {benches[0]['adapter']}, batch {benches[0]['batch']}, {benches[0]['size'][0]}×{benches[0]['size'][1]}")
print("| arch | fusion | paired ratio against the backbone | modules' dispatches | bytes they bind | more bound by fused convs |")
print("|---|---|---|---|---|---|")
for arch in dict.fromkeys(b["arch"] for b in benches):
    for fusion in ("on", "off"):
        rs = [b for b in benches if b["arch"] == arch and b["fusion"] == fusion]
        a = rs[0]["attention"]
        ratio = ", ".join(f"{b['against']['ratio']:.3f}" for b in rs)
        print(f"| {arch} | {fusion} | {ratio} | {a['dispatches']} | {a['bytes'] / 1e6:.1f} MB | {a['fused_conv_bytes'] / 1e6:.1f} MB |")
PY
