#!/usr/bin/env bash
# Builds the web demo: the crate compiled to wasm (release) and its JS bindings in web/pkg.
# Installs the wasm32 target and the wasm-bindgen CLI of the version Cargo.toml pins if missing.
set -euo pipefail
cd "$(dirname "$0")/.."

version=$(sed -n 's/^wasm-bindgen = "=\(.*\)"$/\1/p' Cargo.toml)
if [ -z "$version" ]; then
  echo "web/build.sh: Cargo.toml must pin wasm-bindgen (wasm-bindgen = \"=X.Y.Z\")" >&2
  exit 1
fi
if ! rustup target list --installed 2>/dev/null | grep -qx wasm32-unknown-unknown; then
  rustup target add wasm32-unknown-unknown
fi
if [ "$(wasm-bindgen --version 2>/dev/null | cut -d' ' -f2)" != "$version" ]; then
  echo "== installing wasm-bindgen-cli $version (the version of the wasm-bindgen crate)"
  cargo install wasm-bindgen-cli --version "$version"
fi

echo "== building the wasm module"
cargo build --release --lib --target wasm32-unknown-unknown
wasm-bindgen --target web --no-typescript --out-dir web/pkg \
  target/wasm32-unknown-unknown/release/gaze.wasm
echo "built web/pkg ($(du -h web/pkg/gaze_bg.wasm | cut -f1) of wasm); serve it with: cargo run --release -- serve"
