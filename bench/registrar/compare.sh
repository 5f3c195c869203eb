#!/usr/bin/env bash
# pbxd's built-in registrar against Kamailio (htable: credentials in memory)
# under the same sipp load, in one run: ROUNDS alternating rounds (Kamailio
# first in odd rounds, pbxd first in even ones), each measuring 10,000/s
# offered (CPU-µs per registration, failures) and the closed loop
# (capacity). Prints every round, then the ratios of the medians. Then,
# pbxd alone: 100,000 subscribers registered in one burst (first-time
# registrations, closed loop), the write-behind drain time after it and
# the memory per registered line.
#
#   bench/registrar/compare.sh            # from the repository root or anywhere
#
# Needs sipp, and for Kamailio the shared harness (../shared/bench/registrar
# next to the repository) and: apt-get install -y kamailio sip-tester sysstat.
# Without Kamailio it measures pbxd only. Loopback only. Nothing in
# ../shared is modified: it is copied to a scratch directory and run with
# pbxd's sipp scenario (phones' Allow/Supported headers: pbxd never answers
# an unauthenticated UDP request with more bytes than it sent), so both
# registrars get byte-identical load.
#
# Environment: ROUNDS (3), RATE (10000), COUNT (50000 per fixed rate),
# MAX_COUNT (200000 closed loop), SIPP_PROCS (3), BIG_USERS (100000; 0 skips
# the 100k part), SHARED (../shared/bench/registrar), PBXD_BENCH_DB
# (PostgreSQL admin URL for the write-behind; default the local server on
# 127.0.0.1:5432 as user postgres when it answers, else none), KAM_PORT (5070).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
ROUNDS=${ROUNDS:-3}
RATE=${RATE:-10000}
export COUNT=${COUNT:-50000} MAX_COUNT=${MAX_COUNT:-200000} SIPP_PROCS=${SIPP_PROCS:-3}
BIG_USERS=${BIG_USERS:-100000}
SHARED=${SHARED:-$ROOT/../shared/bench/registrar}
KAM_PORT=${KAM_PORT:-5070}

command -v sipp >/dev/null || { echo "sipp not installed (apt-get install sip-tester)" >&2; exit 2; }
DB=${PBXD_BENCH_DB-}
if [ -z "${PBXD_BENCH_DB+x}" ] && command -v pg_isready >/dev/null &&
  pg_isready -q -h 127.0.0.1 -p 5432 -U postgres 2>/dev/null; then
  DB="postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"
fi

WORK=$(mktemp -d /tmp/pbxd-compare.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
(cd "$ROOT" && go build -o "$WORK/registrar-bench" ./bench/registrar)

KAM=0
if [ -x "$SHARED/run-kamailio.sh" ] && command -v kamailio >/dev/null; then
  KAM=1
  cp -r "$SHARED" "$WORK/kam"
  cp "$HERE/sipp/register-digest.xml" "$WORK/kam/sipp/register-digest.xml"
else
  echo "# Kamailio or $SHARED missing: pbxd only" >&2
fi

echo "# compare: $(date -u +%FT%TZ) $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg), rounds=$ROUNDS rate=$RATE count=$COUNT max_count=$MAX_COUNT sipp_procs=$SIPP_PROCS db=${DB:+postgresql}"

# field NAME LINE: the value of NAME=... in a RESULT line
field() { awk -v k="$1" '{for (i = 1; i <= NF; i++) if (index($i, k "=") == 1) {print substr($i, length(k) + 2); exit}}' <<<"$2"; }

run_kam() {
  local out
  out=$(DATA_DIR="$WORK/kamdata" PORT=$KAM_PORT "$WORK/kam/run-kamailio.sh" htable "$RATE" max 2>"$WORK/kam.err") ||
    { echo "kamailio run failed:" >&2; tail -20 "$WORK/kam.err" >&2; return 1; }
  grep '^RESULT' <<<"$out" | sed 's/^/  kamailio /'
  grep '^RESULT' <<<"$out" >>"$WORK/kam.results"
}
run_pbxd() {
  local out
  out=$(cd "$HERE" && "$WORK/registrar-bench" -listen 127.0.0.1:0 -rates "$RATE,max" -count "$COUNT" \
    -max-count "$MAX_COUNT" -sipp-procs "$SIPP_PROCS" ${DB:+-db "$DB"} 2>"$WORK/pbxd.err") ||
    { echo "pbxd run failed:" >&2; tail -20 "$WORK/pbxd.err" >&2; return 1; }
  grep '^RESULT rate' <<<"$out" | sed 's/^/  pbxd     /'
  grep '^RESULT rate' <<<"$out" >>"$WORK/pbxd.results"
}

for round in $(seq "$ROUNDS"); do
  echo "## round $round (load $(cut -d' ' -f1 /proc/loadavg))"
  if [ "$KAM" = 1 ] && [ $((round % 2)) = 1 ]; then run_kam; fi
  run_pbxd
  if [ "$KAM" = 1 ] && [ $((round % 2)) = 0 ]; then run_kam; fi
done

# median of the values of field $2 in lines of file $1 with rate=$3
median() {
  grep " rate=$3 " "$1" | while read -r l; do field "$2" "$l"; done | tr -d '%' | sort -g |
    awk '{v[NR] = $1} END {if (NR == 0) print 0; else if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2}'
}
sum() { grep " rate=$3 " "$1" | while read -r l; do field "$2" "$l"; done | awk '{s += $1} END {print s + 0}'; }

echo "## medians of $ROUNDS rounds"
p_cap=$(median "$WORK/pbxd.results" reg_per_s max)
p_us=$(median "$WORK/pbxd.results" us_per_reg "$RATE")
p_rate=$(median "$WORK/pbxd.results" reg_per_s "$RATE")
p_fail=$(sum "$WORK/pbxd.results" failed "$RATE")
echo "pbxd:     capacity ${p_cap}/s  at ${RATE}/s: served ${p_rate}/s, ${p_us} CPU-us/reg, failed ${p_fail} (all rounds)"
if [ "$KAM" = 1 ]; then
  k_cap=$(median "$WORK/kam.results" reg_per_s max)
  k_us=$(median "$WORK/kam.results" us_per_reg "$RATE")
  k_rate=$(median "$WORK/kam.results" reg_per_s "$RATE")
  k_fail=$(sum "$WORK/kam.results" failed "$RATE")
  echo "kamailio: capacity ${k_cap}/s  at ${RATE}/s: served ${k_rate}/s, ${k_us} CPU-us/reg, failed ${k_fail} (all rounds)"
  awk -v pc="$p_cap" -v kc="$k_cap" -v pu="$p_us" -v ku="$k_us" 'BEGIN {
    printf "RATIO capacity pbxd/kamailio = %.2f   (target >= 1.00)\n", (kc > 0 ? pc / kc : 0)
    printf "RATIO cpu_us_per_reg pbxd/kamailio = %.2f   (target <= 1.00)\n", (ku > 0 ? pu / ku : 0) }'
fi

if [ "$BIG_USERS" -gt 0 ]; then
  echo "## pbxd, $BIG_USERS subscribers: burst of first-time registrations (closed loop), write-behind drain, memory"
  (cd "$HERE" && "$WORK/registrar-bench" -listen 127.0.0.1:0 -users "$BIG_USERS" -warmup-rate max -rates "" -memory \
    -sipp-procs "$SIPP_PROCS" ${DB:+-db "$DB"} 2>"$WORK/big.err") | grep -E '^(RESULT|memory|warm-up)' ||
    { echo "100k run failed:" >&2; tail -20 "$WORK/big.err" >&2; }
fi
