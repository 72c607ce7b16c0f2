#!/usr/bin/env bash
# The benchmark, one command: installs the load generator, the comparison proxies (and valgrind) from
# the distribution's packages when it can, builds release binaries and the plugins, then
# runs benches/harness.py (arguments are passed on, e.g. --rounds 3 --seconds 5).
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
command -v h2load >/dev/null || missing+=(nghttp2-client)
command -v nginx >/dev/null || missing+=(nginx-light)
command -v haproxy >/dev/null || missing+=(haproxy)
# For benches/instructions.py (instructions per call under callgrind), not the harness.
command -v valgrind >/dev/null || missing+=(valgrind)
if ((${#missing[@]})); then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "installing ${missing[*]} from the distribution's packages"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}" >/dev/null ||
      echo "could not install ${missing[*]}: the harness measures what is there"
  else
    echo "not installed and cannot install (needs root and apt-get): ${missing[*]}"
  fi
fi
command -v h2load >/dev/null || { echo "h2load is required for the unary workloads" >&2; exit 1; }

source scripts/build-tools.sh
scripts/build-plugins.sh >/dev/null
cargo build --release -q -p sluice -p sluice-bench
python3 benches/harness.py "$@"
