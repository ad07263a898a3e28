#!/usr/bin/env bash
# The real-GPU numbers of the README in one run, for a machine with a GPU and a built gaze:
#   - the adapters;
#   - `gaze tune` first, for each network timed below, at each batch and precision: the
#     kernel variant chosen for every conv and what each candidate measured (tune.jsonl), cached
#     in tune-cache.json, which every later step reads (GAZE_TUNE=cache);
#   - the official parity cases on the GPU when their folder is given;
#   - ResNet-50-TA and MobileNetV2-CA at batch 1, each timed alternately with its backbone
#     (`--against`: the attention overhead as the median of paired ratios);
#   - both at a large batch (throughput);
#   - both at batch 1 against themselves on the heuristic's kernels (`--against-tune off`:
#     what tuning gains);
#   - MobileNetV2-CA against its backbone again with fusion off (`--fusion off`: what the
#     fusion passes gain, with the bytes the modules bind either way);
#   - every run at f32, and at f16 where the adapter has shader-f16.
# The output folder gets six files: devices.txt, tune.jsonl (one `gaze tune --json` report a
# line), tune-cache.json, parity.txt, reports.jsonl (one `gaze bench --json` report a line)
# and table.md, the table that closes the run, with the variants each report ran.
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
: > "$out/tune.jsonl"
export GAZE_TUNE=cache GAZE_TUNE_CACHE="$out/tune-cache.json"
run() { "$gaze" ${adapter:+--adapter "$adapter"} "$@"; }

run devices | tee "$out/devices.txt"
precisions=(f32)
# Opening the device at f16 fails unless the adapter has shader-f16.
if run --precision f16 devices > /dev/null 2>&1; then
  precisions+=(f16)
fi

for p in "${precisions[@]}"; do
  for arch in resnet50 resnet50_ta mobilenet_v2 mobilenet_v2_ca; do
    for b in 1 "$batch"; do
      echo "== tune $arch, batch $b, $p" >&2
      run --precision "$p" tune --arch "$arch" --batch "$b" --json >> "$out/tune.jsonl"
    done
  done
done

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
    echo "== $arch tuned against the heuristic, batch 1, $p" >&2
    run --precision "$p" bench --arch "$arch" --against-tune off --iters "$iters" --json \
      >> "$out/reports.jsonl"
  done
  echo "== mobilenet_v2_ca against mobilenet_v2 unfused, batch 1, $p" >&2
  run --precision "$p" --fusion off bench --arch mobilenet_v2_ca --against mobilenet_v2 \
    --iters "$iters" --json >> "$out/reports.jsonl"
done

python3 - "$out/reports.jsonl" "$out/tune.jsonl" <<'EOF' | tee "$out/table.md"
import collections, json, sys
rows = []
for line in open(sys.argv[1]):
    r = json.loads(line)
    against = r.get("against") or {}
    base = f"{against['arch']} (tune {against['tune']})" if against else ""
    kinds = collections.Counter(v["variant"] for v in r["variants"] if v["variant"].startswith("conv2d"))
    variants = ", ".join(f"{v} ×{n}" for v, n in kinds.most_common())
    attention = r.get("attention") or {}
    moved = f"{attention['bytes'] / 1e6:.1f} + {attention['fused_conv_bytes'] / 1e6:.1f} MB" if attention else ""
    host = f"{r['host_ms']:.3f} ({r['encode_warm_ms']:.3f})" if "encode_warm_ms" in r else ""
    rows.append((r["arch"], r["batch"], r["precision"], r.get("fusion", ""), r["median_ms"],
                 r["p90_ms"], host, r["throughput_ips"], 100 * r["gflops"] / r["peak_gflops"],
                 r["peak_gbs"], base, against.get("ratio"), moved, variants))
print(f"adapter: {r['adapter']}")
print("| arch | batch | precision | fusion | median ms | p90 ms | host ms (encode, warm) | images/s | % of FMA peak | copy GB/s | against | paired ratio | attention moves (+ fused convs) | conv variants |")
print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
for a, b, p, fusion, med, p90, host, ips, pct, gbs, base, ratio, moved, variants in sorted(rows):
    ratio = f"{ratio:.3f}" if ratio is not None else ""
    print(f"| {a} | {b} | {p} | {fusion} | {med:.3f} | {p90:.3f} | {host} | {ips:.1f} | {pct:.2f} | {gbs:.1f} | {base} | {ratio} | {moved} | {variants} |")
print()
print("| tuned | batch | precision | convs | measured in s | differ from heuristic |")
print("|---|---|---|---|---|---|")
for line in open(sys.argv[2]):
    t = json.loads(line)
    differ = sum(c["variant"] != c["heuristic"] for c in t["convs"])
    print(f"| {t['arch']} | {t['batch']} | {t['precision']} | {len(t['convs'])} | {t['tuning_ms'] / 1e3:.1f} | {differ} |")
EOF
