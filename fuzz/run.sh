#!/usr/bin/env bash
# Fuzzes gaze's readers of untrusted files with cargo-fuzz (libFuzzer + AddressSanitizer).
#
#   fuzz/run.sh [SECONDS] [TARGET ...]   each target for SECONDS (default 60); default targets:
#                                        safetensors pickle checkpoint legacy npy
#
# Targets (fuzz/fuzz_targets/):
#   safetensors  StateDict::from_bytes on safetensors-shaped input
#   pickle       weights::pickle::load, the restricted unpickler, on raw pickle bytes
#   checkpoint   StateDict::from_bytes on whole files, or on a torch.save zip built around a
#                fuzzed data.pkl (so pickles reach the storage and stride checks)
#   legacy       StateDict::from_bytes on legacy (pre-1.6, non-zip) torch.save files, whole or
#                after the fixed magic-number and version pickles
#   npy          npy::parse
#
# Needs cargo-fuzz (`cargo install cargo-fuzz --locked`). It passes nightly-only flags to rustc;
# RUSTC_BOOTSTRAP=1 lets a stable toolchain accept them (harmless on nightly).
#
# Limits, per input: -malloc_limit_mb=512 fails any single allocation over 512 MiB (inputs are
# at most 64 kB, -max_len, so no allocation that size is justified by the file),
# -rss_limit_mb=2048, -timeout=10 s.
#
# Corpus: the committed seeds in fuzz/corpus/<target> (small valid files from
# tests/fixtures/checkpoints, tiny .npy and safetensors files, a past crasher) are only read;
# what a run discovers goes to fuzz/work/<target> (git-ignored) and later runs resume from it.
# A merged corpus is thousands of files, so it is not committed.
#
# A crash, leak, OOM or timeout is saved under fuzz/artifacts/<target>/; reproduce it with
# `RUSTC_BOOTSTRAP=1 cargo fuzz run <target> <file>`, fix it, and keep the input as a regression
# test (tests/fixtures/regressions/, read by tests/robustness.rs).
# Exit status: non-zero if any target failed.
set -u
cd "$(dirname "$0")"
seconds=${1:-60}
shift || true
targets=("$@")
[ ${#targets[@]} -eq 0 ] && targets=(safetensors pickle checkpoint legacy npy)
export RUSTC_BOOTSTRAP=1

cargo fuzz build || exit 1
failed=()
for t in "${targets[@]}"; do
    mkdir -p "work/$t"
    echo "=== $t: ${seconds}s"
    if ! cargo fuzz run "$t" "work/$t" "corpus/$t" -- \
        -max_total_time="$seconds" -rss_limit_mb=2048 -malloc_limit_mb=512 -timeout=10 \
        -max_len=65536 -print_final_stats=1; then
        failed+=("$t")
    fi
done
if [ ${#failed[@]} -gt 0 ]; then
    echo "failed: ${failed[*]} (inputs under fuzz/artifacts/)"
    exit 1
fi
echo "all targets ran ${seconds}s without a failure"
