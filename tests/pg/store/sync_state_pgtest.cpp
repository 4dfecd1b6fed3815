// store::AnalyzeSyncTables, run by a pass that added many orders: it analyzes every table a sync
// grows (the planner's statistics of orders, the history and its summaries). store::Heartbeat:
// which replicas count as live, and so how the rate limit is split.
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <memory>
#include <pqxx/pqxx>
#include <string>
#include <thread>

#include "domain/timestamp.hpp"
#include "pg_test_database.hpp"
#include "store/migrator.hpp"
#include "store/sync_state.hpp"

namespace mailtrail::store {
namespace {

TEST(SyncStatePgTest, AnalyzeSyncTablesAnalyzesOrdersHistoryAndSummaries) {
  mailtrail::testing::TestDatabase database;
  pqxx::connection connection(database.dsn());
  Migrate(connection, std::filesystem::path(MAILTRAIL_SOURCE_DIR) / "migrations");
  AnalyzeSyncTables(connection);
  pqxx::work tx(connection);
  // pg_stat_user_tables is fed by the statistics system, which the backend flushes at commit
  // or within a second; pg_stat_force_next_flush() makes it now.
  tx.exec("SELECT pg_stat_force_next_flush()");
  const auto analyzed = tx.exec1(
      "SELECT count(*) FROM pg_stat_user_tables WHERE schemaname = 'mailtrail' AND relname IN "
      "('orders', 'order_changes', 'carrier_tracking_events', 'order_status_entries', "
      "'order_stage_times') AND last_analyze IS NOT NULL");
  EXPECT_EQ(analyzed[0].as<int>(), 5);
}

// A replica killed with -9 cannot deregister. Its row used to count as live for three heartbeat
// intervals, so a daemon restarted by systemd took half the rate limit (a quarter after three
// quick crashes) while its refreshes fell behind. Its liveness lock went with its connection:
// the next heartbeat of any replica removes it. A row nobody holds a lock for (written by hand,
// or by a process that is gone) does not count either.
TEST(SyncStatePgTest, AReplicaWhoseSessionEndedIsNotLiveAtTheNextHeartbeat) {
  mailtrail::testing::TestDatabase database;
  pqxx::connection survivor(database.dsn());
  Migrate(survivor, std::filesystem::path(MAILTRAIL_SOURCE_DIR) / "migrations");
  const domain::Timestamp started = *domain::ParseTimestamp("2026-11-27T10:00:00Z");
  const auto now = [&started](int seconds) { return started + std::chrono::seconds(seconds); };
  constexpr std::int64_t kWindowMs = 15000;

  auto killed = std::make_unique<pqxx::connection>(database.dsn());
  EXPECT_EQ(Heartbeat(survivor, "host:1:1", "host", 1, started, now(0), true, kWindowMs), 1);
  EXPECT_EQ(Heartbeat(*killed, "host:2:2", "host", 2, started, now(1), false, kWindowMs), 2);
  // Heartbeats repeat on the same session without stacking the lock (one pg_locks row each).
  EXPECT_EQ(Heartbeat(*killed, "host:2:2", "host", 2, started, now(2), false, kWindowMs), 2);
  EXPECT_EQ(Heartbeat(survivor, "host:1:1", "host", 1, started, now(3), true, kWindowMs), 2);
  {
    pqxx::work tx(survivor);
    EXPECT_EQ(tx.exec1("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND "
                       "objsubid = 2")[0]
                  .as<int>(),
              2);
    // A row within the window that no session holds a lock for.
    tx.exec0(
        "INSERT INTO mailtrail.replicas (id, hostname, pid, started_at, last_seen_at) "
        "VALUES ('host:3:3', 'host', 3, '2026-11-27T10:00:00Z', '2026-11-27T10:00:03Z')");
    tx.commit();
  }
  killed.reset();  // the process died: PostgreSQL ends its session
  // The backend of the closed connection may take a moment to exit and release its locks.
  std::int64_t live = 0;
  for (int i = 0; i < 50; ++i) {
    live = Heartbeat(survivor, "host:1:1", "host", 1, started, now(4), true, kWindowMs);
    if (live == 1) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_EQ(live, 1);
  pqxx::work tx(survivor);
  EXPECT_EQ(tx.exec1("SELECT string_agg(id, ',') FROM mailtrail.replicas")[0].as<std::string>(),
            "host:1:1");
}

}  // namespace
}  // namespace mailtrail::store
