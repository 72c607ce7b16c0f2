#!/usr/bin/env bash
# Sourced by the setup scripts: the build tools beyond Rust's that the workspace needs — a C
# compiler (ring, wasmtime's helpers) and make (jemalloc, built from source for the sluice
# binary). Installs what is missing from the distribution's packages when it can (root and
# apt-get), else stops with what to install. Also defines `install_packages` for the
# scripts that install more.

# Installs the distribution packages given, when this runs as root where apt-get is;
# fails when it cannot, or when apt-get does.
install_packages() {
  [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null || return 1
  echo "== setup: installing $* from the distribution's packages"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@" >/dev/null
}

missing_tools=()
command -v cc >/dev/null || missing_tools+=(gcc)
command -v make >/dev/null || missing_tools+=(make)
if ((${#missing_tools[@]})) && ! install_packages "${missing_tools[@]}"; then
  echo "missing build tools: ${missing_tools[*]} (install them, e.g. apt-get install ${missing_tools[*]})" >&2
  exit 1
fi
