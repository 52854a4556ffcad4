#!/usr/bin/env bash
# targets.sh [full|ci] - run dlsched-sim on the target set and check it with
# tests/sim/check_targets.py (the `make targets` and `make targets-ci` rules).
#
#   full  the shipped scenarios a-h x seeds 1-5, the generated scenarios
#         0..29, the generated edge scenarios 0..15 and the generated gateway
#         cases 0..9 of --random-seed 1 (one run each); every target is checked
#   ci    a, b, c, f x seeds 1, 2, the generated scenarios 0..5 and the
#         generated edge scenarios 0..3; the checker with --subset (only what
#         was run) --t1-only (T2, not met by this version, and G3 are printed
#         but do not fail CI), or with $CHECK_FLAGS
#
# Each run is one `dlsched-sim -q --json`, JOBS at a time (xargs -P), into
# OUT: <letter>-s<seed>.json for a shipped scenario (the checker reads the
# seed from the name), gen-<name>.json for a generated one (its name
# g<random-seed>-<index>-... says which).  The generated scenarios are
# written once with --write-scenarios (OUT/gen/; the gateway cases gw<seed>-
# <index>-... with --random-gateway) and each file is run on its
# own, which gives the same results as --random (the seeds are in the file)
# and lets the runs go in parallel.  A line per finished run with its wall
# time; the stderr/stdout of each run in OUT/log/; the checker's markdown
# tables, OUT/summary.json and OUT/plots/*.png at the end.
#
# Environment: SIM (default build/default/bin/dlsched-sim), TARGETS_OUT (default
# build/targets, build/targets/ci for ci), JOBS (2), PYTHON (python3), and
# to change the set: SCENARIOS (letters), SEEDS, RANDOM_N, RANDOM_EDGE_N,
# RANDOM_GATEWAY_N, RANDOM_SEED.
# Exit status: the checker's (1: a target missed), or 1 when a run failed.
set -euo pipefail
cd "$(dirname "$0")/.."

now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }

# ---- one run (called by xargs): NAME SCENARIO_FILE SEED|- ------------------
if [ "${1:-}" = "--run-one" ]; then
    name=$2 file=$3 seed=$4
    seedarg=()
    [ "$seed" = - ] || seedarg=(--seed "$seed")
    t0=$(now)
    rc=0
    "$SIM" -q "${seedarg[@]}" --json "$OUT/$name.json.part" "$file" \
        >"$OUT/log/$name.txt" 2>&1 || rc=$?
    t=$(secs "$t0" "$(now)")
    if [ $rc = 0 ] && [ -s "$OUT/$name.json.part" ]; then
        mv "$OUT/$name.json.part" "$OUT/$name.json"
        status=ok
    else
        rm -f "$OUT/$name.json.part"
        echo "$name" >>"$OUT/log/failed"
        status="FAILED (exit $rc; log $OUT/log/$name.txt)"
    fi
    {
        if command -v flock >/dev/null; then flock 9; fi
        echo "$name" >>"$OUT/log/done"
        n=$(wc -l <"$OUT/log/done")
        printf '[%2d/%d] %-34s %7s s  %s\n' "$n" "$TOTAL" "$name" "$t" "$status"
        if [ "$status" != ok ]; then tail -n 5 "$OUT/log/$name.txt" | sed 's/^/    /'; fi
    } 9>>"$OUT/log/lock"
    exit 0
fi

set_name=${1:-full}
case $set_name in
full)
    : "${SCENARIOS:=b e h a c d f g}" "${SEEDS:=1 2 3 4 5}" "${RANDOM_N:=30}"
    : "${RANDOM_EDGE_N:=16}" "${RANDOM_GATEWAY_N:=10}"
    OUT=${TARGETS_OUT:-build/targets}
    subset=() ;;
ci)
    : "${SCENARIOS:=b a c f}" "${SEEDS:=1 2}" "${RANDOM_N:=6}" "${RANDOM_EDGE_N:=4}"
    : "${RANDOM_GATEWAY_N:=0}"
    OUT=${TARGETS_OUT:-build/targets/ci}
    subset=(--subset --t1-only)
    # (CHECK_FLAGS replaces the checker's flags, e.g. make targets-gateway-ci's)
    [ -z "${CHECK_FLAGS:-}" ] || read -ra subset <<<"$CHECK_FLAGS" ;;
*)
    echo "usage: $0 [full|ci]" >&2; exit 2 ;;
esac
: "${RANDOM_SEED:=1}" "${JOBS:=2}" "${PYTHON:=python3}"
: "${SIM:=build/default/bin/dlsched-sim}"
[ -x "$SIM" ] || { echo "targets: no simulator at $SIM (make all)" >&2; exit 2; }

mkdir -p "$OUT"
rm -rf "$OUT/gen" "$OUT/log" "$OUT/plots" "$OUT/summary.json"
rm -f "$OUT"/*.json "$OUT"/*.json.part
mkdir -p "$OUT/log"
# every run with the same binary, even if the tree is rebuilt meanwhile
# (libdlsched is linked in statically)
cp "$SIM" "$OUT/log/dlsched-sim"
SIM_SRC=$SIM
SIM=$PWD/$OUT/log/dlsched-sim
case $OUT in /*) SIM=$OUT/log/dlsched-sim ;; esac

# the job list, the longest runs first (b and e take the longest, then the
# generated ones, which vary)
jobs=$OUT/log/jobs
: >"$jobs"
for s in $SCENARIOS; do
    f=$(ls data/scenarios/"$s"-*.scn 2>/dev/null | head -n 1) || true
    [ -n "$f" ] || { echo "targets: no data/scenarios/$s-*.scn" >&2; exit 2; }
    for seed in $SEEDS; do echo "$s-s$seed $f $seed" >>"$jobs"; done
done
if [ "$RANDOM_N" -gt 0 ] || [ "$RANDOM_GATEWAY_N" -gt 0 ]; then
    "$SIM" -c --random "$RANDOM_N" --random-gateway "$RANDOM_GATEWAY_N" \
        --random-seed "$RANDOM_SEED" \
        --write-scenarios "$OUT/gen" >"$OUT/log/generate.txt" 2>&1 \
        || { cat "$OUT/log/generate.txt" >&2; exit 2; }
    for i in $(seq 0 $((RANDOM_N - 1))); do
        f=$(ls "$OUT/gen/g$RANDOM_SEED-$i-"*.scn 2>/dev/null | head -n 1) || true
        [ -n "$f" ] || { echo "targets: generated scenario $i not written" >&2; exit 2; }
        echo "gen-$(basename "$f" .scn) $f -" >>"$jobs"
    done
    for i in $(seq 0 $((RANDOM_GATEWAY_N - 1))); do
        f=$(ls "$OUT/gen/gw$RANDOM_SEED-$i-"*.scn 2>/dev/null | head -n 1) || true
        [ -n "$f" ] || { echo "targets: generated gateway case $i not written" >&2; exit 2; }
        echo "gen-$(basename "$f" .scn) $f -" >>"$jobs"
    done
fi
if [ "$RANDOM_EDGE_N" -gt 0 ]; then
    "$SIM" -c --random-edge "$RANDOM_EDGE_N" --random-seed "$RANDOM_SEED" \
        --write-scenarios "$OUT/gen" >"$OUT/log/generate-edge.txt" 2>&1 \
        || { cat "$OUT/log/generate-edge.txt" >&2; exit 2; }
    for i in $(seq 0 $((RANDOM_EDGE_N - 1))); do
        f=$(ls "$OUT/gen/ge$RANDOM_SEED-$i-"*.scn 2>/dev/null | head -n 1) || true
        [ -n "$f" ] || { echo "targets: generated edge scenario $i not written" >&2; exit 2; }
        echo "gen-$(basename "$f" .scn) $f -" >>"$jobs"
    done
fi
TOTAL=$(wc -l <"$jobs")
export SIM OUT TOTAL

echo "targets ($set_name): $TOTAL runs of $SIM_SRC, $JOBS at a time, into $OUT/" \
     "(shipped: $SCENARIOS x seeds $SEEDS; generated: $RANDOM_N, $RANDOM_EDGE_N edge and" \
     "$RANDOM_GATEWAY_N gateway cases of --random-seed $RANDOM_SEED)"
t0=$(now)
xargs -P "$JOBS" -L 1 bash "$0" --run-one <"$jobs" || true
wall=$(secs "$t0" "$(now)")
echo "targets ($set_name): $TOTAL runs in $wall s wall time ($JOBS at a time)"
echo

rc=0
shopt -s nullglob
results=("$OUT"/*.json)
if [ ${#results[@]} = 0 ]; then
    echo "targets: no run gave results" >&2
    rc=1
else
    "$PYTHON" tests/sim/check_targets.py "${subset[@]}" --out "$OUT" "${results[@]}" || rc=$?
fi
if [ -s "$OUT/log/failed" ]; then
    echo
    echo "targets: $(wc -l <"$OUT/log/failed") run(s) failed: $(tr '\n' ' ' <"$OUT/log/failed")"
    [ $rc != 0 ] || rc=1
fi
echo "targets ($set_name): wall time $wall s; exit status $rc"
exit $rc
