#!/usr/bin/env bash
# Installs what building and testing ctoken needs on Debian/Ubuntu, skipping what is present.
# Run as root (or with sudo). Usage: scripts/install-deps.sh [--all]
#   default: the compiler, CMake, Ninja and Catch2 for `cmake --workflow --preset default`, and
#            SQLite, libcurl and pkg-config for the demo's database and outgoing-call rows
#   --all:   also clang (with its sanitizer runtimes), Google Benchmark, Asio and pkg-config for
#            the other presets and the benchmarks, Go (golang-go: the disconnect benchmark's
#            reference server), gnuplot (gnuplot-nox: the plots of scripts/perf-report.sh), and
#            for the browser test Debian's chromium,
#            Node.js with npm (when `node` / `npm` are not on the PATH) and `npm ci` in
#            tests/browser (what .ci/run uses)
set -euo pipefail
cd "$(dirname "$0")/.."

all=false
[[ "${1:-}" == "--all" ]] && all=true

packages=(g++ cmake ninja-build catch2 pkg-config libsqlite3-dev libcurl4-openssl-dev)
if $all; then
  packages+=(clang libclang-rt-14-dev libbenchmark-dev libasio-dev chromium golang-go gnuplot-nox libpq-dev postgresql libgrpc++-dev protobuf-compiler-grpc protobuf-compiler libprotobuf-dev)
fi

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if $all; then
  # By command, not by package: a Node.js from elsewhere (e.g. NodeSource, which bundles npm)
  # must not be replaced.
  command -v node >/dev/null 2>&1 || missing+=(nodejs)
  command -v npm >/dev/null 2>&1 || missing+=(npm)
fi

if ((${#missing[@]} > 0)); then
  echo "install-deps: installing ${missing[*]}"
  if [[ $(id -u) -ne 0 ]]; then
    SUDO=sudo
  else
    SUDO=
  fi
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

if $all; then
  # The browser test's playwright-core, exactly as package-lock.json says (run every time: the
  # apt packages may all be present while node_modules is not).
  echo "install-deps: npm ci in tests/browser"
  (cd tests/browser && npm ci --no-audit --no-fund --loglevel=error)
fi
