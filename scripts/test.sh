#!/usr/bin/env bash
# Runs Herald's whole test suite. It first installs what the tests need when
# it is missing (Debian packages: chromium, redis-server, nats-server, npm;
# the npm packages of the AI SDK tests, with npm ci) and starts Redis
# (127.0.0.1:6379) and NATS with JetStream (127.0.0.1:4222) when they are not
# running, then runs `go test -race ./...`.
#
# Usage: scripts/test.sh [go test flags/packages]   (default: ./...)
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf 'test.sh: %s\n' "$*" >&2; }

need_pkgs=()
command -v chromium >/dev/null 2>&1 || need_pkgs+=(chromium)
command -v redis-server >/dev/null 2>&1 || need_pkgs+=(redis-server)
command -v nats-server >/dev/null 2>&1 || need_pkgs+=(nats-server)
command -v npm >/dev/null 2>&1 || need_pkgs+=(npm)
if ((${#need_pkgs[@]})); then
  log "installing ${need_pkgs[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need_pkgs[@]}" >/dev/null
fi

# The AI SDK tests (internal/aisdk) run the `ai` package from npm, and the
# Durable Streams tests (internal/e2e/streams) the protocol's conformance
# suite and client, each pinned by the package-lock.json beside them.
for dir in internal/aisdk/testdata/node internal/e2e/streams/testdata/node; do
  if [ ! -d "$dir/node_modules" ]; then
    log "npm ci in $dir"
    (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error)
  fi
done

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

if ! port_open 6379; then
  log "starting redis-server on 127.0.0.1:6379"
  mkdir -p /tmp/herald-redis
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no --dir /tmp/herald-redis --logfile /tmp/herald-redis/redis.log
fi
if ! port_open 4222; then
  log "starting nats-server with JetStream on 127.0.0.1:4222"
  mkdir -p /tmp/herald-nats
  nohup nats-server -a 127.0.0.1 -p 4222 -js -sd /tmp/herald-nats >/tmp/herald-nats/nats.log 2>&1 &
fi
for i in $(seq 1 50); do
  port_open 6379 && port_open 4222 && break
  sleep 0.2
done
port_open 6379 || { log "redis did not start"; exit 1; }
port_open 4222 || { log "nats did not start"; exit 1; }

export HERALD_CHROMIUM="${HERALD_CHROMIUM:-$(command -v chromium)}"
if [ "$#" -eq 0 ]; then set -- ./...; fi
log "go test -race $*"
exec go test -race -timeout 20m "$@"
