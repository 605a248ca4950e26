#!/usr/bin/env bash
# Installs exactly the Debian packages ferry needs to build, test, demo and
# benchmark. Idempotent: when every package is already installed it touches
# nothing (no apt-get at all). Otherwise it runs `apt-get update` once and
# installs only the missing packages. Uses sudo only when not root.
# Recommends are installed on purpose (apt's default): python3-torch recommends
# libtorch-dev, whose c10 headers/library the extension may link against.
#
#   scripts/install-deps.sh          install what is missing
#   scripts/install-deps.sh --check  exit 1 (and list them) if any are missing
set -euo pipefail

PACKAGES=(
  # toolchain
  build-essential cmake ninja-build pkg-config
  clang libclang-rt-14-dev  # make fuzz / fuzz-smoke / test-tsan: libFuzzer, sanitizer runtimes
  clang-format  # make format / format-check (version 14)
  # C++ libraries
  libprotobuf-dev protobuf-compiler libasio-dev pybind11-dev libdlpack-dev
  libgtest-dev libgmock-dev libbenchmark-dev libgloo-dev libucx-dev
  libcereal-dev  # C++ API: serialization of arguments and results
  # Python side (the venv is made from /usr/bin/python3 --system-site-packages)
  python3-dev python3-venv python3-numpy python3-pytest python3-cloudpickle
  python3-distributed python3-torch python3-matplotlib
  python3-aiohttp python3-prometheus-client  # ferry dashboard: its web server, /metrics
  chromium  # the dashboard's test loads the page in headless Chromium
  mypy  # make typecheck (mypy.ini)
  # make test-cluster: namespace hosts (ip netns, veth, bridge; tc for link shaping; unshare)
  iproute2 util-linux
)

missing=()
for pkg in "${PACKAGES[@]}"; do
  status=$(dpkg-query -W -f='${db:Status-Status}' "$pkg" 2>/dev/null || true)
  if [[ "$status" != "installed" ]]; then
    missing+=("$pkg")
  fi
done

if [[ ${#missing[@]} -eq 0 ]]; then
  echo "deps: all ${#PACKAGES[@]} Debian packages present; skipping apt"
  exit 0
fi

echo "deps: missing ${#missing[@]} package(s): ${missing[*]}"
if [[ "${1:-}" == "--check" ]]; then
  exit 1
fi

SUDO=()
if [[ $(id -u) -ne 0 ]]; then
  if ! command -v sudo >/dev/null 2>&1; then
    echo "deps: not root and sudo is not available; install as root:" >&2
    echo "  apt-get install -y ${missing[*]}" >&2
    exit 1
  fi
  SUDO=(sudo)
fi

"${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update
"${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive \
  apt-get install -y "${missing[@]}"
echo "deps: installed ${missing[*]}"
