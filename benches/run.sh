#!/usr/bin/env bash
# The benchmark, one command: installs the load generator, the comparison proxies (and valgrind) from
# the distribution's packages when it can, builds release binaries and the plugins, then
# runs benches/harness.py (arguments are passed on, e.g. --rounds 3 --seconds 5).
set -euo pipefail
cd "$(dirname "$0")/.."

source scripts/build-tools.sh

missing=()
command -v h2load >/dev/null || missing+=(nghttp2-client)
command -v nginx >/dev/null || missing+=(nginx-light)
command -v haproxy >/dev/null || missing+=(haproxy)
# For benches/instructions.py (instructions per call under callgrind), not the harness.
command -v valgrind >/dev/null || missing+=(valgrind)
if ((${#missing[@]})) && ! install_packages "${missing[@]}"; then
  echo "could not install ${missing[*]} (needs root and apt-get): the harness measures what is there"
fi
command -v h2load >/dev/null || { echo "h2load is required for the unary workloads" >&2; exit 1; }

scripts/build-plugins.sh >/dev/null
cargo build --release -q -p sluice -p sluice-bench
python3 benches/harness.py "$@"
