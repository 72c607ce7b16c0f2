#!/usr/bin/env bash
# Sourced by the setup scripts: the build tools beyond Rust's that the workspace needs — a C
# compiler (ring, wasmtime's helpers) and make (jemalloc, built from source for the sluice
# binary). Installs what is missing from the distribution's packages when it can (root and
# apt-get), else stops with what to install.
missing_tools=()
command -v cc >/dev/null || missing_tools+=(gcc)
command -v make >/dev/null || missing_tools+=(make)
if ((${#missing_tools[@]})); then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "== setup: installing ${missing_tools[*]} from the distribution's packages"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing_tools[@]}" >/dev/null
  else
    echo "missing build tools: ${missing_tools[*]} (install them, e.g. apt-get install ${missing_tools[*]})" >&2
    exit 1
  fi
fi
