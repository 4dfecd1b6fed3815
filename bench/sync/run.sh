#!/usr/bin/env bash
# Runs one sync benchmark: run.sh PYTHON BUILD_DIR full_sync|steady|cpu_refresh|memory
# Uses the PostgreSQL server of MAILTRAIL_TEST_DSN when set (the benchmark creates and drops a
# database of its own), else starts a throwaway one with scripts/pg_tmp.sh.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
if [ -z "${MAILTRAIL_TEST_DSN:-}" ]; then
  exec bash "$root/scripts/pg_tmp.sh" -- "$0" "$@"
fi
python=$1
shift
exec "$python" "$here/sync_bench.py" "$@"
