#!/usr/bin/env bash
# Builds every example plugin in plugins/ (and the test plugins in tests/plugins/, if any)
# as a wasm32-wasip2 component: target/wasm32-wasip2/release/NAME_WITH_UNDERSCORES.wasm
set -euo pipefail
cd "$(dirname "$0")/.."
rustup target add wasm32-wasip2 >/dev/null
packages=()
for manifest in plugins/*/Cargo.toml tests/plugins/*/Cargo.toml; do
  [ -f "$manifest" ] || continue
  packages+=(-p "$(sed -n 's/^name = "\(.*\)"/\1/p' "$manifest" | head -1)")
done
cargo build --release --quiet --target wasm32-wasip2 "${packages[@]}"
ls -1 target/wasm32-wasip2/release/*.wasm
