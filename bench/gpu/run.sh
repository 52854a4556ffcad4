#!/usr/bin/env bash
# bench/gpu/run.sh - everything the CUDA backend needs a GPU for, in one call
# (meant to finish well under 6 minutes on one H100/H200):
#   1. build the library, the CUDA plugin (CUDA=1), the tests and bench_cuda
#   2. the cuda test suite (parity with the CPU DQN, learning, checkpoints,
#      error paths), the meta suite (the core links no CUDA library) and the
#      dqn_learn suite with its agents on the GPU
#   3. compute-sanitizer memcheck over the small parity case
#   4. bench_cuda (steps/s and the GEMM floor) and PyTorch's same step
#   5. a short table, last
# Logs and JSON lines go to $OUT (default build/gpu-run), seven files:
# build.log (environment and build), test_cuda.log (both suites),
# memcheck.log, bench_cuda.jsonl, torch_step.jsonl, bench.err, summary.txt
# (the summary and the table). Exit status: 0 when every step passed.
# Where the GPU machine lacks OpenBLAS, Check or make (it reaches no package
# registry), run bench/gpu/fetch-deps.sh here first and carry .gpu-deps:
#   bash bench/gpu/fetch-deps.sh                      (here)
#   bash bench/gpu/run.sh                             (there, .gpu-deps carried)
set -uo pipefail
cd "$(dirname "$0")/../.."
OUT=${OUT:-build/gpu-run}
mkdir -p "$OUT"
J=$(nproc 2>/dev/null || echo 4)
T0=$(date +%s)
fail=0
declare -a status=()

note() { printf '\n==== [%3ds] %s\n' "$(($(date +%s) - T0))" "$*"; }
record() { # name rc detail
    status+=("$(printf '%-28s %-5s %s' "$1" "$([ "$2" = 0 ] && echo ok || echo FAIL)" "$3")")
    [ "$2" = 0 ] || fail=1
}

# the toolkit: CUDA_HOME, else /usr/local/cuda, else the nvcc on PATH
if [ -z "${CUDA_HOME:-}" ]; then
    CUDA_HOME=/usr/local/cuda
    if [ ! -x "$CUDA_HOME/bin/nvcc" ] && command -v nvcc >/dev/null; then
        CUDA_HOME=$(dirname "$(dirname "$(command -v nvcc)")")
    fi
fi
export CUDA_HOME

note "environment"
{
    date -u
    nvidia-smi -L 2>&1
    nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.max.sm --format=csv 2>&1
    echo "CUDA_HOME=$CUDA_HOME"
    "$CUDA_HOME/bin/nvcc" --version 2>&1 | tail -2
    ls "$CUDA_HOME"/lib64/libcublas.so* 2>&1
    python3 -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda)' 2>&1
    command -v compute-sanitizer || ls "$CUDA_HOME/bin/compute-sanitizer" 2>&1
} | tee "$OUT/build.log"

# Build dependencies (OpenBLAS, Check, zlib headers, make): the machine's
# own, else the .deb packages of .gpu-deps/ (bench/gpu/fetch-deps.sh, carried
# along), unpacked under /tmp and passed to make explicitly.
note "build dependencies"
MAKE=make
MAKEVARS=()
have() { # header, link flags
    printf '#include <%s>\nint main(void) { return 0; }\n' "$1" |
        cc -x c - -o /dev/null $2 >/dev/null 2>&1
}
if [ "${DLSCHED_USE_DEBS:-0}" = 1 ] || ! command -v make >/dev/null || ! have cblas.h -lopenblas ||
    ! have check.h "" || ! have zlib.h -lz; then
    if ls .gpu-deps/*.deb >/dev/null 2>&1; then
        D=/tmp/dlsched-deps
        A=$D/usr/lib/x86_64-linux-gnu
        mkdir -p "$D"
        for f in .gpu-deps/*.deb; do
            if command -v dpkg >/dev/null; then
                dpkg -x "$f" "$D"
            else
                (cd "$D" && ar p "$OLDPWD/$f" data.tar.xz | tar -xJ)
            fi
        done
        export LD_LIBRARY_PATH="$A/openblas-pthread:$A${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
        command -v make >/dev/null || MAKE=$D/usr/bin/make
        MAKEVARS=("BLAS_CFLAGS=-I$D/usr/include/x86_64-linux-gnu/openblas-pthread -I$D/usr/include"
            "BLAS_LIBS=-L$A/openblas-pthread -lopenblas -L$A -Wl,-rpath-link,$A"
            "ZLIB_LIBS=-L$A -lz" "CHECK_CFLAGS=-I$D/usr/include"
            "CHECK_LIBS=-L$A -lcheck_pic -lsubunit -lrt -lm -lpthread")
        echo "using the carried packages of .gpu-deps/, unpacked in $D"
    else
        echo "OpenBLAS, Check, zlib headers or make are missing and .gpu-deps/ was not carried:"
        echo "run bench/gpu/fetch-deps.sh on the development machine and carry .gpu-deps"
    fi
else
    echo "the machine's own OpenBLAS, Check and zlib"
fi

note "build (CUDA=1, -Werror)"
TESTS_PLUGINS="build/default/tests/plugins/libdlsched_cuda.so build/default/tests/plugins/abi/libdlsched_cuda.so build/default/tests/plugins/size/libdlsched_cuda.so build/default/tests/plugins/fail/libdlsched_cuda.so"
timeout 240 "$MAKE" -j"$J" CUDA=1 WERROR=1 ${MAKEVARS[@]+"${MAKEVARS[@]}"} all build/default/tests/check_dlsched \
    build/default/bench/bench_cuda $TESTS_PLUGINS >>"$OUT/build.log" 2>&1
rc=$?
tail -5 "$OUT/build.log"
record "build (-Werror)" "$rc" "log: build.log"
if [ "$rc" != 0 ]; then
    # a warning of this machine's compilers must not cost the GPU run
    grep -E 'error|warning' "$OUT/build.log" | head -20
    note "build again without -Werror"
    timeout 240 "$MAKE" -j"$J" CUDA=1 ${MAKEVARS[@]+"${MAKEVARS[@]}"} all \
        build/default/tests/check_dlsched build/default/bench/bench_cuda $TESTS_PLUGINS \
        >>"$OUT/build.log" 2>&1
    rc=$?
    record "build (warnings allowed)" "$rc" "log: build.log"
fi
if [ "$rc" != 0 ]; then
    tail -40 "$OUT/build.log"
    printf '\n%s\n' "${status[@]}"
    exit 1
fi
readelf -d lib/libdlsched_cuda.so | grep -E 'NEEDED|RUNPATH' | tee -a "$OUT/build.log"

export DLSCHED_TOP=$PWD DLSCHED_SO=$PWD/lib/libdlsched.so.1 DLSCHED_PLUGIN_PATH= \
    DLSCHED_TEST_PLUGINS=$PWD/build/default/tests/plugins \
    DLSCHED_CUDA_PLUGIN=$PWD/lib/libdlsched_cuda.so

note "cuda and meta test suites"
: >"$OUT/test_cuda.log"
for suite in cuda meta; do
    CK_RUN_SUITE=$suite timeout 180 ./build/default/tests/check_dlsched >"$OUT/suite.tmp" 2>&1
    rc=$?
    cat "$OUT/suite.tmp" >>"$OUT/test_cuda.log"
    grep -E '^[0-9]+%|:[FE]:|skipped|check_cuda:' "$OUT/suite.tmp"
    record "tests: $suite" "$rc" "$(grep -E '^[0-9]+%' "$OUT/suite.tmp" | tail -1)"
    rm -f "$OUT/suite.tmp"
done
# the DQN learning suite again, its agents on the GPU (tst_agent() of
# tests/tests.h; per=1 specs stay on the CPU)
DLSCHED_TEST_DEVICE=cuda DLSCHED_PLUGIN_PATH=$DLSCHED_CUDA_PLUGIN CK_RUN_SUITE=dqn_learn \
    timeout 180 ./build/default/tests/check_dlsched >"$OUT/suite.tmp" 2>&1
rc=$?
cat "$OUT/suite.tmp" >>"$OUT/test_cuda.log"
grep -E '^[0-9]+%|:[FE]:|bandit' "$OUT/suite.tmp"
record "tests: dqn_learn on the GPU" "$rc" "$(grep -E '^[0-9]+%' "$OUT/suite.tmp" | tail -1)"
rm -f "$OUT/suite.tmp"
if grep -q 'GPU tests skipped' "$OUT/test_cuda.log"; then
    record "GPU present for the tests" 1 "the cuda suite skipped its GPU tests"
fi

note "compute-sanitizer memcheck: cuda suite, parity case"
CS=$(command -v compute-sanitizer || echo "$CUDA_HOME/bin/compute-sanitizer")
if [ -x "$CS" ]; then
    CK_RUN_SUITE=cuda CK_RUN_CASE=parity CK_FORK=no timeout 150 "$CS" --tool memcheck \
        --leak-check no --error-exitcode 99 ./build/default/tests/check_dlsched \
        >"$OUT/memcheck.log" 2>&1
    rc=$?
    tail -4 "$OUT/memcheck.log"
    record "memcheck (parity case)" "$rc" "$(grep -E 'ERROR SUMMARY' "$OUT/memcheck.log" | tail -1)"
else
    record "memcheck (parity case)" 1 "compute-sanitizer not found"
fi

note "benchmarks"
timeout 150 ./build/default/bench/bench_cuda lib/libdlsched_cuda.so >"$OUT/bench_cuda.jsonl" \
    2>"$OUT/bench.err"
rc=$?
cat "$OUT/bench_cuda.jsonl" "$OUT/bench.err"
record "bench_cuda" "$rc" "bench_cuda.jsonl"
PYTHONUNBUFFERED=1 timeout 150 python3 bench/gpu/torch_step.py >"$OUT/torch_step.jsonl" \
    2>>"$OUT/bench.err"
rc=$?
cat "$OUT/torch_step.jsonl"
tail -5 "$OUT/bench.err"
record "torch_step" "$rc" "torch_step.jsonl"

note "table"
python3 - "$OUT/bench_cuda.jsonl" "$OUT/torch_step.jsonl" >"$OUT/table.tmp" <<'EOF'
import json, sys
def load(p):
    try:
        return [json.loads(l) for l in open(p) if l.strip().startswith("{")]
    except OSError:
        return []
ours, torch = load(sys.argv[1]), load(sys.argv[2])
head = next((l for l in ours if "device" in l and "net" not in l), {})
th = next((l for l in torch if "available" in l), {"available": False, "reason": "no output"})
print("device: %s; date: %s" % (head.get("device", "?"), head.get("date", "?")))
if th.get("available"):
    print("PyTorch %s (CUDA %s), FP32 (TF32 off)" % (th.get("torch"), th.get("cuda")))
else:
    print("PyTorch: not available (%s)" % th.get("reason"))
print()
print("| net | batch | math | libdlsched steps/s | GEMM floor steps/s | of floor | torch eager | torch graph | x eager | x graph |")
print("| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
def tsps(net, b, v):
    for l in torch:
        if l.get("net") == net and l.get("batch") == b and l.get("variant") == v:
            return l.get("steps_per_s")
    return None
f = lambda x, d=0: ("%.*f" % (d, x)) if isinstance(x, (int, float)) else "n/a"
for l in ours:
    if "net" not in l:
        continue
    net, b, s = l["net"], l["batch"], l.get("steps_per_s")
    fl = l.get("gemm_floor_steps_per_s")
    te, tg = (tsps(net, b, "eager"), tsps(net, b, "cuda_graph")) if l.get("math") == "fp32" else (None, None)
    print("| %s | %d | %s | %s | %s | %s | %s | %s | %s | %s |" % (
        net, b, l.get("math"), f(s), f(fl), f(100.0 * s / fl if s and fl else None) + "%",
        f(te), f(tg), f(s / te if s and te else None, 2), f(s / tg if s and tg else None, 2)))
print()
print("targets (issue 7): >= 5x torch eager for 16-256-256-8 at batch 64-256; >= 60% of the GEMM floor at batch 4096")
EOF
rc=$?
record "table" "$rc" "in summary.txt"
{
    printf '\n==== summary (%ds)\n' "$(($(date +%s) - T0))"
    printf '%s\n' "${status[@]}"
    echo
    cat "$OUT/table.tmp"
} | tee "$OUT/summary.txt"
rm -f "$OUT/table.tmp"
exit $fail
