#!/usr/bin/env bash
# pbxd's registrar with phones on persistent TCP connections: PHONES
# (10,000) phones each open one connection, register (digest, a fresh
# challenge each time), and re-register on it every INTERVAL (60 s) for
# DURATION (150 s) after all are registered. Prints the registrar's CPU per
# registration for the connect phase and for the steady state.
#
#   bench/registrar/tcp.sh
#   PHONES=2000 INTERVAL=20s DURATION=60s bench/registrar/tcp.sh
#
# Each phone needs a file descriptor in the client and one in the
# registrar (separate processes); ulimit -n must exceed PHONES. Loopback only.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
PHONES=${PHONES:-10000} INTERVAL=${INTERVAL:-60s} DURATION=${DURATION:-150s} RAMP=${RAMP:-20s}
[ "$(ulimit -n)" -gt $((PHONES + 500)) ] || ulimit -n $((PHONES + 1000)) 2>/dev/null ||
  { echo "ulimit -n $(ulimit -n) is too low for $PHONES phones" >&2; exit 2; }
bin=$(mktemp -d /tmp/pbxd-tcp-bench.XXXXXX)
trap 'rm -rf "$bin"' EXIT
(cd "$HERE/../.." && go build -o "$bin/registrar-bench" ./bench/registrar && go build -o "$bin/tcpphones" ./bench/registrar/tcpphones)
cd "$HERE"
"$bin/registrar-bench" -listen 127.0.0.1:0 -users "$PHONES" -tcp-phones "$bin/tcpphones" \
  -tcp-args "-interval $INTERVAL -duration $DURATION -ramp $RAMP -report 30s" "$@"
