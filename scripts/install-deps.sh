#!/usr/bin/env bash
# Installs what building and testing ctoken needs on Debian/Ubuntu, skipping what is present.
# Run as root (or with sudo). Usage: scripts/install-deps.sh [--all]
#   default: the compiler, CMake, Ninja and Catch2 for `cmake --workflow --preset default`
#   --all:   also clang (with its sanitizer runtimes), Google Benchmark and pkg-config for
#            the other presets and the benchmarks (what .ci/run uses)
set -euo pipefail

packages=(g++ cmake ninja-build catch2)
if [[ "${1:-}" == "--all" ]]; then
  packages+=(clang libclang-rt-14-dev libbenchmark-dev pkg-config)
fi

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]} == 0)); then
  exit 0
fi

echo "install-deps: installing ${missing[*]}"
if [[ $(id -u) -ne 0 ]]; then
  SUDO=sudo
else
  SUDO=
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
