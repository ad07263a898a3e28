#!/usr/bin/env bash
# What tuning costs and gains on this machine's adapter, natively:
#   - `gaze tune` of each network from an empty cache (its own, in the output folder): how
#     long measuring takes, and for how many convs the tuner overrules the heuristic;
#   - then `gaze bench --against-tune off`, `--runs` times: the tuned plan timed run for run
#     alternately with the heuristic's on a second device, as the median of paired ratios.
# Prints a markdown table; tune.jsonl and bench.jsonl keep every report.
#   bash bench/tuning.sh [--gaze PATH] [--iters N] [--runs N] [--out DIR] [ARCH...]
set -euo pipefail
cd "$(dirname "$0")/.."
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-/tmp}"

gaze=target/release/gaze
iters=10
runs=3
out=bench/out/tuning
archs=()
while [ $# -gt 0 ]; do
  case "$1" in
    --gaze) gaze="$2"; shift 2 ;;
    --iters) iters="$2"; shift 2 ;;
    --runs) runs="$2"; shift 2 ;;
    --out) out="$2"; shift 2 ;;
    --*) echo "unknown option: $1" >&2; exit 2 ;;
    *) archs+=("$1"); shift ;;
  esac
done
[ ${#archs[@]} -gt 0 ] || archs=(resnet50 resnet50_ta mobilenet_v2 mobilenet_v2_ca)
[ -x "$gaze" ] || { echo "no gaze binary at $gaze (cargo build --release)" >&2; exit 1; }
mkdir -p "$out"
rm -f "$out/tune-cache.json"
: > "$out/tune.jsonl"
: > "$out/bench.jsonl"
export GAZE_TUNE=cache GAZE_TUNE_CACHE="$out/tune-cache.json"

for arch in "${archs[@]}"; do
  echo "== tune $arch" >&2
  "$gaze" tune --arch "$arch" --json >> "$out/tune.jsonl"
  for _ in $(seq "$runs"); do
    echo "== bench $arch tuned against the heuristic" >&2
    "$gaze" bench --arch "$arch" --against-tune off --iters "$iters" --json >> "$out/bench.jsonl"
  done
done

python3 - "$out/tune.jsonl" "$out/bench.jsonl" <<'PY'
import json, sys
tunes = [json.loads(l) for l in open(sys.argv[1])]
benches = [json.loads(l) for l in open(sys.argv[2])]
print(f"adapter: {tunes[0]['adapter']} ({tunes[0]['driver']})")
print("| arch | convs | measured in | tuned ≠ heuristic | tuned median | heuristic median | paired ratio tuned / heuristic |")
print("|---|---|---|---|---|---|---|")
for t in tunes:
    rs = [b for b in benches if b["arch"] == t["arch"]]
    differ = sum(c["variant"] != c["heuristic"] for c in t["convs"])
    measured = sum(c["measured"] for c in t["convs"])
    med = ", ".join(f"{b['median_ms']:.0f}" for b in rs)
    base = ", ".join(f"{b['against']['median_ms']:.0f}" for b in rs)
    ratio = ", ".join(f"{b['against']['ratio']:.3f}" for b in rs)
    print(f"| {t['arch']} | {len(t['convs'])} ({measured} new) | {t['tuning_ms'] / 1e3:.1f} s | {differ} | {med} ms | {base} ms | {ratio} |")
PY
