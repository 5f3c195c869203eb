#!/usr/bin/env bash
# Boots pbxd.service under a real systemd and checks it the way an operator
# would use it: a Debian bookworm root made with debootstrap, booted with
# systemd-nspawn -b --private-network, pbxd installed by the README's own
# "Running under systemd" commands, against a local PostgreSQL.
#
# Checks: start and READY, STATUS=, reload, a bad reload (keeps running,
# logged at priority err), journal priorities, the watchdog (a frozen pbxd
# is killed and restarted), a permanent configuration error (exit 78, no
# restart loop), and a clean stop.
#
# Not part of scripts/test: it needs root, debootstrap and systemd-container
# (apt-get install -y debootstrap systemd-container) and a few minutes.
#
# Usage: systemd/check-unit.sh
#   PBXD_CHECK_ROOTFS  where the debootstrapped root is cached
#                      (default /var/cache/pbxd-check-unit/bookworm)
#   PBXD_CHECK_MIRROR  Debian mirror (default http://deb.debian.org/debian)
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD

if [ "$(id -u)" -ne 0 ]; then
  echo "check-unit: needs root (debootstrap, systemd-nspawn)" >&2
  exit 2
fi
for p in debootstrap systemd-nspawn nsenter go; do
  type -P "$p" >/dev/null || { echo "check-unit: $p missing: apt-get install -y debootstrap systemd-container" >&2; exit 2; }
done

cache=${PBXD_CHECK_ROOTFS:-/var/cache/pbxd-check-unit/bookworm}
if [ ! -x "$cache/usr/lib/systemd/systemd" ]; then
  echo "check-unit: debootstrap into $cache (once; a few minutes)"
  rm -rf "$cache.tmp"
  mkdir -p "$(dirname "$cache")"
  debootstrap --variant=minbase --include=systemd,systemd-sysv,dbus,postgresql,procps,openssl \
    bookworm "$cache.tmp" "${PBXD_CHECK_MIRROR:-http://deb.debian.org/debian}" >/dev/null
  mv "$cache.tmp" "$cache"
fi

work=$(mktemp -d /var/tmp/pbxd-check-unit.XXXXXX)
root=$work/root
nspawn_pid=
leader=
cleanup() {
  if [ -n "${PBXD_CHECK_KEEP:-}" ]; then
    echo "check-unit: kept: nspawn pid $nspawn_pid, container pid 1 = $leader, root $root" >&2
    return
  fi
  if [ -n "$nspawn_pid" ] && kill -0 "$nspawn_pid" 2>/dev/null; then
    kill -TERM "$nspawn_pid" 2>/dev/null || true   # nspawn powers the container off
    for _ in $(seq 30); do kill -0 "$nspawn_pid" 2>/dev/null || break; sleep 1; done
    kill -KILL "$nspawn_pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT
cp -a "$cache" "$root"
# pg_createcluster picked another port if the host's 5432 was taken while
# debootstrap ran; inside its own network namespace the default is free.
sed -i 's/^port = .*/port = 5432/' "$root"/etc/postgresql/*/main/postgresql.conf

# What the README's commands expect to find in a checkout.
src=$root/root/pbxd
mkdir -p "$src/configs"
CGO_ENABLED=0 go build -o "$src/pbxd" ./cmd/pbxd
cp -r systemd "$src/"
cp configs/pbxd.yaml "$src/configs/"
# The README's blocks under "Running under systemd", as printed.
awk '/^## Running under systemd/{on=1; next} /^## /{on=0} on && /^```sh$/{b=1; next} on && /^```$/{b=0; next} b' \
  README.md > "$src/readme-steps.sh"
[ -s "$src/readme-steps.sh" ] || { echo "check-unit: no sh blocks under 'Running under systemd' in README.md" >&2; exit 1; }

machine=pbxdcheck$$
systemd-nspawn --quiet --register=no --keep-unit --private-network --console=passive \
  -M "$machine" -D "$root" -b >"$work/boot.log" 2>&1 &
nspawn_pid=$!

# The container's PID 1 is nspawn's child running systemd.
leader=
for _ in $(seq 60); do
  leader=$(ps -o pid= --ppid "$nspawn_pid" 2>/dev/null | tr -d " " | head -n 1 || true)
  [ -n "$leader" ] && [ "$(cat "/proc/$leader/comm" 2>/dev/null)" = systemd ] && break
  leader=
  sleep 1
done
[ -n "$leader" ] || { cat "$work/boot.log" >&2; echo "check-unit: the container did not boot" >&2; exit 1; }
inside() { nsenter -t "$leader" -m -u -i -n -p -C -- /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 /bin/bash -c "$1"; }

fails=0
ok() { echo "ok   - $*"; }
bad() { echo "FAIL - $*"; fails=$((fails + 1)); }
step() { # description, then a command run in the container that must work
  local out
  out=$(inside "$2" 2>&1) || { bad "$1"; echo "$out" | sed 's/^/       /'; }
}
check() { # description, then a command run in the container
  local out
  if out=$(inside "$2" 2>&1); then ok "$1"; else bad "$1"; echo "$out" | sed 's/^/       /'; fi
}
show() { inside "systemctl show -P $1 pbxd"; }
wait_for() { # seconds, condition
  for _ in $(seq "$1"); do inside "$2" >/dev/null 2>&1 && return 0; sleep 1; done
  return 1
}

wait_for 120 'state=$(systemctl is-system-running); [ "$state" = running ] || [ "$state" = degraded ]' \
  || bad "the container's systemd never finished booting"
echo "container: $(inside 'systemctl --version | head -n 1'), $(inside 'systemctl is-system-running' || true)"
wait_for 60 'pg_isready -q' || bad "PostgreSQL did not start in the container"

# 1. Start, following the README.
if inside 'cd /root/pbxd && set -ex && . ./readme-steps.sh' >"$work/steps.log" 2>&1; then
  ok "the README's systemd steps run as printed"
else
  bad "the README's systemd steps"; sed 's/^/       /' "$work/steps.log"
fi
check "pbxd is active after enable --now (Type=notify: READY=1 received)" '[ "$(systemctl is-active pbxd)" = active ]'
[ "$(show ActiveState)" = active ] || inside 'journalctl -u pbxd -n 20 -o cat' | sed 's/^/       /'
check "STATUS= says ready, lines, registrations and the backend" \
  'systemctl show -P StatusText pbxd | grep -E "^ready; .*registrations: [0-9]+; backend builtin"'
echo "       StatusText: $(show StatusText)"
check "/readyz answers 200 with the database and backend up" \
  'exec 3<>/dev/tcp/127.0.0.1/8080 && printf "GET /readyz HTTP/1.0\r\n\r\n" >&3 && head -n 1 <&3 | grep -q " 200 "'

# 2. Reload and a bad reload.
pid=$(show MainPID)
check "reload (SIGHUP) keeps the same process and logs it" \
  "systemctl reload pbxd && sleep 1 && [ \"\$(systemctl show -P MainPID pbxd)\" = $pid ] && journalctl -u pbxd -o cat | grep -q 'configuration reloaded'"
step "change a setting that needs a restart (a warning)" \
  "cp /etc/pbxd/pbxd.yaml /root/pbxd.yaml.orig && sed -i 's/listen: 127.0.0.1:8080/listen: 127.0.0.1:8081/' /etc/pbxd/pbxd.yaml && systemctl reload pbxd && sleep 1 \
   && journalctl _SYSTEMD_UNIT=pbxd.service -o cat | grep -q 'needs a restart' && cp /root/pbxd.yaml.orig /etc/pbxd/pbxd.yaml && systemctl reload pbxd"
step "break the config" 'cp /etc/pbxd/pbxd.yaml /root/pbxd.yaml.good && printf "log:\n  levle: debug\n" >> /etc/pbxd/pbxd.yaml'
check "a bad reload keeps pbxd running, logs at priority err, says so in STATUS=" \
  "systemctl reload pbxd && sleep 1 && [ \"\$(systemctl is-active pbxd)\" = active ] && [ \"\$(systemctl show -P MainPID pbxd)\" = $pid ] \
   && journalctl -u pbxd -p err -o cat | grep -q 'reload failed' && systemctl show -P StatusText pbxd | grep -q 'last reload failed'"
step "restore the config" 'cp /root/pbxd.yaml.good /etc/pbxd/pbxd.yaml && systemctl reload pbxd'

# 3. Journal priorities: every line pbxd wrote is stored at its level's
#    priority (ERROR 3, WARN 4, INFO 6), with the <N> prefix stripped.
check "journal priorities follow the log levels" '
  for p in err:ERROR warning:WARN info:INFO; do
    lines=$(journalctl _SYSTEMD_UNIT=pbxd.service -p ${p%%:*}..${p%%:*} -o cat)
    [ -n "$lines" ] || { echo "nothing at priority ${p%%:*}"; exit 1; }
    if echo "$lines" | grep -v "level=${p#*:} "; then echo "^ at priority ${p%%:*}"; exit 1; fi
  done
  ! journalctl _SYSTEMD_UNIT=pbxd.service -o cat | grep "^<[0-9]>"'
for p in err warning info; do
  echo "       priority $p: $(inside "journalctl _SYSTEMD_UNIT=pbxd.service -p $p..$p -o cat | wc -l") lines, e.g. $(inside "journalctl _SYSTEMD_UNIT=pbxd.service -p $p..$p -o cat | tail -n 1 | cut -c1-150")"
done

# 4. Watchdog: a frozen pbxd is killed and restarted (a drop-in shortens
#    WatchdogSec to keep the run short).
step "watchdog drop-in" 'mkdir -p /etc/systemd/system/pbxd.service.d && printf "[Service]\nWatchdogSec=6s\n" > /etc/systemd/system/pbxd.service.d/watchdog.conf && systemctl daemon-reload && systemctl restart pbxd'
frozen=$(show MainPID)
# Never "kill 0": it would signal this script's own process group.
if [ "$frozen" -gt 0 ] 2>/dev/null; then step "freeze pbxd" "kill -STOP $frozen"; else bad "no pbxd process to freeze"; fi
if wait_for 60 "[ \"\$(systemctl show -P MainPID pbxd)\" != $frozen ] && [ \"\$(systemctl is-active pbxd)\" = active ]"; then
  ok "watchdog: pbxd frozen (SIGSTOP) is killed after WatchdogSec and restarted"
  echo "       $(inside "journalctl -u pbxd -o cat | grep -m1 -i 'watchdog timeout'")"
else
  bad "watchdog: frozen pbxd $frozen not replaced"
fi
step "remove the watchdog drop-in" 'rm -r /etc/systemd/system/pbxd.service.d && systemctl daemon-reload && systemctl restart pbxd'

# 5. A permanent configuration error: exit 78, no restart loop.
step "make the config unreadable" 'chmod 0600 /etc/pbxd/pbxd.yaml && chown root:root /etc/pbxd/pbxd.yaml'
inside 'systemctl restart pbxd' >/dev/null 2>&1 || true
sleep 12
check "an unreadable config: exit 78, failed, not restarted" \
  '[ "$(systemctl show -P ExecMainStatus pbxd)" = 78 ] && [ "$(systemctl is-active pbxd)" = failed ] && [ "$(systemctl show -P NRestarts pbxd)" = 0 ] \
   && journalctl -u pbxd -p err -o cat | grep -q "permission denied"'
echo "       $(inside 'systemctl show -p ActiveState -p Result -p ExecMainStatus -p NRestarts pbxd | tr "\n" " "')"
step "restore the config's owner and mode, start again" 'chown root:pbxd /etc/pbxd/pbxd.yaml && chmod 0640 /etc/pbxd/pbxd.yaml && systemctl reset-failed pbxd && systemctl start pbxd'
check "started again once the config is fixed" '[ "$(systemctl is-active pbxd)" = active ]'

# 6. Stop.
check "stop: clean exit, inactive, logged" \
  'systemctl stop pbxd && [ "$(systemctl is-active pbxd)" = inactive ] && [ "$(systemctl show -P Result pbxd)" = success ] && journalctl -u pbxd -o cat | tail -n 5 | grep -q "pbxd stopped"'

echo "systemd-analyze security: $(inside 'systemd-analyze security pbxd 2>/dev/null | tail -n 1')"
if [ "$fails" -ne 0 ]; then
  echo "check-unit: $fails check(s) failed"
  exit 1
fi
echo "check-unit: all checks passed"
