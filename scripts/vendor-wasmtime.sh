#!/usr/bin/env bash
# Makes vendor/wasmtime: the wasmtime crate as published on crates.io, fetched and
# checksum-checked by cargo, with vendor/wasmtime.patch applied.
#
#   bash scripts/vendor-wasmtime.sh           (re)writes vendor/wasmtime
#   bash scripts/vendor-wasmtime.sh --check   fails unless vendor/wasmtime is exactly that
#
# To move to another 48.0.x release: change VERSION, run it, rebuild, run the tests.
set -euo pipefail
cd "$(dirname "$0")/.."

VERSION=48.0.8
check=false
case "${1:-}" in
  --check) check=true ;;
  "") ;;
  *) echo "usage: $0 [--check]" >&2; exit 2 ;;
esac

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# A throwaway package, a workspace of its own (so the workspace's [patch] does not apply,
# wherever the temporary folder is), that depends on the published crate: `cargo fetch`
# downloads it and checks its checksum.
mkdir -p "$work/fetch/src"
cat > "$work/fetch/Cargo.toml" <<TOML
[workspace]

[package]
name = "fetch-wasmtime"
version = "0.0.0"
edition = "2024"

[dependencies]
wasmtime = { version = "=$VERSION", default-features = false }
TOML
: > "$work/fetch/src/lib.rs"
cargo fetch --quiet --manifest-path "$work/fetch/Cargo.toml"

crate_file=$(ls "${CARGO_HOME:-$HOME/.cargo}"/registry/cache/*/"wasmtime-$VERSION.crate" | head -n 1)
tar xzf "$crate_file" -C "$work"
# `git apply` works outside a repository too (and git is there wherever this repo is); the
# ceiling keeps it from taking a repository above the temporary folder for the crate's own.
GIT_CEILING_DIRECTORIES="$work" git -C "$work/wasmtime-$VERSION" apply "$PWD/vendor/wasmtime.patch"

if $check; then
  if ! diff -r "$work/wasmtime-$VERSION" vendor/wasmtime; then
    echo "vendor/wasmtime is not wasmtime $VERSION with vendor/wasmtime.patch:" \
      "run scripts/vendor-wasmtime.sh (and put any change of its own in the patch)" >&2
    exit 1
  fi
  echo "vendor/wasmtime is wasmtime $VERSION with vendor/wasmtime.patch"
else
  rm -rf vendor/wasmtime
  cp -r "$work/wasmtime-$VERSION" vendor/wasmtime
  echo "vendor/wasmtime: wasmtime $VERSION with vendor/wasmtime.patch"
fi
