// store::AnalyzeSyncTables, run by a pass that added many orders: it analyzes every table a sync
// grows (the planner's statistics of orders, the history and its summaries).
#include <gtest/gtest.h>

#include <filesystem>
#include <pqxx/pqxx>

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

}  // namespace
}  // namespace mailtrail::store
