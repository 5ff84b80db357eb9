#!/usr/bin/env bash
# Measures Herald against the same-run baseline (bench/baseline: a plain go-sse
# broadcast server) and floor (bench/floor: one write(2) per subscriber per
# event, nothing else) with `herald bench`, on loopback. Each server runs pinned
# to core 0 and the load generator to core 1 (taskset), except the throughput
# runs, which give both cores to both as the targets say. docs/benchmarks.md
# explains every run and records the results.
#
# Usage: scripts/bench.sh [outdir]      (default: bench-results/)
#   BENCH_NICE=-10   run servers and load generator at this nice level (root
#                    only; on a machine shared with other work it keeps the
#                    scheduler from preempting the runs)
#   ONLY="fanout-1k idle-10k"   run only these labels
# Results: one JSON file per run in outdir, and a summary on stdout.
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-bench-results}"
mkdir -p "$out"
bin="$(mktemp -d)"
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$bin"' EXIT

CGO_ENABLED=0 go build -o "$bin/herald" ./cmd/herald
CGO_ENABLED=0 go build -o "$bin/baseline" ./bench/baseline
CGO_ENABLED=0 go build -o "$bin/floor" ./bench/floor
ulimit -n "$(ulimit -Hn)"

HERALD_ADDR=127.0.0.1:18700
BASELINE_ADDR=127.0.0.1:18701
FLOOR_ADDR=127.0.0.1:18702
nice=()
if [ -n "${BENCH_NICE:-}" ]; then nice=(nice -n "$BENCH_NICE"); fi

start_server() { # name cpus
  local name=$1 cpus=$2
  if [ "$name" = herald ]; then
    # No per-address limits or publish rate: every client is 127.0.0.1.
    # The demo is on only for the runs that subscribe to it (FACE=demo).
    "${nice[@]}" taskset -c "$cpus" "$bin/herald" serve --addr "$HERALD_ADDR" --log-level error --demo="${DEMO:-false}" \
      --max-connections-per-ip 0 --max-idle-connections-per-ip 0 --publish-rate 0 >"$out/herald.log" 2>&1 &
    addr=$HERALD_ADDR
  elif [ "$name" = floor ]; then
    "${nice[@]}" taskset -c "$cpus" "$bin/floor" --addr "$FLOOR_ADDR" >"$out/floor.log" 2>&1 &
    addr=$FLOOR_ADDR
  else
    "${nice[@]}" taskset -c "$cpus" "$bin/baseline" --addr "$BASELINE_ADDR" >"$out/baseline.log" 2>&1 &
    addr=$BASELINE_ADDR
  fi
  pid=$!
  for _ in $(seq 1 100); do
    (exec 3<>"/dev/tcp/${addr%:*}/${addr#*:}") 2>/dev/null && return 0
    sleep 0.05
  done
  echo "bench.sh: $name did not start" >&2
  exit 1
}

stop_server() { kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; }

run() { # label server cpus-server cpus-bench bench-args...
  local label=$1 server=$2 scpu=$3 bcpu=$4
  shift 4
  if [ -n "${ONLY:-}" ] && [[ " $ONLY " != *" $label "* ]]; then return 0; fi
  start_server "$server" "$scpu"
  echo "== $label ($server)" >&2
  "${nice[@]}" taskset -c "$bcpu" "$bin/herald" bench --server "http://$addr" --pid "$pid" --json "$@" >"$out/$label-$server.json" || true
  stop_server
}

for s in herald baseline; do
  # Targets: CPU per delivery and p99 at 1,000 subscribers x 100 events/s
  # (4 publishers, so that the rate holds whatever one publish's round trip).
  run fanout-1k "$s" 0 1 --scenario fanout --publishers 4 --duration 20s
  # The plot: p99 against 1k, 5k, 10k subscribers at 10 events/s (at 100/s,
  # 10k subscribers would be 1M deliveries/s, beyond one core of any server
  # and of the load generator).
  run plot-1k "$s" 0 1 --scenario fanout --publishers 4 --rate 10 --duration 20s
  run plot-5k "$s" 0 1 --scenario fanout --publishers 4 --rate 10 --subscribers 5000 --duration 20s
  run plot-10k "$s" 0 1 --scenario fanout --publishers 4 --rate 10 --subscribers 10000 --duration 20s
  # Single-event publishes, both cores: the target's 8 publishers, and 32.
  run throughput-8 "$s" 0-1 0-1 --scenario throughput --publishers 8
  run throughput-32 "$s" 0-1 0-1 --scenario throughput --publishers 32
  run idle-10k "$s" 0 1 --scenario idle
  # One stalled subscriber among 1,000, and the same run without it.
  run slow-consumer "$s" 0 1 --scenario slow-consumer --publishers 4
  run slow-consumer-ref "$s" 0 1 --scenario slow-consumer --publishers 4 --stalled 0
  # Memory with 1,000 subscribers that never read (10 that do).
  run stalled-1000 "$s" 0 1 --scenario slow-consumer --subscribers 10 --stalled 1000 --size 10000
done
# The floor: one write per subscriber per event and nothing else.
run fanout-1k floor 0 1 --scenario fanout --publishers 4 --duration 20s
# Herald only: the baseline has no batch form, no resume, no WebSocket.
run throughput-batch herald 0-1 0-1 --scenario throughput-batch --publishers 16
run throughput-batch-1sub herald 0-1 0-1 --scenario throughput-batch --publishers 16 --subscribers 1
run idle-19k herald 0 1 --scenario idle --subscribers 19000
run resume-storm herald 0 1 --scenario resume-storm
run fanout-1k-ws herald 0 1 --scenario fanout --transport ws --publishers 4 --duration 20s
# Idle memory per connection on every streaming face, each on a fresh server.
run idle-3k-events herald 0 1 --scenario idle --subscribers 3000
run idle-3k-mercure herald 0 1 --scenario idle --subscribers 3000 --face mercure
DEMO=true run idle-3k-demo herald 0 1 --scenario idle --subscribers 3000 --face demo
run idle-3k-ws herald 0 1 --scenario idle --subscribers 3000 --transport ws
run chat herald 0 1 --scenario chat --duration 30s

go run ./internal/bench/report "$out"
