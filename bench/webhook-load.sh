#!/usr/bin/env bash
# Webhook ingest load benchmark: trunkwarden serve (release, every delivery fsynced to SQLite)
# against the non-durable @octokit/webhooks Node middleware, same client (wrk), same payload
# (a real GitHub push delivery), unique random delivery ids (UUIDs, as GitHub's), on loopback.
#
# Prints sustained deliveries/s and acknowledgement latency (p50/p99) under full load, and the
# latency at about 1,000 deliveries/s, for both, and the ratios.
#
# Usage: bench/webhook-load.sh [seconds per run, default 20]
set -euo pipefail
cd "$(dirname "$0")/.."
DUR=${1:-20}
SCRATCH=${BENCH_SCRATCH:-/tmp/trunkwarden-bench}
BODY=webhook-fixtures/github/push.none.4.json
SECRET=bench-secret
mkdir -p "$SCRATCH"

command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }
if [ ! -d "$SCRATCH/node_modules/@octokit/webhooks" ]; then
  (cd "$SCRATCH" && npm init -y >/dev/null 2>&1 && npm install --silent --no-audit --no-fund @octokit/webhooks@14 >/dev/null)
fi
cp bench/octokit-server.mjs "$SCRATCH/"
cargo build --release --quiet

SIG="sha256=$(python3 -c 'import hmac,hashlib,sys; print(hmac.new(sys.argv[1].encode(), open(sys.argv[2],"rb").read(), hashlib.sha256).hexdigest())' "$SECRET" "$BODY")"
echo "payload: $BODY ($(wc -c <"$BODY") bytes), $(nproc) cores, ${DUR}s per run"

pids=()
cleanup() { for p in "${pids[@]:-}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT

# Waits until a TCP port accepts connections (the octokit middleware never answers other paths).
wait_up() { for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.1; done; echo "nothing listens on port $1" >&2; exit 2; }

# run NAME URL CONNECTIONS DELAY_MS -> prints RESULT line
run() {
  wrk -t1 -c"$3" -d"${DUR}s" --timeout 5s -s bench/webhook.lua "$2" -- "$BODY" "$SIG" "$1-$RANDOM" "$4" | grep '^RESULT'
}
field() { sed -n "s/.*$1=\([0-9.]*\).*/\1/p" <<<"$2"; }

# trunkwarden: a fresh ledger for each run, so the ~1k/s run does not share the disk and the
# workers with the backlog of the full-load run.
tw_start() {
  DATA=$(mktemp -d "$SCRATCH/data.XXXX")
  TRUNKWARDEN_GITHUB_WEBHOOK_SECRET=$SECRET TRUNKWARDEN_LOG=warn \
    target/release/trunkwarden serve --listen 127.0.0.1:18090 --data-dir "$DATA" --sync full >/dev/null &
  TW_PID=$!
  pids+=("$TW_PID")
  wait_up 18090
}
metric() { curl -s http://127.0.0.1:18090/metrics | awk -v m="$1" '$1 ~ "^"m {s+=$2} END {print s+0}'; }
tw_stop() { kill "$TW_PID"; wait "$TW_PID" 2>/dev/null || true; }
tw_start
tw_max=$(run tw http://127.0.0.1:18090 32 0)
stored=$(metric trunkwarden_deliveries_accepted_total)
dups=$(metric trunkwarden_deliveries_duplicate_total)
# How long the workers take to process what the run left queued (normalize, handle, record).
drain_start=$(date +%s.%N)
for _ in $(seq 600); do
  [ "$(metric 'trunkwarden_deliveries[{]state="queued"')" = 0 ] && break
  sleep 0.1
done
drain_s=$(python3 -c "import sys,time; print(f'{time.time()-float(sys.argv[1]):.1f}')" "$drain_start")
done_n=$(metric 'trunkwarden_deliveries[{]state="done"')
db_mb=$(du -sm "$DATA" | cut -f1)
tw_stop
rm -rf "$DATA"
tw_start
tw_1k=$(run tw1k http://127.0.0.1:18090 10 9)
tw_stop
rm -rf "$DATA"

# @octokit/webhooks
(cd "$SCRATCH" && BENCH_SECRET=$SECRET PORT=18091 exec node octokit-server.mjs >/dev/null) &
pids+=($!)
wait_up 18091
ok_max=$(run ok http://127.0.0.1:18091 32 0)
ok_1k=$(run ok1k http://127.0.0.1:18091 10 9)

printf '\n%-34s %12s %9s %9s %12s %9s %9s\n' "server" "max del/s" "p50 ms" "p99 ms" "~1k: del/s" "p50 ms" "p99 ms"
for name in tw ok; do
  max=${name}_max; k=${name}_1k
  label=$([ $name = tw ] && echo "trunkwarden (durable, fsync)" || echo "@octokit/webhooks (in memory)")
  printf '%-34s %12.0f %9.3f %9.3f %12.0f %9.3f %9.3f\n' "$label" \
    "$(field rps "${!max}")" "$(field p50_ms "${!max}")" "$(field p99_ms "${!max}")" \
    "$(field rps "${!k}")" "$(field p50_ms "${!k}")" "$(field p99_ms "${!k}")"
done
echo
echo "trunkwarden: $stored deliveries acknowledged and stored in the full-load run ($dups duplicate ids), $db_mb MB ledger; $done_n processed, the last ${drain_s}s after the run ended"
echo "trunkwarden non-2xx/errors: max run $(field non2xx "$tw_max")/$(field errors "$tw_max"), ~1k run $(field non2xx "$tw_1k")/$(field errors "$tw_1k")"
echo "octokit non-2xx/errors: max run $(field non2xx "$ok_max")/$(field errors "$ok_max"), ~1k run $(field non2xx "$ok_1k")/$(field errors "$ok_1k")"
python3 - "$(field rps "$tw_max")" "$(field rps "$ok_max")" "$(field p99_ms "$tw_1k")" "$(field p99_ms "$ok_1k")" <<'PY'
import sys
tw, ok, tw99, ok99 = map(float, sys.argv[1:])
print(f"throughput ratio trunkwarden / octokit: {tw/ok:.2f}x   (target: >= 16,000/s)")
print(f"p99 at ~1k/s: trunkwarden {tw99:.3f} ms vs octokit {ok99:.3f} ms   (target: <= 1 ms)")
PY
