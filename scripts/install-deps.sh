#!/usr/bin/env bash
# Installs the Debian packages Flotilla builds and tests with, when missing.
# Idempotent: a machine that has everything does no network access at all.
set -euo pipefail

BUILD_PKGS=(
  build-essential cmake ninja-build pkg-config ccache
  libboost-dev libboost-graph-dev libeigen3-dev
  libprotobuf-dev protobuf-compiler
  libgtest-dev libgmock-dev libbenchmark-dev
  libyaml-cpp-dev libcli11-dev
  libjemalloc-dev  # the flotilla binary's allocator (FLOTILLA_JEMALLOC)
  nlohmann-json3-dev libssl-dev zlib1g-dev libzstd-dev
  gnuplot-nox
  busybox-static curl
  python3-kubernetes
  wrk haproxy
  clang-14 libclang-rt-14-dev
  etcd-server  # tests start their own etcd (tests/backends/etcd), serve --store etcd://
)
# docker.io is installed by scripts/ensure-docker.sh, only for the live path.

want=("${BUILD_PKGS[@]}" "$@")
missing=()
for p in "${want[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi

echo "install-deps: installing ${missing[*]}"
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
