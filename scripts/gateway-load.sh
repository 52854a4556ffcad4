#!/usr/bin/env bash
# gateway-load.sh [OUT] - goodput against offered load on scenario h
# (data/scenarios/h-gateway-hetero.scn): rr, fewest-waiting, gateway and the
# learned policies at each rate of RATES, one run per rate (seed SEED), as
# `make gateway-plot` runs it. Writes OUT/h-<rate>.json, OUT/gateway-load.dat
# (rate and each policy's goodput, TTFT p90 and E2E p90) and, with gnuplot,
# OUT/gateway-load.png.
#
# Environment: SIM (default build/default/bin/dlsched-sim), RATES (default
# "10 20 30 40 50 60 70" req/s), SEED (1), JOBS (2), PYTHON (python3).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-build/gateway-load}
: "${SIM:=build/default/bin/dlsched-sim}" "${RATES:=10 20 30 40 50 60 70}" "${SEED:=1}"
: "${JOBS:=2}" "${PYTHON:=python3}"
POLICIES=rr,fewest-waiting,gateway,qtable,dqn
[ -x "$SIM" ] || { echo "gateway-load: no simulator at $SIM (make all)" >&2; exit 2; }
mkdir -p "$OUT"
SCN=data/scenarios/h-gateway-hetero.scn
# one scenario file per rate beside the shipped one (its relative paths hold)
for r in $RATES; do
    sed "s/^rate = .*/rate = $r/; s/^name = .*/name = h-gateway-hetero-rate$r/" "$SCN" \
        >"$OUT/h-$r.scn"
done
export SIM SEED POLICIES OUT
printf '%s\n' $RATES | xargs -P "$JOBS" -I{} sh -c \
    '"$SIM" -q --seed "$SEED" -p "$POLICIES" --json "$OUT/h-{}.json" "$OUT/h-{}.scn" \
         >"$OUT/h-{}.txt" 2>&1 && echo "rate {}: done" || { echo "rate {}: FAILED" >&2; exit 1; }'
"$PYTHON" - "$OUT" $RATES <<'EOF'
import json, sys
out, rates = sys.argv[1], sys.argv[2:]
names = ["rr", "fewest-waiting", "gateway", "qtable", "dqn"]
with open(out + "/gateway-load.dat", "w") as f:
    f.write("# rate " + " ".join("%s_goodput %s_ttft_p90_s %s_e2e_p90_s" % (n, n, n)
                                 for n in names) + "\n")
    for r in rates:
        d = json.load(open("%s/h-%s.json" % (out, r)))
        pols = {p["name"]: p for p in d["policies"]}
        f.write(r + " " + " ".join("%.4f %.3f %.3f" % (pols[n]["goodput"],
                                                       pols[n]["ttft_p90_ms"] / 1000,
                                                       pols[n]["e2e_p90_ms"] / 1000)
                                   for n in names) + "\n")
EOF
if command -v gnuplot >/dev/null; then
    (cd "$OUT" && gnuplot <<'EOF'
set terminal png size 900,560
set output 'gateway-load.png'
set title "h-gateway-hetero: goodput against offered load (seed 1)"
set xlabel 'offered load (requests/s)'
set ylabel 'goodput (SLO-meeting requests/s)'
set key top left
set grid
plot x title 'offered' dt 3 lc rgb 'gray', \
     'gateway-load.dat' using 1:2 with linespoints lw 2 pt 7 title 'rr', \
     '' using 1:5 with linespoints lw 2 pt 5 title 'fewest-waiting', \
     '' using 1:8 with linespoints lw 2 pt 9 title 'gateway', \
     '' using 1:11 with linespoints lw 2 pt 11 dt 2 title 'qtable', \
     '' using 1:14 with linespoints lw 2 pt 13 dt 4 title 'dqn'
EOF
    )
    echo "gateway-load: $OUT/gateway-load.png"
else
    echo "gateway-load: gnuplot not found: data in $OUT/gateway-load.dat, no PNG"
fi
