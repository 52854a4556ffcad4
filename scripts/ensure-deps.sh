#!/bin/sh
# ensure-deps.sh PROFILE - make sure the Debian/Ubuntu packages a make target
# needs are installed. Installs them itself when run as root or with
# password-less sudo; otherwise stops with the exact command to run.
#   build: compiler, make, pkg-config, OpenBLAS
#   check: build + Check + mandoc
#   abi:   abigail-tools
#   fuzz:  clang with its libFuzzer runtime
#   demo:  build + gnuplot (PNG plots of the simulator)
#   python: python3 with venv (the Python package's tests and benchmarks)
#   epp-native: g++, gRPC C++ and protoc (dlsched-epp's native front end)
set -u
profile=${1:-build}
case "$profile" in
build) pkgs="build-essential pkg-config libopenblas-dev zlib1g-dev" ;;
check) pkgs="build-essential pkg-config libopenblas-dev zlib1g-dev check mandoc" ;;
abi) pkgs="abigail-tools" ;;
demo) pkgs="build-essential pkg-config libopenblas-dev zlib1g-dev gnuplot-nox" ;;
fuzz) pkgs="clang libclang-rt-14-dev libopenblas-dev" ;;
python) pkgs="python3 python3-venv" ;;
epp-native) pkgs="g++ pkg-config libgrpc++-dev libprotobuf-dev protobuf-compiler protobuf-compiler-grpc" ;;
*) echo "ensure-deps.sh: unknown profile '$profile'" >&2; exit 2 ;;
esac

if ! command -v dpkg-query >/dev/null 2>&1; then
    # not Debian-like: trust the tools to be there, the build says otherwise
    exit 0
fi
missing=""
for p in $pkgs; do
    st=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null)
    case "$st" in
    *"install ok installed"*) ;;
    *) missing="$missing $p" ;;
    esac
done
[ -z "$missing" ] && exit 0

cmd="apt-get update && apt-get install -y --no-install-recommends$missing"
if [ "$(id -u)" = 0 ]; then
    echo "ensure-deps: installing$missing"
    sh -c "DEBIAN_FRONTEND=noninteractive $cmd" && exit 0
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    echo "ensure-deps: installing$missing with sudo"
    sudo sh -c "DEBIAN_FRONTEND=noninteractive $cmd" && exit 0
fi
echo "ensure-deps: missing packages:$missing" >&2
echo "ensure-deps: run this, then try again:" >&2
echo "    sudo sh -c '$cmd'" >&2
exit 1
