#!/usr/bin/env bash
# Checks systemd/mailtrail.service with systemd's own tools (issue 8):
#   1. `systemd-analyze security --offline=true` rates it "OK": overall exposure <= 1.5;
#   2. `systemd-analyze verify` prints nothing on stderr and exits 0;
#   3. the directives the daemon's contract relies on are present.
# verify refuses a unit whose ExecStart= binary does not exist, and /usr/bin/mailtrail is not
# installed on a build machine: it runs on a temporary copy whose /usr/bin/mailtrail paths point
# at the freshly built binary. Nothing else in the copy differs.
#
#   check_unit.sh UNIT_FILE BUILT_MAILTRAIL_BINARY
set -euo pipefail

if [ $# -ne 2 ]; then
  echo "usage: $0 UNIT_FILE BUILT_MAILTRAIL_BINARY" >&2
  exit 2
fi
unit=$1
binary=$2
max_exposure=1.5

command -v systemd-analyze >/dev/null || { echo "FAIL: systemd-analyze not found (package systemd)" >&2; exit 1; }
[ -f "$unit" ] || { echo "FAIL: no unit file $unit" >&2; exit 1; }
[ -x "$binary" ] || { echo "FAIL: built binary $binary is missing or not executable" >&2; exit 1; }

workdir=$(mktemp -d "${TMPDIR:-/tmp}/mailtrail-unit.XXXXXX")
trap 'rm -rf "$workdir"' 0
failures=0
fail() { echo "FAIL: $*" >&2; failures=$((failures + 1)); }

# 1. Exposure. The figure is parsed (to report it) and also checked by systemd's own
#    --threshold (exposure x 10), so a change in the output format cannot pass silently.
if ! systemd-analyze security --offline=true "$unit" >"$workdir/security.out" 2>"$workdir/security.err"; then
  cat "$workdir/security.err" >&2
  fail "systemd-analyze security exited non-zero"
fi
exposure=$(sed -n 's/.*Overall exposure level for mailtrail\.service: \([0-9.]*\).*/\1/p' "$workdir/security.out")
if [ -z "$exposure" ]; then
  cat "$workdir/security.out" "$workdir/security.err" >&2
  fail "no overall exposure figure in systemd-analyze security output"
else
  echo "exposure: $exposure (maximum $max_exposure)"
  if awk -v e="$exposure" -v m="$max_exposure" 'BEGIN { exit !(e > m) }'; then
    grep '✗' "$workdir/security.out" >&2 || true
    fail "exposure $exposure > $max_exposure"
  fi
fi
threshold=$(awk -v m="$max_exposure" 'BEGIN { printf "%d", m * 10 }')
if ! systemd-analyze security --offline=true --threshold="$threshold" "$unit" >/dev/null 2>&1; then
  fail "systemd-analyze security --threshold=$threshold rejects the unit (exposure $exposure)"
fi

# 2. verify, on the copy (its file name must stay mailtrail.service).
sed "s#/usr/bin/mailtrail#${binary}#g" "$unit" >"$workdir/mailtrail.service"
if ! grep -qF "ExecStart=${binary} run" "$workdir/mailtrail.service"; then
  fail "could not point the copy's ExecStart= at $binary"
fi
set +e
systemd-analyze verify "$workdir/mailtrail.service" >"$workdir/verify.out" 2>"$workdir/verify.err"
verify_status=$?
set -e
if [ "$verify_status" -ne 0 ] || [ -s "$workdir/verify.err" ]; then
  cat "$workdir/verify.out" "$workdir/verify.err" >&2
  fail "systemd-analyze verify: exit $verify_status, stderr above"
else
  echo "verify: clean"
fi

# 3. What the daemon and the docs rely on (sd_notify READY/WATCHDOG, restart, user, secrets).
for line in \
    'Type=notify' 'NotifyAccess=main' 'WatchdogSec=30s' 'Restart=on-failure' 'RestartSec=5s' \
    'TimeoutStopSec=15s' 'User=mailtrail' 'Group=mailtrail' \
    'EnvironmentFile=-/etc/mailtrail/mailtrail.env' \
    'ExecStartPre=/usr/bin/mailtrail migrate --config /etc/mailtrail/mailtrail.yaml' \
    'ExecStart=/usr/bin/mailtrail run --config /etc/mailtrail/mailtrail.yaml' \
    'RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX' 'CapabilityBoundingSet=' \
    'ProtectSystem=strict' 'MemoryDenyWriteExecute=yes' 'SystemCallFilter=@system-service' \
    'SystemCallFilter=~@privileged @resources'; do
  grep -qxF -- "$line" "$unit" || fail "missing directive: $line"
done
if grep -q '^DynamicUser=yes' "$unit"; then fail "DynamicUser=yes: files must keep a stable owner"; fi

if [ "$failures" -ne 0 ]; then
  echo "$failures check(s) failed" >&2
  exit 1
fi
echo "PASS: mailtrail.service exposure $exposure, verify clean, directives present"
