#!/usr/bin/env bash
# pbxd's built-in registrar against Kamailio (htable: credentials in memory)
# under the same sipp load, in one run: ROUNDS alternating rounds (Kamailio
# first in odd rounds, pbxd first in even ones), each measuring 10,000/s
# offered (CPU-µs per registration, failures) and the closed loop
# (capacity). Prints every round, then the ratios of the medians. Then,
# pbxd alone: 100,000 subscribers registered in one burst (first-time
# registrations, closed loop), the write-behind drain time after it and
# the memory per registered line. Then, pbxd alone, TCP_PHONES (10,000)
# phones on persistent TCP connections re-registering every 60 s
# (bench/registrar/tcp.sh): CPU per registration.
#
#   bench/registrar/compare.sh            # from the repository root or anywhere
#
# Pinning (PIN=1, the default on 2 or more cores): the registrar under test
# (pbxd's harness process, or Kamailio with all its worker children) runs on
# REG_CPUS (0) and every sipp process on SIPP_CPUS (the other cores), with
# taskset, so that the closed loop measures the registrar and not the load
# generator fighting it for a core. Both registrars get one core: Go sizes
# GOMAXPROCS from the affinity mask (1), and Kamailio runs KAM_CHILDREN UDP
# workers (4 unpinned, as the shared harness; 1 pinned: see the README).
# PIN=0 is the old mode: everything floats over all cores.
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
# 127.0.0.1:5432 as user postgres when it answers, else none), KAM_PORT (5070),
# PIN (1), REG_CPUS (0), SIPP_CPUS (1-(ncpu-1)), KAM_CHILDREN (1 pinned, 4
# unpinned), TCP_PHONES (10000; 0 skips the TCP part), TCP_DURATION (150s).
#
# Runtime on a quiet 2-core machine: about 1 minute per registrar per round
# (6-7 minutes for 3 rounds), plus about 2 minutes for the 100k burst and
# about 3.5 minutes for TCP: 12-13 minutes in all.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
ROUNDS=${ROUNDS:-3}
RATE=${RATE:-10000}
export COUNT=${COUNT:-50000} MAX_COUNT=${MAX_COUNT:-200000} SIPP_PROCS=${SIPP_PROCS:-3}
BIG_USERS=${BIG_USERS:-100000}
SHARED=${SHARED:-$ROOT/../shared/bench/registrar}
KAM_PORT=${KAM_PORT:-5070}
NCPU=$(nproc)
PIN=${PIN:-$([ "$NCPU" -ge 2 ] && echo 1 || echo 0)}
REG_CPUS=${REG_CPUS:-0}
SIPP_CPUS=${SIPP_CPUS:-1-$((NCPU - 1))}
TCP_PHONES=${TCP_PHONES:-10000}
TCP_DURATION=${TCP_DURATION:-150s}
if [ "$PIN" = 1 ]; then
  command -v taskset >/dev/null || { echo "taskset not found (util-linux); PIN=0 runs unpinned" >&2; exit 2; }
  KAM_CHILDREN=${KAM_CHILDREN:-1}
else
  KAM_CHILDREN=${KAM_CHILDREN:-4}
fi

command -v sipp >/dev/null || { echo "sipp not installed (apt-get install sip-tester)" >&2; exit 2; }
DB=${PBXD_BENCH_DB-}
if [ -z "${PBXD_BENCH_DB+x}" ] && command -v pg_isready >/dev/null &&
  pg_isready -q -h 127.0.0.1 -p 5432 -U postgres 2>/dev/null; then
  DB="postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"
fi

WORK=$(mktemp -d /tmp/pbxd-compare.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
(cd "$ROOT" && go build -o "$WORK/registrar-bench" ./bench/registrar && go build -o "$WORK/tcpphones" ./bench/registrar/tcpphones)

# Pinning: wrappers first on PATH put every sipp (started by either
# harness, through sipp-register.sh) on SIPP_CPUS and Kamailio (its
# children inherit the mask) on REG_CPUS; pbxd's harness is started under
# taskset below. The harness scripts are not changed.
REG=() PHONE_CPUS=""
if [ "$PIN" = 1 ]; then
  PHONE_CPUS=$SIPP_CPUS
  mkdir -p "$WORK/pin"
  for t in sipp:"$SIPP_CPUS" kamailio:"$REG_CPUS"; do
    name=${t%%:*} cpus=${t#*:} real=$(command -v "${t%%:*}" || true)
    [ -n "$real" ] || continue
    printf '#!/bin/sh\nexec taskset -c %s %s "$@"\n' "$cpus" "$real" >"$WORK/pin/$name"
    chmod +x "$WORK/pin/$name"
  done
  export PATH="$WORK/pin:$PATH"
  REG=(taskset -c "$REG_CPUS")
fi

KAM=0
if [ -x "$SHARED/run-kamailio.sh" ] && command -v kamailio >/dev/null; then
  KAM=1
  cp -r "$SHARED" "$WORK/kam"
  cp "$HERE/sipp/register-digest.xml" "$WORK/kam/sipp/register-digest.xml"
else
  echo "# Kamailio or $SHARED missing: pbxd only" >&2
fi

pinning="unpinned (registrar and sipp share all $NCPU cores)"
[ "$PIN" = 1 ] && pinning="registrar on cpu $REG_CPUS, sipp on cpu $SIPP_CPUS (taskset)"
echo "# compare: $(date -u +%FT%TZ) $NCPU cores, load $(cut -d' ' -f1-3 /proc/loadavg), rounds=$ROUNDS rate=$RATE count=$COUNT max_count=$MAX_COUNT sipp_procs=$SIPP_PROCS db=${DB:+postgresql}"
echo "# pinning: $pinning; kamailio children=$KAM_CHILDREN"

# field NAME LINE: the value of NAME=... in a RESULT line
field() { awk -v k="$1" '{for (i = 1; i <= NF; i++) if (index($i, k "=") == 1) {print substr($i, length(k) + 2); exit}}' <<<"$2"; }

run_kam() {
  local out
  out=$(DATA_DIR="$WORK/kamdata" PORT=$KAM_PORT CHILDREN=$KAM_CHILDREN "$WORK/kam/run-kamailio.sh" htable "$RATE" max 2>"$WORK/kam.err") ||
    { echo "kamailio run failed:" >&2; tail -20 "$WORK/kam.err" >&2; return 1; }
  grep '^RESULT' <<<"$out" | sed 's/^/  kamailio /'
  grep '^RESULT' <<<"$out" | sed "s/\$/ round=$1/" >>"$WORK/kam.results"
}
run_pbxd() {
  local out
  out=$(cd "$HERE" && "${REG[@]}" "$WORK/registrar-bench" -listen 127.0.0.1:0 -rates "$RATE,max" -count "$COUNT" \
    -max-count "$MAX_COUNT" -sipp-procs "$SIPP_PROCS" ${DB:+-db "$DB"} 2>"$WORK/pbxd.err") ||
    { echo "pbxd run failed:" >&2; tail -20 "$WORK/pbxd.err" >&2; return 1; }
  grep '^# pbxd' <<<"$out" | sed 's/^# /  # /'
  grep '^RESULT rate' <<<"$out" | sed 's/^/  pbxd     /'
  grep '^RESULT rate' <<<"$out" | sed "s/\$/ round=$1/" >>"$WORK/pbxd.results"
}

for round in $(seq "$ROUNDS"); do
  echo "## round $round (load $(cut -d' ' -f1 /proc/loadavg))"
  # A failed run (e.g. its auth check timing out on a busy machine) is
  # reported and leaves a hole in the table; the other runs go on.
  if [ "$KAM" = 1 ] && [ $((round % 2)) = 1 ]; then run_kam "$round" || true; fi
  run_pbxd "$round" || true
  if [ "$KAM" = 1 ] && [ $((round % 2)) = 0 ]; then run_kam "$round" || true; fi
done

# median of the values of field $2 in lines of file $1 with rate=$3
median() {
  grep -s " rate=$3 " "$1" | while read -r l; do field "$2" "$l"; done | tr -d '%' | sort -g |
    awk '{v[NR] = $1} END {if (NR == 0) print 0; else if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2}'
}
sum() { grep -s " rate=$3 " "$1" | while read -r l; do field "$2" "$l"; done | awk '{s += $1} END {print s + 0}'; }

# nth NAME FILE RATE N: field NAME of round N's line of FILE with rate=RATE
nth() { field "$1" "$(grep -s " rate=$3 .* round=$4\$" "$2")" | tr -d '%'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {if (a == "" || b == "" || b + 0 == 0) print "-"; else printf "%.2f", a / b}'; }

echo "## every round (capacity: closed loop, registrations/s; cpu: the registrar's, % of one core; us/reg: registrar CPU-us per registration)"
printf '%-6s | %-27s | %-19s | %-27s | %-13s\n' round "capacity pbxd kam ratio" "cpu% pbxd kam" "us/reg at $RATE/s pbxd kam ratio" "failed at $RATE/s pbxd kam"
for round in $(seq "$ROUNDS"); do
  pc=$(nth reg_per_s "$WORK/pbxd.results" max "$round"); pcpu=$(nth pbxd_cpu "$WORK/pbxd.results" max "$round")
  pu=$(nth us_per_reg "$WORK/pbxd.results" "$RATE" "$round"); pf=$(nth failed "$WORK/pbxd.results" "$RATE" "$round")
  kc="" kcpu="" ku="" kf=""
  if [ "$KAM" = 1 ]; then
    kc=$(nth reg_per_s "$WORK/kam.results" max "$round"); kcpu=$(nth kamailio_cpu "$WORK/kam.results" max "$round")
    ku=$(nth us_per_reg "$WORK/kam.results" "$RATE" "$round"); kf=$(nth failed "$WORK/kam.results" "$RATE" "$round")
  fi
  printf '%-6s | %7s %7s %5s x    | %5s %5s           | %7s %7s %5s x            | %6s %6s\n' "$round" "$pc" "${kc:--}" "$(ratio "$pc" "$kc")" \
    "$pcpu" "${kcpu:--}" "$pu" "${ku:--}" "$(ratio "$pu" "$ku")" "$pf" "${kf:--}"
done

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
  p_usmax=$(median "$WORK/pbxd.results" us_per_reg max)
  k_usmax=$(median "$WORK/kam.results" us_per_reg max)
  awk -v pc="$p_cap" -v kc="$k_cap" -v pu="$p_us" -v ku="$k_us" -v pm="$p_usmax" -v km="$k_usmax" 'BEGIN {
    printf "RATIO capacity pbxd/kamailio = %.2f   (target >= 1.00)\n", (kc > 0 ? pc / kc : 0)
    printf "RATIO cpu_us_per_reg pbxd/kamailio = %.2f   (target <= 1.00; at the fixed rate)\n", (ku > 0 ? pu / ku : 0)
    printf "ratio cpu_us_per_reg in the closed loop: %s / %s = %.2f   (for reference: no failures, no retransmissions to pay for)\n", pm, km, (km > 0 ? pm / km : 0) }'
fi

if [ "$BIG_USERS" -gt 0 ]; then
  echo "## pbxd, $BIG_USERS subscribers: burst of first-time registrations (closed loop), write-behind drain, memory"
  (cd "$HERE" && "${REG[@]}" "$WORK/registrar-bench" -listen 127.0.0.1:0 -users "$BIG_USERS" -warmup-rate max -rates "" -memory \
    -sipp-procs "$SIPP_PROCS" ${DB:+-db "$DB"} 2>"$WORK/big.err") | grep -E '^(RESULT|memory|warm-up)' ||
    { echo "100k run failed:" >&2; tail -20 "$WORK/big.err" >&2; }
fi

if [ "$TCP_PHONES" -gt 0 ]; then
  echo "## pbxd, $TCP_PHONES phones on persistent TCP connections, re-registering every 60 s for $TCP_DURATION"
  if [ "$(ulimit -n)" -le $((TCP_PHONES + 500)) ] && ! ulimit -n $((TCP_PHONES + 1000)) 2>/dev/null; then
    echo "ulimit -n $(ulimit -n) is too low for $TCP_PHONES phones: TCP part skipped" >&2
  else
    # The phones (one Go process) are the load generator: on SIPP_CPUS.
    (cd "$HERE" && "${REG[@]}" "$WORK/registrar-bench" -listen 127.0.0.1:0 -users "$TCP_PHONES" \
      -tcp-phones "$WORK/tcpphones" -tcp-cpus "$PHONE_CPUS" \
      -tcp-args "-interval 60s -duration $TCP_DURATION -ramp 20s -report 30s" 2>"$WORK/tcp.err") | grep -E '^RESULT' ||
      { echo "TCP run failed:" >&2; tail -20 "$WORK/tcp.err" >&2; }
  fi
fi
