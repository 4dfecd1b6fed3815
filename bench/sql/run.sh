#!/usr/bin/env bash
# Times the contract views and every docs/sql.md recipe on a generated 1M-order history.
#
#   bench/sql/run.sh [OUTPUT_DIR]
#
# Uses the server of MAILTRAIL_TEST_DSN when set (creating and dropping a database of its own),
# else starts a throwaway one with scripts/pg_tmp.sh. Orders: MAILTRAIL_BENCH_ORDERS (default
# 1000000). Prints one line per query: the execution time reported by EXPLAIN (ANALYZE, TIMING
# OFF), best of MAILTRAIL_BENCH_RUNS (default 2) runs, the rows returned, and PASS/FAIL against the
# target of issue 10 (benchmark 7): every query under MAILTRAIL_BENCH_TARGET_MS (default 1000) ms.
# Full plans go to OUTPUT_DIR (default: a temp dir, removed). Appends `| benchmark | figure |
# target | PASS/FAIL |` lines to $MAILTRAIL_BENCH_RESULTS when set. Exit 1 when a query misses
# the target, 2 when something fails to run.
# After generating, it checks that the summaries the triggers of migrations 0006 and 0008 kept
# while the history was inserted equal a rebuild from scratch (verify_summaries.sql; exit 2 when
# not).
# MAILTRAIL_BENCH_EXTRA_SQL=FILE is applied after the history is generated (e.g. view
# changes or indexes being considered for a migration); session settings go through libpq's
# PGOPTIONS, e.g. PGOPTIONS='-c work_mem=64MB'. MAILTRAIL_BENCH_DB=NAME times an existing database
# of that server as it is (no generation, not dropped): for iterating on a plan.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)

if [ -z "${MAILTRAIL_TEST_DSN:-}" ]; then
  exec bash "$root/scripts/pg_tmp.sh" -- "$0" "$@"
fi

orders=${MAILTRAIL_BENCH_ORDERS:-1000000}
runs=${MAILTRAIL_BENCH_RUNS:-2}
target_ms=${MAILTRAIL_BENCH_TARGET_MS:-1000}
keep_db=0
db="mt_bench_$$"
if [ -n "${MAILTRAIL_BENCH_DB:-}" ]; then db=$MAILTRAIL_BENCH_DB; keep_db=1; fi
workdir=$(mktemp -d "${TMPDIR:-/tmp}/mailtrail-bench.XXXXXX")
out=${1:-$workdir/plans}
mkdir -p "$out"

# Same host, port and user as the DSN (libpq reads PG* when psql gets only a database name).
server_dsn=$MAILTRAIL_TEST_DSN
db_dsn=$(echo "$server_dsn" | sed -E "s#^(postgres(ql)?://[^/?]*)(/[^?]*)?#\1/$db#")
psql_server() { psql -X -q -v ON_ERROR_STOP=1 "$server_dsn" "$@"; }
psql_db() { psql -X -q -v ON_ERROR_STOP=1 "$db_dsn" "$@"; }

cleanup() {
  local status=$?
  if [ "$keep_db" -eq 0 ]; then
    psql_server -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true
  fi
  rm -rf "$workdir"
  exit "$status"
}
trap cleanup 0 INT TERM

generated=0
summaries="not checked (existing database)"
if [ "$keep_db" -eq 0 ]; then
  psql_server -c "CREATE DATABASE $db"
  for migration in "$root"/migrations/[0-9]*.sql; do
    psql_db -1 -f "$migration" >/dev/null
  done
  start=$(date +%s)
  psql_db -v orders="$orders" -f "$here/generate.sql" >/dev/null
  # The triggers of migrations 0006 and 0008 saw every row generate.sql inserted: their summaries
  # must equal a rebuild from scratch (exit 2 otherwise).
  if ! summaries=$(psql_db -f "$here/verify_summaries.sql" 2>&1 >/dev/null); then
    echo "$summaries" >&2; exit 2
  fi
  summaries=$(echo "$summaries" | sed -n 's/.*NOTICE: *//p')
  if [ -n "${MAILTRAIL_BENCH_EXTRA_SQL:-}" ]; then
    psql_db -1 -f "$MAILTRAIL_BENCH_EXTRA_SQL" >/dev/null
  fi
  psql_db -c "VACUUM ANALYZE" >/dev/null
  generated=$(($(date +%s) - start))
fi

echo "# mailtrail SQL benchmark, $(date -u '+%Y-%m-%d %H:%M UTC')"
echo "# machine: $(nproc) CPUs, $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1), $(awk '/MemTotal/ {printf "%.0f GiB", $2 / 1048576}' /proc/meminfo) RAM, load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "# $(psql_db -Atc "SELECT version()" | cut -d, -f1), work_mem $(psql_db -Atc "SHOW work_mem")${MAILTRAIL_BENCH_EXTRA_SQL:+, with $(basename "$MAILTRAIL_BENCH_EXTRA_SQL")}"
psql_db -At -F ' ' -c "SELECT 'history:', (SELECT count(*) FROM mailtrail.orders) || ' orders,',
    (SELECT count(*) FROM mailtrail.order_changes) || ' changes,',
    (SELECT count(*) FROM mailtrail.carrier_tracking_events) || ' carrier events,',
    pg_size_pretty(pg_database_size(current_database())) || ',', 'generated in $generated s'" |
  sed 's/^/# /'
echo "# $summaries"

orders=$(psql_db -Atc "SELECT count(*) FROM mailtrail.orders")

# The queries: each view on its own (every row, as a BI tool's "show the view" would read it),
# then every recipe of docs/sql.md as written there (readonly-role's grants and bi-materialized's
# DDL are skipped: they are set-up, not queries).
queries="$workdir/queries"
mkdir -p "$queries"
for view in order_timeline status_durations stuck_orders daily_status_counts delivery_performance; do
  echo "SELECT * FROM mailtrail.$view" >"$queries/view:$view.sql"
done
awk -v dir="$queries" '
  /^```sql$/ { inside = 1; name = ""; body = ""; next }
  inside && /^```$/ {
    inside = 0
    if (name != "" && name != "readonly-role" && name != "bi-materialized") { f = dir "/recipe:" name ".sql"; printf "%s", body > f; close(f) }
    next
  }
  inside { if (name == "" && $0 ~ /^-- cookbook: /) { name = substr($0, 14) } body = body $0 "\n" }
' "$root/docs/sql.md"

printf '%-34s %12s %10s %10s\n' "query" "time (ms)" "rows" "< $target_ms ms"
failed=0
missed=0
for file in "$queries"/view:*.sql "$queries"/recipe:*.sql; do
  name=$(basename "$file" .sql)
  best=""
  rows=""
  for run in $(seq 1 "$runs"); do
    plan="$out/${name//:/_}.txt"
    if ! { echo "SET TIME ZONE 'UTC';"; echo "EXPLAIN (ANALYZE, BUFFERS, TIMING OFF)"; sed 's/;[[:space:]]*$//' "$file"; echo ";"; } |
        psql_db -At >"$plan" 2>"$workdir/err"; then
      echo "FAILED: $name" >&2; cat "$workdir/err" >&2; failed=1; best=""; break
    fi
    ms=$(sed -n 's/^Execution Time: \([0-9.]*\) ms$/\1/p' "$plan")
    rows=$(sed -n '1s/.*(actual.* rows=\([0-9]*\).*/\1/p' "$plan")
    if [ -z "$best" ] || awk -v a="$ms" -v b="$best" 'BEGIN { exit !(a < b) }'; then best=$ms; fi
  done
  [ -n "$best" ] || continue
  verdict=PASS
  if ! awk -v a="$best" -v t="$target_ms" 'BEGIN { exit !(a < t) }'; then verdict=FAIL; missed=1; fi
  printf '%-34s %12.1f %10s %10s\n' "$name" "$best" "$rows" "$verdict"
  if [ -n "${MAILTRAIL_BENCH_RESULTS:-}" ]; then
    printf '| SQL at %s orders: %s (ms, %s rows) | %.1f | < %s | %s |\n' \
      "$orders" "$name" "$rows" "$best" "$target_ms" "$verdict" >>"$MAILTRAIL_BENCH_RESULTS"
  fi
done
if [ "$failed" -ne 0 ]; then exit 2; fi
if [ "$missed" -ne 0 ]; then echo "some queries missed the target of $target_ms ms" >&2; exit 1; fi
exit 0
