#!/usr/bin/env bash
# Sets up everything the test suite needs (Rust wasm target, Python venv with grpcio) and
# runs it: formatting, clippy, then every test in the workspace.
set -euo pipefail
cd "$(dirname "$0")/.."

source scripts/build-tools.sh

echo "== setup: rust target wasm32-wasip2"
rustup target add wasm32-wasip2 >/dev/null

echo "== setup: python venv with grpcio (.venv)"
if [ ! -x .venv/bin/python ] || ! .venv/bin/python -c "import grpc, grpc_tools" 2>/dev/null; then
  python3 -m venv .venv
  .venv/bin/pip install --quiet --disable-pip-version-check -r tests/python/requirements.txt
fi
export SLUICE_PYTHON="$PWD/.venv/bin/python"

echo "== vendor/wasmtime is the published crate with vendor/wasmtime.patch"
bash scripts/vendor-wasmtime.sh --check

echo "== build plugins (wasm32-wasip2 components)"
bash scripts/build-plugins.sh >/dev/null

echo "== cargo fmt --check"
cargo fmt --all -- --check

echo "== benchmark harness: how it judges the goals (python unittest)"
python3 -m unittest discover --start-directory benches --pattern 'test_*.py'

echo "== cargo clippy"
cargo clippy --workspace --all-targets --quiet -- -D warnings

# `cargo test --workspace` also builds the `sluice` binary that the signal and CLI tests run
# (a package's binaries are built for its integration tests), with the same features as
# everything else: a separate `cargo build -p sluice` resolves features for that one
# package and so compiled most dependencies a second time.
echo "== cargo test"
cargo test --workspace --no-fail-fast 2>&1 | tee target/test-output.txt
