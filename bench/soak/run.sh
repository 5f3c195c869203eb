#!/usr/bin/env bash
# Bounded soak of the built-in registrar under the attacks of issue 15
# (main.go): 1,000,000 datagrams from 1,000,000 sources, 20,000 idle TCP
# connections, 110,000 failing REGISTER round trips from as many sources,
# a legitimate phone registering throughout. Prints per phase RSS, heap,
# goroutines, the slowest /metrics scrape and the phone's success rate.
# Takes 3-5 minutes on 2 cores; loopback only (127.0.0.0/8 sources).
#
#   bench/soak/run.sh                                      # full bounds
#   bench/soak/run.sh -datagrams 100000 -tcp 2000 -flood 10000   # quick
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
bin=$(mktemp -d /tmp/pbxd-soak.XXXXXX)
trap 'rm -rf "$bin"' EXIT
go build -o "$bin/soak" ./bench/soak
exec nice "$bin/soak" "$@"
