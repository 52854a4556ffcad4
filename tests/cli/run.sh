#!/bin/sh
# tests/cli/run.sh - end-to-end tests of the dlsched command-line tool
#
#   sh tests/cli/run.sh ./build/default/bin/dlsched      (run by `make check`)
#
# A 2-state bandit with a known answer (n_features=1, two actions: action 1
# is best in state 0.25, action 0 in state 0.75), logged by a policy that
# mostly picks the wrong action, goes through train-offline -> inspect -> q
# -> eval; then malformed CSVs, corrupt checkpoints and bad arguments;
# then doctor (its findings with OpenBLAS's core forced where the CPU allows).
# One line per check; the last line is "N passed, M failed"; the exit status
# is non-zero when M > 0.

if [ $# -ne 1 ]; then
    echo "usage: sh tests/cli/run.sh PATH/TO/dlsched" >&2
    exit 2
fi
case $1 in
/*) T=$1 ;;
*) T=$(pwd)/$1 ;;
esac
if [ ! -x "$T" ]; then
    echo "run.sh: '$T' is not an executable" >&2
    exit 2
fi
HEADER=$(dirname "$0")/../../include/dlsched.h
LC_ALL=C
export LC_ALL

D=$(mktemp -d "${TMPDIR:-/tmp}/dlsched-cli.XXXXXX") || exit 2
trap 'rm -rf "$D"' EXIT
trap 'rm -rf "$D"; exit 130' INT TERM

PASS=0
FAIL=0
ok() {
    PASS=$((PASS + 1))
    echo "ok   - $1"
}
bad() {
    FAIL=$((FAIL + 1))
    echo "FAIL - $1"
    if [ -n "${2:-}" ]; then
        printf '%s\n' "$2" | sed -n '1,12s/^/       | /p'
    fi
}

# run CMD...: sets RC, OUT (stdout), ERR (stderr); a crash or a sanitizer
# report is a failure of its own
run() {
    "$@" >"$D/out" 2>"$D/err"
    RC=$?
    OUT=$(cat "$D/out")
    ERR=$(cat "$D/err")
    if [ "$RC" -gt 2 ] || grep -E 'Sanitizer|runtime error:' "$D/err" >/dev/null; then
        bad "crash or sanitizer report (exit $RC): $(echo "$*" | cut -c 1-100)" "$ERR"
    fi
}

# check_rc WANT NAME
check_rc() {
    if [ "$RC" = "$1" ]; then ok "$2 (exit $RC)"; else bad "$2: exit $RC, wanted $1" "$OUT
$ERR"; fi
}

# has TEXT PATTERN NAME: fixed-string search
has() {
    if printf '%s\n' "$1" | grep -F -e "$2" >/dev/null; then ok "$3"; else bad "$3: no '$2' in" "$1"; fi
}

# near A B TOL NAME
near() {
    if awk -v a="$1" -v b="$2" -v t="$3" 'BEGIN { d = a - b; if (d < 0) d = -d; exit !(a != "" && d <= t) }'; then
        ok "$4 ($1 vs $2)"
    else
        bad "$4: got '$1', wanted $2 +- $3"
    fi
}

# field NAME: the first word after "NAME:" in $OUT
field() {
    printf '%s\n' "$OUT" | awk -v k="$1:" '$1 == k { print $2; exit }'
}

# ---- data: the logged bandit -----------------------------------------------------
# state 0.25: logged action 0 with p 0.7, 1 with p 0.3; reward 1 for action 1, 0.2 for 0
# state 0.75: logged action 0 with p 0.6, 1 with p 0.4; reward 0.8 for action 0, 0.1 for 1
# plus deterministic noise in [-0.1, 0.1]
awk 'BEGIN {
    print "s0,action,reward,n0,done,probability"
    for (i = 0; i < 400; i++) {
        s = (i % 2) ? 0.75 : 0.25
        k = int(i / 2) % 10
        if (s == 0.25) { a = (k < 7) ? 0 : 1; p = (a == 0) ? 0.7 : 0.3; r = (a == 1) ? 1.0 : 0.2 }
        else           { a = (k < 6) ? 0 : 1; p = (a == 0) ? 0.6 : 0.4; r = (a == 0) ? 0.8 : 0.1 }
        r += ((i * 7) % 5 - 2) * 0.05
        printf "%s,%d,%.4f,%s,1,%s\n", s, a, r, s, p
    }
}' >"$D/bandit.csv"

# the estimates of the known-best policy, from the same CSV, by column name
awk -F, 'NR == 1 { for (j = 1; j <= NF; j++) c[$j] = j; next }
{
    s = $c["s0"]; a = $c["action"]; r = $c["reward"]; p = $c["probability"]
    best = (s < 0.5) ? 1 : 0
    m = (a == best) ? 1 : 0
    n++; agree += m; logged += r; ips += r * m / p; w += m / p; wr += r * m / p
}
END { printf "%.9f %.9f %.9f %.9f %d\n", agree / n, logged / n, ips / n, wr / w, n }' \
    "$D/bandit.csv" >"$D/expect"
read -r X_AGREE X_LOGGED X_IPS X_SNIPS X_N <"$D/expect"

QCFG="algo=qtable n_features=1 n_actions=2"

# ---- version, help, usage ------------------------------------------------------
run "$T" --version
check_rc 0 "--version"
V=$(printf '%s\n' "$OUT" | awk '{ print $NF }')
if [ -r "$HEADER" ]; then
    WANT=$(awk '/^#define DLSCHED_VERSION_(MAJOR|MINOR|PATCH) / { v = v (v == "" ? "" : ".") $3 } END { print v }' "$HEADER")
    if [ "$V" = "$WANT" ]; then ok "--version prints $WANT"; else bad "--version printed '$OUT', wanted $WANT"; fi
else
    case $V in
    [0-9]*.[0-9]*.[0-9]*) ok "--version prints a version ($V)" ;;
    *) bad "--version printed '$OUT'" ;;
    esac
fi
run "$T" --help
check_rc 0 "--help"
has "$OUT" "train-offline" "--help lists the commands"
run "$T"
check_rc 2 "no command"
run "$T" frobnicate
check_rc 2 "unknown command"
has "$ERR" "usage:" "unknown command: usage on stderr"
run "$T" inspect --bogus x
check_rc 2 "unknown option"
run "$T" train-offline --config "$QCFG" --data "$D/bandit.csv"
check_rc 2 "train-offline without --out"

# ---- train-offline -> inspect -> q -> eval -------------------------------------------
run "$T" train-offline --config "$QCFG" --data "$D/bandit.csv" --out "$D/m.ckpt"
check_rc 0 "train-offline qtable bandit"
has "$OUT" "rows: 400" "train-offline counts 400 rows"
if [ -s "$D/m.ckpt" ]; then ok "train-offline wrote the checkpoint"; else bad "no checkpoint written"; fi

run "$T" inspect "$D/m.ckpt"
check_rc 0 "inspect"
has "$OUT" "format version: 2" "inspect: format version"
has "$OUT" "tag 4 guard" "inspect: the guard's section (format 2)"
has "$OUT" "no replay buffer" "inspect: flags"
has "$OUT" "checksum: ok" "inspect: checksum ok"
has "$OUT" "  algo=qtable" "inspect: stored configuration"
has "$OUT" "shape: algo=qtable n_features=1 n_actions=2" "inspect: shape"
has "$OUT" "transitions        400" "inspect: counters"
has "$OUT" "load: ok" "inspect: loads"

run "$T" q "$D/m.ckpt" 0.25
check_rc 0 "q 0.25"
G=$(field greedy)
if [ "$G" = 1 ]; then ok "q: greedy action in state 0.25 is 1"; else bad "q 0.25: greedy '$G', wanted 1" "$OUT"; fi
has "$OUT" "action 0:" "q prints every action's Q-value"
run "$T" q "$D/m.ckpt" 0.75
G=$(field greedy)
if [ "$G" = 0 ]; then ok "q: greedy action in state 0.75 is 0"; else bad "q 0.75: greedy '$G', wanted 0" "$OUT"; fi

run "$T" eval "$D/m.ckpt" --data "$D/bandit.csv"
check_rc 0 "eval"
near "$(field rows)" "$X_N" 0 "eval: rows"
near "$(field agreement)" "$X_AGREE" 1e-5 "eval: agreement"
near "$(field logged_mean_reward)" "$X_LOGGED" 1e-5 "eval: logged mean reward"
near "$(field ips)" "$X_IPS" 1e-4 "eval: IPS"
near "$(field snips)" "$X_SNIPS" 1e-4 "eval: SNIPS"

# eval without a probability column: agreement only
awk -F, -v OFS=, '{ print $1, $2, $3, $4, $5 }' "$D/bandit.csv" >"$D/noprob.csv"
run "$T" eval "$D/m.ckpt" --data "$D/noprob.csv"
check_rc 0 "eval without probability column"
near "$(field agreement)" "$X_AGREE" 1e-5 "eval without probability: agreement"
has "$OUT" "ips: n/a" "eval without probability: no IPS"

# ---- more train-offline forms ----------------------------------------------------------
run "$T" train-offline --config "$QCFG replay=1000" --data "$D/bandit.csv" --out "$D/r.ckpt" --steps 2000
check_rc 0 "train-offline with replay and --steps"
has "$OUT" "train_steps: 2400" "400 observed + 2000 replayed updates"
run "$T" q "$D/r.ckpt" 0.25
G1=$(field greedy)
run "$T" q "$D/r.ckpt" 0.75
G2=$(field greedy)
if [ "$G1$G2" = 10 ]; then ok "replayed qtable: greedy 1 then 0"; else bad "replayed qtable: greedy $G1 $G2"; fi

run "$T" train-offline --config "$QCFG replay=1000" --data "$D/bandit.csv" --out "$D/r2.ckpt" --steps 2000
if cmp -s "$D/r.ckpt" "$D/r2.ckpt"; then ok "train-offline is reproducible (identical checkpoints)"; else bad "train-offline twice gave different checkpoints"; fi

run "$T" train-offline --config "$QCFG" --data "$D/bandit.csv" --out "$D/x.ckpt" --steps 5
check_rc 2 "--steps without a replay buffer"
if [ ! -e "$D/x.ckpt" ]; then ok "--steps without replay: nothing written"; else bad "--steps without replay wrote a file"; fi

run "$T" train-offline --config "algo=qtable n_features=1" --data "$D/bandit.csv" --out "$D/x.ckpt"
check_rc 2 "--config without n_actions"
run "$T" train-offline --config "$QCFG lr=-1" --data "$D/bandit.csv" --out "$D/x.ckpt"
check_rc 2 "--config with a bad value"
has "$ERR" "lr" "--config error names the key"

run "$T" train-offline --config "algo=dqn n_features=1 n_actions=2 hidden=16,16 lr=0.01 batch=32 learning_starts=64" \
    --data "$D/bandit.csv" --out "$D/dqn.ckpt" --steps 1500
check_rc 0 "train-offline dqn"
run "$T" q "$D/dqn.ckpt" 0.25
G1=$(field greedy)
run "$T" q "$D/dqn.ckpt" 0.75
G2=$(field greedy)
if [ "$G1$G2" = 10 ]; then ok "dqn: greedy 1 in 0.25, 0 in 0.75"; else bad "dqn: greedy $G1 $G2"; fi
run "$T" inspect "$D/dqn.ckpt"
has "$OUT" "shape: algo=dqn n_features=1 n_actions=2" "inspect dqn: shape"

# columns in another order, an ignored column, CRLF line ends, a blank line,
# non-terminal rows, a terminal row with an empty next state; from stdin
printf 'id,done,n0,reward,action,s0\r\n1,0,0.75,0.5,1,0.25\r\n\r\n2,1,,0.8,0,0.75\r\n3,0,0.25,0.1,1,0.75\r\n' >"$D/order.csv"
run "$T" train-offline --config "$QCFG gamma=0.5" --data - --out "$D/o.ckpt" <"$D/order.csv"
check_rc 0 "train-offline: free column order, CRLF, blank line, empty terminal next state, stdin"
has "$OUT" "rows: 3" "free column order: 3 rows"

# a wide CSV: 1500 features (3000 state columns, lines of ~20 kB)
NF=1500
awk -v n=$NF 'BEGIN {
    h = ""; for (j = 0; j < n; j++) h = h "s" j ","
    for (j = 0; j < n; j++) h = h "n" j ","
    print h "action,reward,done"
    for (i = 0; i < 20; i++) {
        l = ""; for (j = 0; j < 2 * n; j++) l = l sprintf("%.4f,", ((i * 31 + j * 17) % 97) / 97)
        print l (i % 3) "," (i % 5) / 5 "," (i % 2)
    }
}' >"$D/wide.csv"
run "$T" train-offline --config "algo=dqn n_features=$NF n_actions=3 hidden=8 batch=4 replay=1000" --data "$D/wide.csv" --out "$D/wide.ckpt"
check_rc 0 "train-offline with $NF features"
STATE=$(awk -v n=$NF 'BEGIN { for (j = 0; j < n; j++) printf "%s%.3f", (j ? "," : ""), j / n }')
run "$T" q "$D/wide.ckpt" "$STATE"
check_rc 0 "q with $NF features"
run "$T" eval "$D/wide.ckpt" --data "$D/wide.csv"
check_rc 0 "eval with $NF features"

# ---- malformed CSV: exit 2, FILE:LINE: column 'NAME', nothing written --------------------
# malformed NAME LINE WANT1 WANT2: the CSV is in $D/bad.csv
malformed() {
    rm -f "$D/bad.ckpt"
    run "$T" train-offline --config "$QCFG" --data "$D/bad.csv" --out "$D/bad.ckpt"
    check_rc 2 "malformed ($1)"
    has "$ERR" "bad.csv:$2:" "malformed ($1): message names line $2"
    if [ -n "$3" ]; then has "$ERR" "$3" "malformed ($1): message names $3"; fi
    if [ -e "$D/bad.ckpt" ] || ls "$D" | grep -F "bad.ckpt" >/dev/null; then
        bad "malformed ($1): an output file was written"
    else
        ok "malformed ($1): no output file"
    fi
}
# bad LINE SED-EXPR: bandit.csv with line LINE edited
edit() {
    sed "$1" "$D/bandit.csv" >"$D/bad.csv"
}

edit '17s/^\([^,]*,[^,]*\),[^,]*,/\1,abc,/'
malformed "reward not a number" 17 "bad.csv:17: column 'reward': 'abc' is not a number"
edit '5s/,1,0\.[0-9]*$//'
malformed "wrong column count" 5 "columns"
edit '3s/^[^,]*,/nan,/'
malformed "NaN state" 3 "column 's0'"
edit '4s/,1,\(0\.[0-9]*\)$/,0,\1/; 4s/^\([^,]*,[^,]*,[^,]*\),[^,]*,/\1,inf,/'
malformed "infinite next state" 4 "column 'n0'"
edit '6s/^\([^,]*\),[^,]*,/\1,2,/'
malformed "action out of range" 6 "column 'action'"
edit '8s/^\([^,]*\),[^,]*,/\1,1.5,/'
malformed "action not an integer" 8 "column 'action'"
edit '7s/,1,\(0\.[0-9]*\)$/,2,\1/'
malformed "done not 0/1" 7 "column 'done'"
edit '9s/^\([^,]*,[^,]*\),[^,]*,/\1,1e40,/'
malformed "reward out of float range" 9 "column 'reward'"
edit '1s/,done,/,finished,/'
malformed "missing header column" 1 "'done'"
edit '1s/,n0,/,reward,/'
malformed "duplicate header column" 1 "'reward'"
edit '1s/^s0,/s0,s1,/'
malformed "state column beyond n_features" 1 "'s1'"
: >"$D/bad.csv"
malformed "empty file" 1 ""
head -n 1 "$D/bandit.csv" >"$D/bad.csv"
rm -f "$D/bad.ckpt"
run "$T" train-offline --config "$QCFG" --data "$D/bad.csv" --out "$D/bad.ckpt"
check_rc 2 "header without rows"
if [ ! -e "$D/bad.ckpt" ]; then ok "header without rows: no output file"; else bad "header without rows wrote a file"; fi

# a malformed CSV leaves an existing --out untouched
cp "$D/m.ckpt" "$D/keep.ckpt"
edit '250s/^\([^,]*,[^,]*\),[^,]*,/\1,x,/'
run "$T" train-offline --config "$QCFG" --data "$D/bad.csv" --out "$D/keep.ckpt"
check_rc 2 "malformed CSV with an existing --out"
if cmp -s "$D/m.ckpt" "$D/keep.ckpt"; then ok "existing --out unchanged"; else bad "existing --out was modified"; fi
if ls "$D" | grep -F "keep.ckpt." >/dev/null; then bad "a temporary file was left"; else ok "no temporary file left"; fi

run "$T" train-offline --config "$QCFG" --data "$D/missing.csv" --out "$D/bad.ckpt"
check_rc 1 "train-offline: missing data file"

# ---- eval: bad probabilities ------------------------------------------------------------
edit '9s/,[^,]*$/,0/'
run "$T" eval "$D/m.ckpt" --data "$D/bad.csv"
check_rc 2 "eval: probability 0"
has "$ERR" "bad.csv:9: column 'probability'" "eval: probability 0 names line and column"
edit '12s/,[^,]*$/,1.5/'
run "$T" eval "$D/m.ckpt" --data "$D/bad.csv"
check_rc 2 "eval: probability 1.5"
has "$ERR" "bad.csv:12: column 'probability'" "eval: probability 1.5 names line and column"

# ---- q: bad states ----------------------------------------------------------------------
run "$T" q "$D/m.ckpt" 0.2x
check_rc 2 "q: not a number"
has "$ERR" "'0.2x'" "q: the bad number is named"
run "$T" q "$D/m.ckpt" 0.1,nan
check_rc 2 "q: NaN"
has "$ERR" "'nan'" "q: NaN is named"
run "$T" q "$D/m.ckpt" 0.1,0.2
check_rc 2 "q: wrong number of features"
run "$T" q "$D/m.ckpt" -0.5
check_rc 0 "q: a negative feature is not an option"

# ---- damaged checkpoints ----------------------------------------------------------------
SIZE=$(wc -c <"$D/m.ckpt")
cp "$D/m.ckpt" "$D/flip.ckpt"
OFF=$((SIZE / 2))
printf 'Z' | dd of="$D/flip.ckpt" bs=1 seek=$OFF conv=notrunc 2>/dev/null
cmp -s "$D/m.ckpt" "$D/flip.ckpt" && printf 'Y' | dd of="$D/flip.ckpt" bs=1 seek=$OFF conv=notrunc 2>/dev/null
run "$T" inspect "$D/flip.ckpt"
check_rc 1 "inspect: a flipped byte"
has "$OUT" "checksum: MISMATCH" "inspect: a flipped byte is a checksum mismatch"
has "$OUT" "load: FAILED" "inspect: a flipped byte does not load"
has "$OUT" "shape: algo=qtable" "inspect: a flipped byte still shows the sections"
run "$T" q "$D/flip.ckpt" 0.25
check_rc 1 "q on a corrupt checkpoint"
run "$T" eval "$D/flip.ckpt" --data "$D/bandit.csv"
check_rc 1 "eval on a corrupt checkpoint"

for n in 0 7 23 27 100 $((SIZE - 5)) $((SIZE - 1)); do
    head -c "$n" "$D/m.ckpt" >"$D/trunc.ckpt"
    run "$T" inspect "$D/trunc.ckpt"
    check_rc 1 "inspect: truncated to $n bytes"
done
(cat "$D/m.ckpt"; printf 'extra') >"$D/long.ckpt"
run "$T" inspect "$D/long.ckpt"
check_rc 1 "inspect: trailing bytes"
awk 'BEGIN { for (i = 0; i < 3000; i++) printf "%c", (i * 131 + 7) % 251 + 1 }' >"$D/junk.ckpt"
run "$T" inspect "$D/junk.ckpt"
check_rc 1 "inspect: junk"
has "$OUT" "magic: BAD" "inspect: junk has a bad magic"
# a header whose one section claims more bytes than the file has
printf 'DLSCHKPT\001\000\000\000\000\000\000\000\020\000\000\000\000\000\000\000\001\000\000\000\000\000\000\000\377\377\377\377\377\377\377\177\000\000\000\000' >"$D/lie.ckpt"
run "$T" inspect "$D/lie.ckpt"
check_rc 1 "inspect: a section longer than the file"
run "$T" inspect "$D/nonexistent.ckpt"
check_rc 1 "inspect: no such file"
run "$T" inspect "$D"
check_rc 1 "inspect: a directory"
if command -v timeout >/dev/null 2>&1 && mkfifo "$D/fifo" 2>/dev/null; then
    run timeout 10 "$T" inspect "$D/fifo"
    check_rc 1 "inspect: a FIFO is refused without blocking"
    run timeout 10 "$T" q "$D/fifo" 0.5
    check_rc 1 "q: a FIFO is refused without blocking"
fi

# ---- doctor ------------------------------------------------------------------------------
# The CUDA plugin is looked for in an empty directory, so that no answer
# depends on a plugin or a GPU being here; OpenBLAS's variables are cleared
# unless a check sets them. The tree's libdlsched.so.1: beside the tool's
# build (a sanitizer build has its own), else lib/.
mkdir "$D/noplugin"
TOP=$(cd "$(dirname "$0")/../.." && pwd)
LIBDIR=
for d in "$(dirname "$T")/../lib" "$TOP/lib"; do
    if [ -e "$d/libdlsched.so.1" ]; then
        LIBDIR=$(cd "$d" && pwd)
        break
    fi
done
# dr [NAME=VALUE...] "$T" doctor [OPTIONS]
dr() {
    run env -u OPENBLAS_CORETYPE -u OPENBLAS_VERBOSE -u OPENBLAS_NUM_THREADS -u OMP_NUM_THREADS \
        DLSCHED_PLUGIN_PATH="$D/noplugin" "$@"
}
# lacks TEXT PATTERN NAME: the fixed string is not there
lacks() {
    if printf '%s\n' "$1" | grep -F -e "$2" >/dev/null; then bad "$3: '$2' in" "$1"; else ok "$3"; fi
}
# last_line: the last line of $OUT
last_line() {
    printf '%s\n' "$OUT" | tail -n 1
}

dr "$T" doctor
case $RC in
0 | 1) ok "doctor exits 0 or 1 (exit $RC)" ;;
*) bad "doctor: exit $RC" "$OUT
$ERR" ;;
esac
DR_RC=$RC
DR_LINES=$(printf '%s\n' "$OUT" | wc -l)
DR_CORE=$(field core)
DR_CONFIG=$(printf '%s\n' "$OUT" | sed -n 's/^  config: //p')
DR_LAST=$(last_line)
case $RC:$DR_LAST in
"0:doctor: all is well" | "1:doctor: 1 finding to act on" | "1:doctor: "[0-9]*" findings to act on")
    ok "doctor: the last line matches the exit status ($DR_LAST)" ;;
*) bad "doctor: exit $RC with the last line '$DR_LAST'" "$OUT" ;;
esac
N=$(printf '%s\n' "$OUT" | grep -c '^  finding: ')
case $DR_LAST in
*" finding"*) if [ "$DR_LAST" = "doctor: $N finding to act on" ] || [ "$DR_LAST" = "doctor: $N findings to act on" ]; then
    ok "doctor counts its $N finding lines"; else bad "doctor: $N finding lines, last line '$DR_LAST'" "$OUT"; fi ;;
*) if [ "$N" = 0 ]; then ok "doctor: no finding line when all is well"; else bad "doctor: finding lines but all is well" "$OUT"; fi ;;
esac
F=$(printf '%s\n' "$OUT" | grep -c '^  fix: ')
if [ "$F" = "$N" ]; then ok "doctor: a fix for every finding ($F)"; else bad "doctor: $N findings, $F fixes" "$OUT"; fi
has "$OUT" "this tool: libdlsched $V " "doctor prints the tool's own version"
if [ -n "$DR_CORE" ]; then ok "doctor prints the BLAS core ($DR_CORE)"; else bad "doctor: no core: line" "$OUT"; fi
for k in "OPENBLAS_CORETYPE: unset" "OPENBLAS_NUM_THREADS: unset" "OMP_NUM_THREADS: unset" \
    "model name: " "threads: " "library: "; do
    has "$OUT" "  $k" "doctor prints '$k'"
done
has "$OUT" "plugin: $D/noplugin/libdlsched_cuda.so (DLSCHED_PLUGIN_PATH)" "doctor: where the CUDA plugin was looked for"
has "$OUT" "cuda: not usable: cannot load the CUDA plugin $D/noplugin/libdlsched_cuda.so" "doctor: why CUDA is not usable"
if printf '%s\n' "$OUT" | grep -F "libdlsched.so.1: not found" >/dev/null; then
    has "$OUT" "finding: a program linked with -ldlsched does not start here" "doctor: libdlsched.so.1 not found is a finding"
    has "$OUT" "LD_LIBRARY_PATH=" "doctor: libdlsched.so.1 not found: the fix names LD_LIBRARY_PATH"
fi

# the core doctor prints is the one OpenBLAS says it picked (a DYNAMIC_ARCH
# OpenBLAS prints "Core: NAME" on stderr with OPENBLAS_VERBOSE=2)
dr OPENBLAS_VERBOSE=2 "$T" doctor
VCORE=$(printf '%s\n' "$ERR" | sed -n 's/^Core: //p' | head -n 1)
if [ -n "$VCORE" ]; then
    if [ "$(field core)" = "$VCORE" ]; then ok "doctor: core $VCORE as OpenBLAS reports it"; else bad "doctor: core '$(field core)', OpenBLAS says $VCORE" "$OUT"; fi
else
    ok "doctor: core check against OPENBLAS_VERBOSE skipped (no DYNAMIC_ARCH report)"
fi

dr "$T" doctor --quiet
if [ "$RC" = "$DR_RC" ]; then ok "doctor --quiet: same exit status ($RC)"; else bad "doctor --quiet: exit $RC, without: $DR_RC"; fi
Q_LINES=$(printf '%s\n' "$OUT" | wc -l)
if [ "$Q_LINES" -lt "$DR_LINES" ]; then ok "doctor --quiet prints fewer lines ($Q_LINES < $DR_LINES)"; else bad "doctor --quiet: $Q_LINES lines, without: $DR_LINES" "$OUT"; fi
lacks "$OUT" "  core: " "doctor --quiet: no facts"
if [ "$(last_line)" = "$DR_LAST" ]; then ok "doctor --quiet: the same last line"; else bad "doctor --quiet: last line '$(last_line)'"; fi

dr "$T" doctor --bogus
check_rc 2 "doctor: unknown option"
has "$ERR" "usage:" "doctor: unknown option: usage on stderr"
has "$ERR" "unknown option '--bogus'" "doctor: the unknown option is named"
if [ -z "$OUT" ]; then ok "doctor: unknown option: nothing on stdout"; else bad "doctor: unknown option printed" "$OUT"; fi
dr "$T" doctor extra
check_rc 2 "doctor: an argument"

dr DLSCHED_PLUGIN_PATH=relative/dir "$T" doctor
if [ "$RC" = "$DR_RC" ]; then ok "doctor: a relative DLSCHED_PLUGIN_PATH changes no exit status"; else bad "doctor: exit $RC with a relative DLSCHED_PLUGIN_PATH, $DR_RC otherwise"; fi
has "$OUT" "not an absolute path" "doctor: a relative DLSCHED_PLUGIN_PATH is named"

if [ -n "$LIBDIR" ]; then
    dr LD_LIBRARY_PATH="$LIBDIR" "$T" doctor
    has "$OUT" "libdlsched.so.1: $LIBDIR/libdlsched.so.1" "doctor: the library a host loads, from LD_LIBRARY_PATH"
    has "$OUT" ", version $V" "doctor: its version is the tool's ($V)"
    lacks "$OUT" "finding: a program linked" "doctor: the library found is no finding"
    lacks "$OUT" "finding: a host loads libdlsched" "doctor: no version mismatch"
else
    ok "doctor: LD_LIBRARY_PATH check skipped (no libdlsched.so.1 in the tree)"
fi

# OpenBLAS's generic kernels forced on a CPU with AVX2 and FMA: the finding,
# exit 1 and the remedy with the best core; that core forced: no finding.
# (A DYNAMIC_ARCH OpenBLAS only: others do not read OPENBLAS_CORETYPE.)
FLAGS=$(sed -n 's/^flags[[:space:]]*: //p' /proc/cpuinfo 2>/dev/null | head -n 1)
VENDOR=$(sed -n 's/^vendor_id[[:space:]]*: //p' /proc/cpuinfo 2>/dev/null | head -n 1)
cpu_has() {
    for f in "$@"; do
        case " $FLAGS " in
        *" $f "*) ;;
        *) return 1 ;;
        esac
    done
}
case $DR_CONFIG in
*DYNAMIC_ARCH*) DYN=1 ;;
*) DYN=0 ;;
esac
if [ "$DYN" = 1 ] && cpu_has avx2 fma; then
    case $VENDOR in
    GenuineIntel) if cpu_has avx512f avx512dq avx512bw avx512vl; then BEST=SkylakeX; else BEST=Haswell; fi ;;
    AuthenticAMD | HygonGenuine) BEST=Zen ;;
    *) BEST=Haswell ;;
    esac
    dr OPENBLAS_CORETYPE=Prescott "$T" doctor
    check_rc 1 "doctor with Prescott forced"
    if [ "$(field core)" = Prescott ]; then ok "doctor with Prescott forced: core Prescott"; else bad "doctor with Prescott forced: core '$(field core)'" "$OUT"; fi
    has "$OUT" "OPENBLAS_CORETYPE: Prescott" "doctor: OPENBLAS_CORETYPE as set"
    has "$OUT" "finding: OpenBLAS runs its Prescott kernels on a CPU that allows $BEST" "doctor: the BLAS finding with the best core $BEST"
    has "$OUT" "fix: export OPENBLAS_CORETYPE=$BEST " "doctor: the fix exports OPENBLAS_CORETYPE=$BEST"
    has "$OUT" "blas_reason: OpenBLAS runs its Prescott kernels" "doctor: a dqn agent's blas_reason"
    dr OPENBLAS_CORETYPE=Prescott "$T" doctor --quiet
    check_rc 1 "doctor --quiet with Prescott forced"
    has "$OUT" "fix: export OPENBLAS_CORETYPE=$BEST " "doctor --quiet keeps the finding and its fix"
    # --coretype: the one value scripts/best-blas.sh exports
    dr OPENBLAS_CORETYPE=Prescott "$T" doctor --coretype
    check_rc 0 "doctor --coretype with Prescott forced"
    if [ "$OUT" = "$BEST" ]; then ok "doctor --coretype with Prescott forced: $BEST"; else bad "doctor --coretype with Prescott forced: '$OUT', want $BEST"; fi
    dr OPENBLAS_CORETYPE=$BEST "$T" doctor --coretype
    check_rc 0 "doctor --coretype with $BEST forced"
    if [ -z "$OUT" ]; then ok "doctor --coretype with $BEST forced: nothing"; else bad "doctor --coretype with $BEST forced: '$OUT'"; fi
    # scripts/best-blas.sh: runs the command with that value and says so
    dr OPENBLAS_CORETYPE=Prescott sh "$TOP/scripts/best-blas.sh" "$T" sh -c 'echo "ct=$OPENBLAS_CORETYPE orig=$DLSCHED_ORIGINAL_OPENBLAS_CORETYPE"'
    if [ "$OUT" = "ct=Prescott orig=Prescott" ]; then ok "best-blas.sh keeps a value set"; else bad "best-blas.sh with Prescott set: '$OUT'" "$ERR"; fi
    has "$ERR" "as set in the environment" "best-blas.sh says it kept the value"
    dr sh "$TOP/scripts/best-blas.sh" "$T" sh -c 'echo "ct=${OPENBLAS_CORETYPE-unset} orig=$DLSCHED_ORIGINAL_OPENBLAS_CORETYPE"'
    # OpenBLAS's own choice fits when it is BEST or, on a CPU with AVX-512
    # (F, DQ, BW, VL), any AVX-512 core: 0.3.21 gives AMD's Zen 4 (family 25
    # model 17) Cooperlake's kernels, wider than BEST=Zen's
    want="ct=$BEST orig="
    case $DR_CORE in
    "$BEST") want="ct=unset orig=" ;;
    SkylakeX | Cooperlake | SapphireRapids)
        if cpu_has avx512f avx512dq avx512bw avx512vl; then want="ct=unset orig="; fi ;;
    esac
    if [ "$OUT" = "$want" ]; then ok "best-blas.sh with OPENBLAS_CORETYPE unset: $want"; else bad "best-blas.sh unset: '$OUT', want '$want'" "$ERR"; fi
    has "$ERR" "best-blas: " "best-blas.sh says what it did"

    if [ -n "$LIBDIR" ]; then
        dr OPENBLAS_CORETYPE=$BEST LD_LIBRARY_PATH="$LIBDIR" "$T" doctor
        check_rc 0 "doctor with $BEST forced and the tree's library"
        has "$OUT" "doctor: all is well" "doctor: all is well with $BEST"
    else
        dr OPENBLAS_CORETYPE=$BEST "$T" doctor
    fi
    if [ "$(field core)" = "$BEST" ]; then ok "doctor with $BEST forced: core $BEST"; else bad "doctor with $BEST forced: core '$(field core)'" "$OUT"; fi
    lacks "$OUT" "finding: OpenBLAS runs" "doctor with $BEST forced: no BLAS finding"
    has "$OUT" "ok: OpenBLAS's kernels fit this CPU ($BEST)" "doctor with $BEST forced: the kernels fit"
else
    ok "doctor: forced-core checks skipped (no AVX2 and FMA, or no DYNAMIC_ARCH OpenBLAS)"
fi

echo "$PASS passed, $FAIL failed"
[ "$FAIL" -eq 0 ]
