#!/usr/bin/env bash
# bench-broker-cost.sh measures what Herald costs the Redis broker per event
# end to end (issue 22, item 5): a redis-server of its own (no persistence),
# two `herald serve` nodes on it, `herald bench` publishing to node A, node B
# with one subscriber (so that it reads the shard: its CPU per event is a
# listening node's read cost), then the plainest append on the same server:
# XADD of 100 bytes with redis-benchmark, pipelined PIPE deep (100; 1 for one
# a round trip). CPU of each process from /proc/<pid>/stat (clock ticks).
#
#   scripts/bench-broker-cost.sh                       # batches of 100 events
#   SCENARIO=throughput PIPE=1 scripts/bench-broker-cost.sh   # single publishes
#
# Loopback only; every process it starts is stopped by its PID at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
SCENARIO=${SCENARIO:-throughput-batch}
DURATION=${DURATION:-10s}
PIPE=${PIPE:-100}
dir=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$dir"
}
trap cleanup EXIT
go build -o "$dir/herald" ./cmd/herald
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
rport=$(free_port) aport=$(free_port) bport=$(free_port)
redis-server --port "$rport" --bind 127.0.0.1 --save '' --appendonly no --dir "$dir" >"$dir/redis.log" 2>&1 &
rpid=$!; pids+=("$rpid")
for _ in $(seq 100); do redis-cli -p "$rport" ping >/dev/null 2>&1 && break; sleep 0.1; done
"$dir/herald" serve --addr "127.0.0.1:$aport" --broker "redis://127.0.0.1:$rport/0" --node-id a >"$dir/a.log" 2>&1 &
apid=$!; pids+=("$apid")
"$dir/herald" serve --addr "127.0.0.1:$bport" --broker "redis://127.0.0.1:$rport/0" --node-id b >"$dir/b.log" 2>&1 &
bpid=$!; pids+=("$bpid")
for _ in $(seq 100); do
  curl -sf "http://127.0.0.1:$aport/healthz" >/dev/null && curl -sf "http://127.0.0.1:$bport/healthz" >/dev/null && break
  sleep 0.1
done
curl -sN --max-time 600 "http://127.0.0.1:$bport/events?topic=listen" >/dev/null &
pids+=($!)
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$bport/metrics" | grep -q '^herald_connections[^ ]* [1-9]' && break; sleep 0.1; done
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
hz=$(getconf CLK_TCK)
r0=$(ticks "$rpid") a0=$(ticks "$apid") b0=$(ticks "$bpid")
"$dir/herald" bench --server "http://127.0.0.1:$aport" --scenario "$SCENARIO" --topics 100 --duration "$DURATION" --pid "$apid" --json >"$dir/bench.json"
r1=$(ticks "$rpid") a1=$(ticks "$apid") b1=$(ticks "$bpid")
n=$(( PIPE > 1 ? 500000 : 50000 ))
x0=$(ticks "$rpid")
timeout 300 redis-benchmark -p "$rport" -n "$n" -P "$PIPE" -c 1 -q XADD plain '*' m "$(printf 'x%.0s' $(seq 100))" >/dev/null
x1=$(ticks "$rpid")
python3 - "$dir/bench.json" "$hz" $((r1 - r0)) $((a1 - a0)) $((b1 - b0)) $((x1 - x0)) "$n" "$PIPE" <<'PY'
import json, sys
j = json.load(open(sys.argv[1]))
hz, r, a, b, x, n, pipe = (int(v) for v in sys.argv[2:9])
ev = j["published"]
us = lambda t, k: t * 1e6 / hz / k
print(f"{j['scenario']}, 100 topics: {ev} events in {j['seconds']:.1f} s ({j['publishRate']:,.0f}/s), "
      f"lost {j['lost']}, duplicated {j['duplicated']}, out of order {j['outOfOrder']}")
print(f"  redis-server   {us(r, ev):7.2f} µs CPU per event")
print(f"  node A         {us(a, ev):7.2f} µs (publishes, delivers to the bench's subscribers)")
print(f"  node B         {us(b, ev):7.2f} µs (one subscriber: reads every event of the shard)")
print(f"  XADD of 100 bytes, {pipe} a pipeline: {us(x, n):.2f} µs per append; Herald / XADD = {us(r, ev) / us(x, n):.1f}x")
PY
