#!/bin/sh
# The million-line figures of issue 19, at SCALE_LINES (default 1,000,000):
# lines and bindings (bench/scale), then the renewal of as many
# subscriptions (bench/billing). Niced: the machine may be shared.
#   SCALE_LINES=100000 bench/scale/run.sh    # a quick check
set -eu
cd "$(dirname "$0")/../.."
: "${SCALE_LINES:=1000000}"
: "${PBXD_TEST_DATABASE_URL:=postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable}"
export SCALE_LINES PBXD_TEST_DATABASE_URL
uptime
nice -n 10 go test ./bench/scale -run '^$' -bench Scale -benchtime 1x -timeout 4h -v
uptime
PBXD_BENCH_SUBS=$SCALE_LINES nice -n 10 go test ./bench/billing -run '^$' -bench Renewal -benchtime 1x -timeout 4h -v
uptime
