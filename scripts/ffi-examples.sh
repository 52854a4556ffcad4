#!/usr/bin/env bash
# ffi-examples.sh - build and run the Rust and Go examples (examples/rust,
# examples/go: examples/routing.c's learning loop over the C ABI) against the
# library built in this tree (run `make` first; `make ffi-examples` does both).
#
# Uses Debian's toolchains: /usr/bin/cargo with /usr/bin/rustc (packages
# cargo, rustc) and /usr/bin/go (golang-go), installing them with apt-get
# when they are missing and this runs as root or with password-less sudo;
# otherwise it stops with the command to run. CARGO, RUSTC and GO override
# the programs (e.g. a rustup toolchain).
#
# pkg-config finds the tree's library through build/ffi/pkgconfig/dlsched.pc,
# written here from src/dlsched.pc.in with prefix = this tree (lib/dlsched.pc
# names the install prefix, /usr/local by default). Everything is written
# under build/: build/rust (cargo's target dir and CARGO_HOME), build/go
# (GOCACHE, GOPATH, the binary), build/ffi (the pc file, the outputs).
# Nothing goes to $HOME and nothing is fetched: cargo runs --offline
# --locked, go with GOPROXY=off (neither example has dependencies).
#
# Each program exits non-zero when a libdlsched call fails or the learned
# policy does not beat uniform random routing; this script also checks that
# each binary loads lib/libdlsched.so.1 of this tree and that both print the
# same results (same seeds, same library: the same numbers).
set -euo pipefail
cd "$(dirname "$0")/.."
top=$(pwd -P)
export DEBIAN_FRONTEND=noninteractive

CARGO=${CARGO:-/usr/bin/cargo}
RUSTC=${RUSTC:-/usr/bin/rustc}
GO=${GO:-/usr/bin/go}
PKG_CONFIG=${PKG_CONFIG:-pkg-config}

say() { printf '\n==== %s\n' "$*"; }
die() { echo "ffi-examples: $*" >&2; exit 1; }
now() { date +%s.%N; }
took() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.2f s", b - a }'; }

# ---- the library of this tree ---------------------------------------------------
case "$top" in
*[[:space:]]*) die "the tree's path has white space ($top): pkg-config flags cannot carry it; use a checkout without" ;;
esac
[ -f lib/libdlsched.so.1 ] ||
    die "lib/libdlsched.so.1 is missing: build the library first (make -j2), or run make ffi-examples"

# ---- toolchains -----------------------------------------------------------------
missing=""
command -v "$PKG_CONFIG" >/dev/null 2>&1 || missing="$missing pkg-config"
command -v cc >/dev/null 2>&1 || missing="$missing gcc" # cargo links and cgo compiles with it
[ -x "$(command -v "$CARGO" 2>/dev/null)" ] || missing="$missing cargo"
[ -x "$(command -v "$RUSTC" 2>/dev/null)" ] || missing="$missing rustc"
[ -x "$(command -v "$GO" 2>/dev/null)" ] || missing="$missing golang-go"
if [ -n "$missing" ]; then
    cmd="apt-get update && apt-get install -y --no-install-recommends$missing"
    if ! command -v apt-get >/dev/null 2>&1; then
        die "missing:$missing (and no apt-get here): install them, or set CARGO, RUSTC, GO"
    elif [ "$(id -u)" = 0 ]; then
        echo "ffi-examples: installing$missing"
        sh -c "$cmd" || die "could not install$missing"
    elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
        echo "ffi-examples: installing$missing with sudo"
        sudo sh -c "DEBIAN_FRONTEND=noninteractive $cmd" || die "could not install$missing"
    else
        echo "ffi-examples: missing packages:$missing" >&2
        echo "ffi-examples: run this, then try again:" >&2
        echo "    sudo sh -c '$cmd'" >&2
        exit 1
    fi
    for p in "$CARGO" "$RUSTC" "$GO"; do
        [ -x "$(command -v "$p" 2>/dev/null)" ] || die "$p is still missing after installing$missing"
    done
fi
CARGO=$(command -v "$CARGO") RUSTC=$(command -v "$RUSTC") GO=$(command -v "$GO")

# ---- pkg-config: a dlsched.pc whose prefix is this tree -------------------------
pcdir=$top/build/ffi/pkgconfig
mkdir -p "$pcdir"
version=$(sed -n 's/^Version: *//p' lib/dlsched.pc 2>/dev/null || true)
if [ -z "$version" ]; then # lib/dlsched.pc not built: the header's numbers
    version=$(awk '/^#define DLSCHED_VERSION_(MAJOR|MINOR|PATCH) / { v = v sep $3; sep = "." }
                   END { print v }' include/dlsched.h)
fi
sed -e "s|@PREFIX@|$top|" -e "s|@LIBDIR@|$top/lib|" -e "s|@INCLUDEDIR@|$top/include|" \
    -e "s|@VERSION@|$version|" src/dlsched.pc.in >"$pcdir/dlsched.pc.tmp"
mv "$pcdir/dlsched.pc.tmp" "$pcdir/dlsched.pc"
export PKG_CONFIG PKG_CONFIG_PATH="$pcdir${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}"
unset PKG_CONFIG_SYSROOT_DIR # the pc file names real paths
[ "$("$PKG_CONFIG" --variable=libdir dlsched)" = "$top/lib" ] ||
    die "pkg-config finds another dlsched.pc first: $("$PKG_CONFIG" --path dlsched 2>&1)"

say "libdlsched $version of this tree: $("$PKG_CONFIG" --cflags --libs dlsched)"
echo "rust: $("$RUSTC" --version), $("$CARGO" --version) ($RUSTC, $CARGO)"
echo "go:   $("$GO" version) ($GO)"

# loads [VAR=value ...] BINARY: the libdlsched.so.1 the binary loads
loads() { env "${@:1:$#-1}" ldd "${!#}" | awk '$1 == "libdlsched.so.1" { print $3 }'; }
out=$top/build/ffi
start=$(now)

# ---- Rust: examples/rust --------------------------------------------------------
say "Rust: build (cargo --offline --locked, target dir build/rust)"
t=$(now)
CARGO_HOME=$top/build/rust/cargo-home CARGO_TARGET_DIR=$top/build/rust RUSTC=$RUSTC \
    "$CARGO" build --offline --locked --release --manifest-path examples/rust/Cargo.toml
echo "built in $(took "$t")"
rust_bin=$top/build/rust/release/dlsched-routing
[ "$(loads "$rust_bin")" = "$top/lib/libdlsched.so.1" ] ||
    die "$rust_bin loads '$(loads "$rust_bin")', not $top/lib/libdlsched.so.1 (its run path)"
say "Rust: run (run path $top/lib)"
t=$(now)
"$rust_bin" | tee "$out/rust.out"
echo "ran in $(took "$t")"

# ---- Go: examples/go ------------------------------------------------------------
say "Go: build (cgo, pkg-config: dlsched; GOCACHE and GOPATH under build/go)"
t=$(now)
export GOCACHE=$top/build/go/cache GOPATH=$top/build/go/path GOENV=off GOPROXY=off \
    GOTOOLCHAIN=local GO111MODULE=on CGO_ENABLED=1
(cd examples/go && "$GO" vet . && "$GO" build -o "$top/build/go/dlsched-routing" .)
echo "built in $(took "$t")"
go_bin=$top/build/go/dlsched-routing
ldpath="LD_LIBRARY_PATH=$top/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
[ "$(loads "$ldpath" "$go_bin")" = "$top/lib/libdlsched.so.1" ] ||
    die "$go_bin loads '$(loads "$ldpath" "$go_bin")', not $top/lib/libdlsched.so.1"
say "Go: run (LD_LIBRARY_PATH=$top/lib; GODEBUG=cgocheck=2: every pointer passed to C checked)"
t=$(now)
env "$ldpath" GODEBUG=cgocheck=2 "$go_bin" | tee "$out/go.out"
echo "ran in $(took "$t")"

# ---- the two agree ----------------------------------------------------------------
say "Rust and Go results"
if ! diff <(tail -n +2 "$out/rust.out") <(tail -n +2 "$out/go.out"); then
    die "the Rust and Go examples disagree (diff above): one of the two bindings passes something else"
fi
echo "identical (after the first line); ffi-examples passed in $(took "$start")"
