#!/usr/bin/env bash
# Measures Herald against the same-run baseline (bench/baseline: a plain go-sse
# broadcast server) with `herald bench`, on loopback. Each server runs pinned
# to core 0 and the load generator to core 1 (taskset), except the throughput
# runs, which give both cores to both as the targets say.
#
# Usage: scripts/bench.sh [outdir]      (default: bench-results/)
# Results: one JSON file per run in outdir, and a summary on stdout.
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-bench-results}"
mkdir -p "$out"
bin="$(mktemp -d)"
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$bin"' EXIT

CGO_ENABLED=0 go build -o "$bin/herald" ./cmd/herald
CGO_ENABLED=0 go build -o "$bin/baseline" ./bench/baseline
ulimit -n "$(ulimit -Hn)"

HERALD_ADDR=127.0.0.1:18700
BASELINE_ADDR=127.0.0.1:18701

start_server() { # name cpus
  local name=$1 cpus=$2
  if [ "$name" = herald ]; then
    taskset -c "$cpus" "$bin/herald" serve --addr "$HERALD_ADDR" --log-level error --demo=false >"$out/herald.log" 2>&1 &
    addr=$HERALD_ADDR
  else
    taskset -c "$cpus" "$bin/baseline" --addr "$BASELINE_ADDR" >"$out/baseline.log" 2>&1 &
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
  start_server "$server" "$scpu"
  echo "== $label ($server)" >&2
  taskset -c "$bcpu" "$bin/herald" bench --server "http://$addr" --pid "$pid" --json "$@" >"$out/$label-$server.json" || true
  stop_server
}

for s in herald baseline; do
  run fanout-1k "$s" 0 1 --scenario fanout --duration 20s
  run fanout-5k "$s" 0 1 --scenario fanout --subscribers 5000 --duration 20s
  run fanout-10k "$s" 0 1 --scenario fanout --subscribers 10000 --duration 20s
  run throughput "$s" 0-1 0-1 --scenario throughput --publishers 32
  run idle-10k "$s" 0 1 --scenario idle
  run slow-consumer "$s" 0 1 --scenario slow-consumer
done
run throughput-batch herald 0-1 0-1 --scenario throughput-batch --publishers 16
run resume-storm herald 0 1 --scenario resume-storm
run fanout-1k-ws herald 0 1 --scenario fanout --transport ws --duration 20s

go run ./internal/bench/report "$out"
