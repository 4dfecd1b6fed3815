#!/usr/bin/env bash
# Runs a command against a throwaway PostgreSQL 15 server that lives only as long as the command.
#
#   scripts/pg_tmp.sh [--] COMMAND [ARGS...]
#
# Modelled on Debian's pg_virtualenv: initdb into a fresh temp dir (as the `postgres` user when run
# as root, since initdb refuses root), a free TCP port on 127.0.0.1, the socket in the temp dir,
# fsync off (throwaway data), and a trap that stops the server and removes the dir on exit and on
# signals. Exports for COMMAND:
#   MAILTRAIL_TEST_DSN   postgresql://postgres@127.0.0.1:PORT/postgres  (superuser, trust auth)
#   PGHOST PGPORT PGUSER PGDATABASE   so psql works as is
#   MAILTRAIL_PG_DATA, MAILTRAIL_PG_BIN, MAILTRAIL_PG_RUNAS   for tests that stop/start the server
# The exit status is COMMAND's.
set -euo pipefail

if [ "${1:-}" = "--" ]; then shift; fi
if [ $# -eq 0 ]; then
  echo "usage: $0 [--] COMMAND [ARGS...]" >&2
  exit 2
fi

PG_BIN="${MAILTRAIL_PG_BIN:-}"
if [ -z "$PG_BIN" ]; then
  for candidate in /usr/lib/postgresql/15/bin /usr/lib/postgresql/*/bin; do
    if [ -x "$candidate/initdb" ]; then PG_BIN="$candidate"; break; fi
  done
fi
if [ -z "$PG_BIN" ] || [ ! -x "$PG_BIN/initdb" ]; then
  echo "pg_tmp: no PostgreSQL server binaries found (run scripts/install-deps.sh)" >&2
  exit 1
fi

RUNAS=()
if [ "$(id -u)" -eq 0 ]; then
  if ! id postgres >/dev/null 2>&1; then
    echo "pg_tmp: running as root but there is no 'postgres' user to run initdb as" >&2
    exit 1
  fi
  RUNAS=(runuser -u postgres --)
fi

workdir=$(mktemp -d "${TMPDIR:-/tmp}/mailtrail-pg.XXXXXX")
chmod 0755 "$workdir"
if [ ${#RUNAS[@]} -gt 0 ]; then chown postgres: "$workdir"; fi

cleanup() {
  local status=$?
  trap - 0 HUP INT QUIT TERM
  if [ -f "$workdir/data/postmaster.pid" ]; then
    "${RUNAS[@]}" "$PG_BIN/pg_ctl" -D "$workdir/data" -m immediate -w stop >/dev/null 2>&1 || true
  fi
  rm -rf "$workdir"
  exit "$status"
}
trap cleanup 0
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP
trap 'exit 131' QUIT

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

"${RUNAS[@]}" "$PG_BIN/initdb" -D "$workdir/data" -U postgres -A trust -E UTF8 --locale=C.UTF-8 \
  >"$workdir/initdb.log" 2>&1 || { cat "$workdir/initdb.log" >&2; exit 1; }

started=0
for attempt in 1 2 3 4 5; do
  port=$(free_port)
  if "${RUNAS[@]}" "$PG_BIN/pg_ctl" -D "$workdir/data" -l "$workdir/server.log" -w -t 60 \
      -o "-c port=$port -c listen_addresses=127.0.0.1 -c unix_socket_directories=$workdir \
          -c fsync=off -c synchronous_commit=off -c full_page_writes=off \
          -c max_connections=300 -c shared_buffers=128MB" start >/dev/null; then
    started=1
    break
  fi
  echo "pg_tmp: start on port $port failed (attempt $attempt), retrying" >&2
done
if [ "$started" -ne 1 ]; then
  cat "$workdir/server.log" >&2 || true
  exit 1
fi

export PGHOST=127.0.0.1 PGPORT="$port" PGUSER=postgres PGDATABASE=postgres
export MAILTRAIL_TEST_DSN="postgresql://postgres@127.0.0.1:$port/postgres"
export MAILTRAIL_PG_DATA="$workdir/data" MAILTRAIL_PG_BIN="$PG_BIN"
export MAILTRAIL_PG_RUNAS="${RUNAS[*]}"
echo "pg_tmp: PostgreSQL $("$PG_BIN/postgres" --version | awk '{print $3}') on 127.0.0.1:$port (data in $workdir)" >&2

# Not exec: the trap must run after the command to stop the server and remove the dir.
set +e
"$@"
status=$?
set -e
exit "$status"
