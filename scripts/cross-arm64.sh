#!/bin/sh
# The aarch64 cross build's Check tests under qemu-user (make check-cross
# CROSS=aarch64-linux-gnu-). Usage: scripts/cross-arm64.sh TEST_BIN [SUITE...]
# No suites: the fixed CI subset below. SUITES=all: every suite in one run.
# Each suite runs on its own, under a wall-clock limit (SUITE_TIMEOUT, s).
#
# OPENBLAS_NUM_THREADS=1: Debian's OpenBLAS 0.3.21 (pthread) hangs in its
# thread-pool start-up under qemu-aarch64 7.2 when it may start threads.
# CK_FORK=no: Check's forked test children never finish under qemu-user
# (every suite hits the wall-clock limit; the same suites pass unforked), so
# the tests run in one process: a crash stops the suite, and Check's
# per-test timeouts do not apply (SUITE_TIMEOUT does).
set -eu
bin=${1:?usage: $0 TEST_BIN [SUITE...]}
shift
top=$(cd "$(dirname "$0")/.." && pwd)
triplet=${CROSS_TRIPLET:-aarch64-linux-gnu}
qemu=${QEMU:-qemu-aarch64}
command -v "$qemu" >/dev/null || { echo "$0: $qemu missing (apt-get install qemu-user)" >&2; exit 1; }
libdir=$(cd "$(dirname "$bin")/../lib" && pwd)
run() {
    env DLSCHED_TOP="$top" DLSCHED_SO="$libdir/libdlsched.so.1" DLSCHED_PLUGIN_PATH= \
        DLSCHED_TEST_PLUGINS="$(cd "$(dirname "$bin")" && pwd)/plugins" DLSCHED_CUDA_PLUGIN= \
        OPENBLAS_NUM_THREADS=1 CK_FORK=${CK_FORK:-no} CK_TIMEOUT_MULTIPLIER=${CK_TIMEOUT_MULTIPLIER:-10} \
        LD_LIBRARY_PATH="/usr/lib/$triplet/openblas-pthread:/usr/lib/$triplet:$libdir" \
        "$@" timeout "${SUITE_TIMEOUT:-300}" "$qemu" -L "/usr/$triplet" "$bin"
}
if [ "${SUITES:-}" = all ]; then
    start=$(date +%s)
    rc=0; run || rc=$?
    echo "all suites: rc=$rc, $(( $(date +%s) - start )) s under $qemu"
    exit $rc
fi
# the subset: the suites whose tests start no thread and fork no process.
# Under Debian's qemu-aarch64 7.2 on the CI host (kernel 6.18) an aarch64
# program's first clone() (pthread_create, fork) never returns: errors,
# checkpoint, exchange, threads, serving, guard, dqn_learn, blasinfo stall
# at their first threaded test
[ $# -gt 0 ] || set -- config rng tickets agent explore qtable replay dqn meta kernels
fail=""
total=$(date +%s)
for s in "$@"; do
    start=$(date +%s)
    rc=0; run CK_RUN_SUITE="$s" || rc=$?
    echo "suite $s: rc=$rc, $(( $(date +%s) - start )) s"
    [ $rc -eq 0 ] || fail="$fail $s"
done
echo "qemu-aarch64 suites: $* in $(( $(date +%s) - total )) s${fail:+; failed:$fail}"
[ -z "$fail" ]
