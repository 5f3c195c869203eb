#!/usr/bin/env bash
# Load harness of the built-in SIP registrar (package sip) with sipp.
# Builds and runs the in-process harness (main.go): provisions 10,000 lines,
# checks auth is enforced, warms up, sweeps rates, prints one RESULT line
# per rate (reg_per_s, pbxd_cpu, us_per_reg) like shared/bench/registrar.
#
#   bench/registrar/run.sh                          # default sweep
#   bench/registrar/run.sh -rates 10000,max         # chosen rates
#   bench/registrar/run.sh -users 100000 -rates "" -memory   # RSS of 100k registered lines
#
# Needs sipp (apt-get install sip-tester). Loopback only.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
bin=$(mktemp -d /tmp/pbxd-registrar-bench.XXXXXX)
trap 'rm -rf "$bin"' EXIT
go build -o "$bin/registrar-bench" ./bench/registrar
exec "$bin/registrar-bench" "$@"
