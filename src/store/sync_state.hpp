#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "domain/timestamp.hpp"

namespace pqxx {
class connection_base;
}

namespace mailtrail::store {

/// mailtrail.sync_runs: the last run of each periodic job. Blocking; database thread only.
void RecordRunStart(pqxx::connection_base& connection, std::string_view job, domain::Timestamp now);
void RecordRunSuccess(pqxx::connection_base& connection, std::string_view job,
                      domain::Timestamp now, std::string_view detail_json);
void RecordRunFailure(pqxx::connection_base& connection, std::string_view job,
                      domain::Timestamp now, std::string_view error);

/// When `job` last succeeded, if ever.
std::optional<domain::Timestamp> LastSuccess(pqxx::connection_base& connection,
                                             std::string_view job);

/// Where a backfill of one order type stands.
struct BackfillPosition {
  std::int64_t next_skip = 0;
  std::optional<domain::Timestamp> since;
  bool finished = false;
};
std::optional<BackfillPosition> LoadBackfill(pqxx::connection_base& connection,
                                             std::string_view order_type);
void SaveBackfill(pqxx::connection_base& connection, std::string_view order_type,
                  const BackfillPosition& position, domain::Timestamp now);

/// Refreshes this replica's heartbeat row and returns how many replicas (this one included) are
/// live: seen within `live_window_ms` and holding their liveness lock, a session-level advisory
/// lock this call takes on `connection`. A process that died (kill -9, a crash) loses its lock with
/// its connection, so its row is removed at the next heartbeat of any replica, not a window later:
/// a restarted daemon does not share the rate limit with its dead predecessor. Rows older than ten
/// windows are removed too.
std::int64_t Heartbeat(pqxx::connection_base& connection, std::string_view replica_id,
                       std::string_view hostname, int pid, domain::Timestamp started_at,
                       domain::Timestamp now, bool is_leader, std::int64_t live_window_ms);
void RemoveReplica(pqxx::connection_base& connection, std::string_view replica_id);

/// Tries to take the leader lock (a session-level advisory lock on this connection): true when
/// this session holds it, now or already. A new connection has lost it.
bool TryLeadership(pqxx::connection_base& connection);

/// One cell of request counts to add to mailtrail.api_request_totals.
struct RequestDelta {
  std::string purpose;
  std::string endpoint;
  int status = 0;
  std::int64_t requests = 0;
};
void AddRequestCounts(pqxx::connection_base& connection, const std::vector<RequestDelta>& deltas);

/// ANALYZE of the tables a sync writes (orders, the history and its summaries), for after a bulk
/// load: a first full scan or a backfill grows them from nothing within seconds, and until
/// autovacuum's next analyze the planner reads the history of 100 orders with plans meant for
/// an empty table (bench/README.md, benchmark 3). Tables this role does not own are skipped by
/// PostgreSQL with a warning.
void AnalyzeSyncTables(pqxx::connection_base& connection);

}  // namespace mailtrail::store
