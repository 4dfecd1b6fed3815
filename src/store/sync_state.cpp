#include "store/sync_state.hpp"

#include <pqxx/pqxx>

#include "store/sql_params.hpp"

namespace mailtrail::store {
namespace {

using detail::SqlParams;

// ASCII "mailtrlL": the advisory lock whose holder runs discovery and full scans.
constexpr long long kLeaderLockKey = 0x6d61696c74726c4cLL;
// ASCII "mtrp": the first key of each replica's liveness lock; the second is hashtext(its id).
constexpr std::int64_t kReplicaLockClass = 0x6d747270;

}  // namespace

void RecordRunStart(pqxx::connection_base& connection, std::string_view job,
                    domain::Timestamp now) {
  pqxx::work tx(connection);
  SqlParams().Add(job).Add(now).Exec(tx, R"sql(
    INSERT INTO mailtrail.sync_runs (job, last_started_at) VALUES ($1, $2)
    ON CONFLICT (job) DO UPDATE SET last_started_at = EXCLUDED.last_started_at)sql");
  tx.commit();
}

void RecordRunSuccess(pqxx::connection_base& connection, std::string_view job,
                      domain::Timestamp now, std::string_view detail_json) {
  pqxx::work tx(connection);
  SqlParams().Add(job).Add(now).Add(detail_json).Exec(tx, R"sql(
    INSERT INTO mailtrail.sync_runs (job, last_success_at, detail) VALUES ($1, $2, $3::jsonb)
    ON CONFLICT (job) DO UPDATE SET last_success_at = EXCLUDED.last_success_at,
                                    detail = EXCLUDED.detail)sql");
  tx.commit();
}

void RecordRunFailure(pqxx::connection_base& connection, std::string_view job,
                      domain::Timestamp now, std::string_view error) {
  pqxx::work tx(connection);
  SqlParams().Add(job).Add(now).Add(error).Exec(tx, R"sql(
    INSERT INTO mailtrail.sync_runs (job, last_failure_at, last_error) VALUES ($1, $2, $3)
    ON CONFLICT (job) DO UPDATE SET last_failure_at = EXCLUDED.last_failure_at,
                                    last_error = EXCLUDED.last_error)sql");
  tx.commit();
}

std::optional<domain::Timestamp> LastSuccess(pqxx::connection_base& connection,
                                             std::string_view job) {
  pqxx::read_transaction tx(connection);
  const auto rows = SqlParams().Add(job).Exec(
      tx,
      "SELECT (extract(epoch FROM last_success_at) * 1000000)::bigint FROM mailtrail.sync_runs "
      "WHERE job = $1");
  if (rows.empty()) return std::nullopt;
  return detail::MicrosToTimestamp(rows[0][0]);
}

std::optional<BackfillPosition> LoadBackfill(pqxx::connection_base& connection,
                                             std::string_view order_type) {
  pqxx::read_transaction tx(connection);
  const auto rows = SqlParams().Add(order_type).Exec(tx, R"sql(
    SELECT next_skip, (extract(epoch FROM since) * 1000000)::bigint, finished_at IS NOT NULL
    FROM mailtrail.backfill_progress WHERE order_type = $1)sql");
  if (rows.empty()) return std::nullopt;
  BackfillPosition position;
  position.next_skip = rows[0][0].as<std::int64_t>();
  position.since = detail::MicrosToTimestamp(rows[0][1]);
  position.finished = rows[0][2].as<bool>();
  return position;
}

void SaveBackfill(pqxx::connection_base& connection, std::string_view order_type,
                  const BackfillPosition& position, domain::Timestamp now) {
  pqxx::work tx(connection);
  SqlParams()
      .Add(order_type)
      .Add(position.next_skip)
      .Add(position.since)
      .Add(now)
      .Add(position.finished)
      .Exec(tx, R"sql(
    INSERT INTO mailtrail.backfill_progress (order_type, next_skip, since, started_at, updated_at,
                                             finished_at)
    VALUES ($1, $2, $3, $4, $4, CASE WHEN $5::boolean THEN $4::timestamptz END)
    ON CONFLICT (order_type) DO UPDATE SET
        next_skip = EXCLUDED.next_skip, since = EXCLUDED.since, updated_at = EXCLUDED.updated_at,
        finished_at = EXCLUDED.finished_at,
        started_at = CASE WHEN mailtrail.backfill_progress.finished_at IS NOT NULL
                          THEN EXCLUDED.started_at ELSE mailtrail.backfill_progress.started_at END)sql");
  tx.commit();
}

std::int64_t Heartbeat(pqxx::connection_base& connection, std::string_view replica_id,
                       std::string_view hostname, int pid, domain::Timestamp started_at,
                       domain::Timestamp now, bool is_leader, std::int64_t live_window_ms) {
  pqxx::work tx(connection);
  // Taken once per session (pg_locks says whether this session holds it already, so heartbeats do
  // not stack it); taken again after a reconnect. Released only by the session's end.
  SqlParams().Add(kReplicaLockClass).Add(replica_id).Exec(tx, R"sql(
    SELECT pg_try_advisory_lock($1::integer, hashtext($2))
    WHERE NOT EXISTS (
        SELECT 1 FROM pg_locks
        WHERE locktype = 'advisory' AND granted AND pid = pg_backend_pid() AND objsubid = 2
          AND classid = $1::integer::oid AND objid = hashtext($2)::oid))sql");
  SqlParams()
      .Add(replica_id)
      .Add(hostname)
      .Add(static_cast<std::int64_t>(pid))
      .Add(started_at)
      .Add(now)
      .Add(is_leader)
      .Exec(tx, R"sql(
    INSERT INTO mailtrail.replicas (id, hostname, pid, started_at, last_seen_at, is_leader)
    VALUES ($1, $2, $3, $4, $5, $6)
    ON CONFLICT (id) DO UPDATE SET last_seen_at = EXCLUDED.last_seen_at,
                                   is_leader = EXCLUDED.is_leader)sql");
  SqlParams().Add(now).Add(live_window_ms * 10).Add(kReplicaLockClass).Exec(tx, R"sql(
    DELETE FROM mailtrail.replicas r
    WHERE r.last_seen_at < $1::timestamptz - $2::bigint * interval '1 millisecond'
       OR NOT EXISTS (
           SELECT 1 FROM pg_locks l
           WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 2
             AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
             AND l.classid = $3::integer::oid AND l.objid = hashtext(r.id)::oid))sql");
  const auto live = SqlParams().Add(now).Add(live_window_ms).Exec(tx, R"sql(
    SELECT count(*) FROM mailtrail.replicas
    WHERE last_seen_at >= $1::timestamptz - $2::bigint * interval '1 millisecond')sql");
  tx.commit();
  return live[0][0].as<std::int64_t>();
}

void RemoveReplica(pqxx::connection_base& connection, std::string_view replica_id) {
  pqxx::work tx(connection);
  SqlParams().Add(replica_id).Exec(tx, "DELETE FROM mailtrail.replicas WHERE id = $1");
  tx.commit();
}

bool TryLeadership(pqxx::connection_base& connection) {
  pqxx::nontransaction tx(connection);
  // pg_locks tells whether this session already holds it, so retries do not stack the lock.
  const auto held = tx.exec_params(
      "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted "
      "AND pid = pg_backend_pid() AND ((classid::bigint << 32) | objid::bigint) = $1)",
      kLeaderLockKey);
  if (held[0][0].as<bool>()) return true;
  return tx.exec_params("SELECT pg_try_advisory_lock($1)", kLeaderLockKey)[0][0].as<bool>();
}

void AddRequestCounts(pqxx::connection_base& connection, const std::vector<RequestDelta>& deltas) {
  if (deltas.empty()) return;
  pqxx::work tx(connection);
  for (const auto& delta : deltas) {
    SqlParams()
        .Add(delta.purpose)
        .Add(delta.endpoint)
        .Add(static_cast<std::int64_t>(delta.status))
        .Add(delta.requests)
        .Exec(tx, R"sql(
      INSERT INTO mailtrail.api_request_totals (purpose, endpoint, status, requests, updated_at)
      VALUES ($1, $2, $3, $4, now())
      ON CONFLICT (purpose, endpoint, status) DO UPDATE SET
          requests = mailtrail.api_request_totals.requests + EXCLUDED.requests,
          updated_at = now())sql");
  }
  tx.commit();
}

void AnalyzeSyncTables(pqxx::connection_base& connection) {
  pqxx::nontransaction tx(connection);
  tx.exec(
      "ANALYZE mailtrail.orders, mailtrail.order_changes, mailtrail.carrier_tracking_events, "
      "mailtrail.order_status_entries, mailtrail.order_stage_times");
}

}  // namespace mailtrail::store
