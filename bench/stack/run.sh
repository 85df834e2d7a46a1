#!/usr/bin/env bash
# Stack benchmark: each relay server x each scenario, REPS times (reps interleaved), then medians.
# Server pinned to core 0, load generator to core 1, loopback only. Every step is time-bounded.
#
#   PY=/tmp/stackbench/.venv/bin/python bench/stack/run.sh
#
# Env knobs: PY, REPS (3), SERVERS, SCENARIOS, PORT (8765), OUT (raw JSON lines),
#            LOADGEN_ARGS (extra loadgen.py flags, e.g. "--idle-conns 2000").
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
PY=${PY:-/tmp/stackbench/.venv/bin/python}
REPS=${REPS:-3}
SERVERS=${SERVERS:-"aiohttp websockets uvicorn"}
SCENARIOS=${SCENARIOS:-"private group idle"}
PORT=${PORT:-8765}
OUT=${OUT:-/tmp/stackbench/results.jsonl}
LOGDIR=${LOGDIR:-/tmp/stackbench/logs}
LOADGEN_ARGS=${LOADGEN_ARGS:-}

mkdir -p "$LOGDIR" "$(dirname "$OUT")"
: >"$OUT"
SPID=""

stop_server() {
    [[ -n "$SPID" ]] || return 0
    kill "$SPID" 2>/dev/null || true
    for _ in $(seq 1 50); do # at most ~10 s for a graceful exit
        kill -0 "$SPID" 2>/dev/null || break
        sleep 0.2
    done
    kill -9 "$SPID" 2>/dev/null || true
    wait "$SPID" 2>/dev/null || true
    SPID=""
}
trap stop_server EXIT

# Wait (bounded) until the machine is quiet: other jobs on these 2 cores distort everything.
QUIET_PCT=${QUIET_PCT:-10}    # max system-wide busy % (of 2 cores) over a 1 s sample
QUIET_WAIT=${QUIET_WAIT:-300} # give up waiting after this many seconds and run anyway
busy_pct() {
    local a b
    a=$(head -1 /proc/stat)
    sleep 1
    b=$(head -1 /proc/stat)
    awk -v a="$a" -v b="$b" 'BEGIN { split(a, x); split(b, y); t = 0; i = 0
        for (k = 2; k <= 9; k++) t += y[k] - x[k]
        i = (y[5] - x[5]) + (y[6] - x[6]); printf "%d", t ? 100 * (t - i) / t : 0 }'
}
wait_quiet() {
    local end=$((SECONDS + QUIET_WAIT)) b
    while ((SECONDS < end)); do
        b=$(busy_pct)
        ((b <= QUIET_PCT)) && return 0
        echo "machine busy (${b}% of 2 cores), waiting..." >&2
        sleep 4
    done
    echo "WARNING: machine still busy after ${QUIET_WAIT}s; running anyway" >&2
}

for rep in $(seq 1 "$REPS"); do
    for srv in $SERVERS; do
        for sc in $SCENARIOS; do
            log="$LOGDIR/$srv.$sc.$rep"
            wait_quiet
            taskset -c 0 "$PY" "$HERE/relay_$srv.py" --port "$PORT" >"$log.server.log" 2>&1 &
            SPID=$!
            # shellcheck disable=SC2086
            if ! timeout 180 taskset -c 1 "$PY" "$HERE/loadgen.py" "$sc" --server "$srv" \
                --pid "$SPID" --port "$PORT" --rep "$rep" $LOADGEN_ARGS \
                >>"$OUT" 2>"$log.loadgen.log"; then
                echo "FAILED: $srv $sc rep $rep (see $log.loadgen.log)" >&2
            fi
            stop_server
            tail -n 1 "$OUT" >&2
        done
    done
done

"$PY" - "$OUT" <<'PYEOF'
import json
import statistics
import sys

rows = [json.loads(line) for line in open(sys.argv[1]) if line.startswith("{")]
servers = list(dict.fromkeys(r["server"] for r in rows))


def med(srv: str, sc: str, key: str = "rate") -> float | None:
    v = [r[key] for r in rows if r["server"] == srv and r["scenario"] == sc and key in r]
    return statistics.median(v) if v else None


def table(title: str, cols: list[tuple[str, str, str]]) -> None:
    print(title)
    print(f"{'server':<11}" + "".join(f"{label:>24}" for _, _, label in cols))
    for srv in servers:
        line = f"{srv:<11}"
        for sc, key, _ in cols:
            m, b = med(srv, sc, key), med("aiohttp", sc, key)
            cell = "-" if m is None else f"{m:,.1f}" + (f" ({m / b:.2f}x)" if b else "")
            line += f"{cell:>24}"
        print(line)
    print()


n = {s: sum(1 for r in rows if r["server"] == s) for s in servers}
print(f"runs per server: {n}; medians; (ratio vs aiohttp)")
table("Headline", [("private", "rate", "private msgs/s"), ("group", "rate", "group deliveries/s"),
                   ("idle", "rate", "idle RSS KiB/conn")])
table("Per second of server CPU (normalises VM noise)",
      [("private", "per_server_cpu_s", "private msgs/cpu-s"),
       ("group", "per_server_cpu_s", "group deliv/cpu-s")])
cpu = [("private", "server_cpu_pct", "srv CPU% private"), ("group", "server_cpu_pct", "srv CPU% group"),
       ("private", "loadgen_cpu_pct", "lg CPU% private"), ("group", "loadgen_cpu_pct", "lg CPU% group"),
       ("private", "core0_steal_pct", "core0 steal% priv"),
       ("private", "other_cpu_pct", "other CPU% private"), ("group", "other_cpu_pct", "other CPU% group")]
table("CPU use during the measurement window (% of one core)", cpu)
PYEOF
