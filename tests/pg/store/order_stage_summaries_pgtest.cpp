// Migration 0006 keeps two summaries of the history (order_status_entries, order_stage_times) by
// triggers, and the whole-history views read them; 0008 adds a third (status_duration_buckets, a
// histogram of the ended spans that the stage-percentiles recipe reads). These tests write
// histories the way the daemon does (many transactions, changes arriving out of observed_at order,
// statuses re-entered, unknown statuses, cancelled orders, multi-row statements) plus the hand
// edits the triggers also cover (an order's created_at corrected, a history row updated or deleted,
// a table truncated), and after every step check that the summaries equal a from-scratch rebuild
// and that every view still returns what its definition as of migration 0004 returns. A second test
// writes the history before 0006 exists and checks the migration's backfill the same way.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <pqxx/pqxx>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include "generated_history.hpp"
#include "pg_test_database.hpp"
#include "store/migrator.hpp"

namespace mailtrail::store {
namespace {

namespace fs = std::filesystem;

using generated::GenerateSql;
using generated::kMigrations;
using generated::kViews;
using generated::ReadFile;
using generated::WithoutHistoryOrderType;
constexpr const char* kSummaries[] = {"order_status_entries", "order_stage_times",
                                      "status_duration_buckets", "order_deliveries"};

// A summary table as a relation to compare: the histogram's rows whose spans went back to 0 (a
// span subtracted and not added again) may stay, and mean nothing.
std::string Compared(const std::string& table) {
  if (table.find("status_duration_buckets") == std::string::npos) return table;
  return "(SELECT * FROM " + table + " WHERE spans <> 0) AS counted";
}

// Applies the migrations up to and including `last` (a file name prefix such as "0004").
void MigrateUpTo(pqxx::connection& connection, const std::string& last) {
  char dir_template[] = "/tmp/mailtrail-migrations-XXXXXX";
  ASSERT_NE(mkdtemp(dir_template), nullptr);
  const fs::path dir(dir_template);
  for (const auto& entry : fs::directory_iterator(kMigrations)) {
    const std::string name = entry.path().filename().string();
    if (name.size() > 4 && name.substr(0, 4) <= last && entry.path().extension() == ".sql") {
      fs::copy_file(entry.path(), dir / name);
    }
  }
  Migrate(connection, dir);
  fs::remove_all(dir);
}

// Copies the views as they are now into schema old_views.
void KeepCurrentViews(pqxx::connection& connection) {
  pqxx::work tx(connection);
  std::map<std::string, std::string> definitions;
  for (const char* view : kViews) {
    definitions[view] = tx.exec_params("SELECT pg_get_viewdef($1::regclass)",
                                       std::string("mailtrail.") + view)[0][0]
                            .as<std::string>();
  }
  tx.exec("CREATE SCHEMA old_views");
  for (const auto& [view, definition] : definitions) {
    tx.exec("CREATE VIEW old_views." + view + " AS " + definition);
  }
  tx.commit();
}

std::string Show(const pqxx::result& rows) {
  std::string shown;
  for (const auto& row : rows) {
    for (const auto& field : row)
      shown += std::string(field.is_null() ? "NULL" : field.c_str()) + " | ";
    shown += "\n";
  }
  return shown;
}

// Rows in one relation and not the other, both ways (multisets), in one statement.
pqxx::result Differences(pqxx::work& tx, const std::string& a, const std::string& b) {
  return tx.exec("(SELECT 'first', * FROM " + a + " EXCEPT ALL SELECT 'first', * FROM " + b +
                 ") UNION ALL (SELECT 'second', * FROM " + b +
                 " EXCEPT ALL SELECT 'second', * FROM " + a + ") LIMIT 5");
}

// Every view equals its 0004 definition.
void ExpectViewsUnchanged(pqxx::connection& connection, const std::string& step) {
  pqxx::work tx(connection);
  tx.exec("SET TIME ZONE 'UTC'");
  for (const char* view : kViews) {
    const auto differences =
        Differences(tx, std::string("mailtrail.") + view, std::string("old_views.") + view);
    EXPECT_TRUE(differences.empty()) << step << ": " << view << " differs:\n" << Show(differences);
  }
}

// The summaries the triggers left equal a rebuild from scratch (rolled back, so the next step
// goes on from what the triggers wrote).
void ExpectSummariesEqualRebuild(pqxx::connection& connection, const std::string& step) {
  pqxx::work tx(connection);
  for (const char* table : kSummaries) {
    tx.exec(std::string("CREATE TEMP TABLE kept_") + table + " AS SELECT * FROM mailtrail." +
            table);
  }
  tx.exec("SELECT mailtrail.rebuild_order_summaries()");
  for (const char* table : kSummaries) {
    const auto differences = Differences(tx, Compared(std::string("kept_") + table),
                                         Compared(std::string("mailtrail.") + table));
    EXPECT_TRUE(differences.empty()) << step << ": " << table
                                     << " differs from a rebuild (first: triggers, second: "
                                        "rebuild):\n"
                                     << Show(differences);
  }
  tx.abort();
}

// Migration 0008's histogram counts exactly the ended spans status_durations shows, each in the
// bucket of its duration: checked against the view itself, not only against the rebuild.
void ExpectBucketsCountStatusDurations(pqxx::connection& connection, const std::string& step) {
  pqxx::work tx(connection);
  const auto differences =
      Differences(tx,
                  "(SELECT order_type, mailing_class, live, status, bucket, spans "
                  " FROM mailtrail.status_duration_buckets WHERE spans <> 0) AS kept",
                  "(SELECT order_type, mailing_class, live, status, "
                  "        mailtrail.duration_bucket(left_at - entered_at), count(*) "
                  " FROM mailtrail.status_durations WHERE left_at IS NOT NULL "
                  " GROUP BY 1, 2, 3, 4, 5) AS counted");
  EXPECT_TRUE(differences.empty()) << step
                                   << ": status_duration_buckets differs from status_durations "
                                      "(first: buckets, second: the view):\n"
                                   << Show(differences);
}

// History rows whose copy of order_type (migration 0009) is set and is not their order's.
constexpr const char* kHistoryRowsWithoutTheirOrdersType = R"sql(
SELECT (SELECT count(*) FROM mailtrail.order_changes c JOIN mailtrail.orders o ON o.id = c.order_id
        WHERE c.order_type IS NOT NULL AND c.order_type <> o.order_type)
     + (SELECT count(*) FROM mailtrail.carrier_tracking_events e
        JOIN mailtrail.orders o ON o.id = e.order_id
        WHERE e.order_type IS NOT NULL AND e.order_type <> o.order_type)
)sql";

long Count(pqxx::connection& connection, const std::string& sql) {
  pqxx::work tx(connection);
  return tx.exec(sql)[0][0].as<long>();
}

// The daemon's shape of writes, step by step, each its own transaction.
const std::vector<std::pair<std::string, std::string>> kSteps = {
    {"discovery of four orders",
     R"sql(
INSERT INTO mailtrail.orders (id, order_type, live, status, mailing_class, tracking_number,
    carrier_status, send_date, created_at, updated_at, terminal, raw) VALUES
 ('letter_s1', 'letters', true, 'ready', 'certified', NULL, NULL,
  '2026-02-01T00:00Z', '2026-02-01T00:00Z', '2026-02-01T00:00Z', false,
  '{"to": {"countryCode": "US", "provinceOrState": "WA"}}'),
 ('letter_s2', 'letters', true, 'ready', 'first_class', NULL, NULL,
  '2026-02-01T00:00Z', '2026-02-01T00:00Z', '2026-02-01T00:00Z', false,
  '{"to": {"countryCode": "US", "provinceOrState": "OR"}}'),
 ('postcard_s3', 'postcards', false, 'printing', 'first_class', NULL, NULL,
  NULL, '2026-02-01T00:00Z', '2026-02-02T00:00Z', false, '{"to": "contact_9"}'),
 ('return_envelope_order_s4', 'return_envelope_orders', true, 'placed', NULL, NULL, NULL,
  NULL, '2026-02-01T00:00Z', '2026-02-01T00:00Z', false, NULL);
INSERT INTO mailtrail.order_changes (order_id, field, old_value, new_value, observed_at, source,
    api_updated_at) VALUES
 ('letter_s1', 'status', NULL, 'ready', '2026-02-01T00:10Z', 'discovery', '2026-02-01T00:00Z'),
 ('letter_s2', 'status', NULL, 'ready', '2026-02-01T00:10Z', 'discovery', '2026-02-01T00:00Z'),
 ('postcard_s3', 'status', NULL, 'printing', '2026-02-02T00:10Z', 'discovery', NULL),
 ('return_envelope_order_s4', 'status', NULL, 'placed', '2026-02-01T00:10Z', 'discovery', NULL);
)sql"},
    {"polls: printing, a cancellation, a tracking number",
     R"sql(
UPDATE mailtrail.orders SET status = 'printing' WHERE id = 'letter_s1';
INSERT INTO mailtrail.order_changes (order_id, field, old_value, new_value, observed_at, source,
    api_updated_at) VALUES
 ('letter_s1', 'status', 'ready', 'printing', '2026-02-02T00:10Z', 'poll', '2026-02-02T00:00Z');
UPDATE mailtrail.orders SET status = 'cancelled', terminal = true, cancellation_reason = 'user'
 WHERE id = 'letter_s2';
INSERT INTO mailtrail.order_changes (order_id, field, old_value, new_value, observed_at, source,
    api_updated_at) VALUES
 ('letter_s2', 'status', 'ready', 'cancelled', '2026-02-01T06:10Z', 'webhook', '2026-02-01T06:00Z'),
 ('letter_s2', 'cancellation_reason', NULL, 'user', '2026-02-01T06:10Z', 'webhook', '2026-02-01T06:00Z');
)sql"},
    {"carrier events arriving latest first, a delivered change before the event",
     R"sql(
UPDATE mailtrail.orders SET status = 'completed', tracking_number = '9400S1',
    carrier_status = 'delivered', terminal = true WHERE id = 'letter_s1';
INSERT INTO mailtrail.order_changes (order_id, field, old_value, new_value, observed_at, source,
    api_updated_at) VALUES
 ('letter_s1', 'tracking_number', NULL, '9400S1', '2026-02-03T00:10Z', 'poll', '2026-02-03T00:00Z'),
 ('letter_s1', 'carrier_status', NULL, 'delivered', '2026-02-06T00:10Z', 'webhook', NULL);
INSERT INTO mailtrail.carrier_tracking_events (order_id, occurred_at, status, message, source)
 VALUES ('letter_s1', '2026-02-05T18:00Z', 'delivered', 'Delivered again?', 'USPS');
INSERT INTO mailtrail.carrier_tracking_events (order_id, occurred_at, status, message, source)
 VALUES ('letter_s1', '2026-02-05T12:00Z', 'delivered', 'Delivered', 'USPS'),
        ('letter_s1', '2026-02-04T12:00Z', 'in_transit', 'Accepted', 'USPS');
)sql"},
    {"changes observed out of order: an earlier observation recorded later",
     R"sql(
INSERT INTO mailtrail.order_changes (order_id, field, old_value, new_value, observed_at, source,
    api_updated_at) VALUES
 ('letter_s1', 'status', 'processed_for_delivery', 'completed', '2026-02-06T00:10Z', 'poll', NULL),
 ('letter_s1', 'status', 'printing', 'processed_for_delivery', '2026-02-03T00:10Z', 'backfill',
  '2026-02-03T00:00Z'),
 ('letter_s1', 'signed_by', NULL, 'J DOE', '2026-02-06T00:10Z', 'webhook', NULL),
 ('letter_s1', 'carrier_status', 'in_transit', 'delivered', '2026-02-05T13:00Z', 'backfill',
  '2026-02-05T12:30Z');
)sql"},
    {"a status re-entered, an unknown status, a status cleared, later repeats of first moments",
     R"sql(
UPDATE mailtrail.orders SET status = 'mystery_hold' WHERE id = 'postcard_s3';
INSERT INTO mailtrail.order_changes (order_id, field, old_value, new_value, observed_at, source,
    api_updated_at) VALUES
 ('postcard_s3', 'status', 'printing', 'ready', '2026-02-03T00:10Z', 'poll', NULL),
 ('postcard_s3', 'status', 'ready', 'printing', '2026-02-04T00:10Z', 'poll', NULL),
 ('postcard_s3', 'status', 'printing', 'mystery_hold', '2026-02-04T00:10Z', 'poll', NULL);
INSERT INTO mailtrail.order_changes (order_id, field, old_value, new_value, observed_at, source,
    api_updated_at) VALUES
 ('postcard_s3', 'status', 'mystery_hold', NULL, '2026-02-05T00:10Z', 'poll', NULL),
 ('postcard_s3', 'status', NULL, 'mystery_hold', '2026-02-05T00:20Z', 'poll', NULL),
 ('letter_s1', 'carrier_status', 'delivered', 'delivered', '2026-02-07T00:00Z', 'poll', NULL),
 ('letter_s1', 'status', 'completed', 'completed', '2026-02-07T00:00Z', 'poll', NULL);
)sql"},
    {"createdAt, a mailing class, a type, a destination and a send date corrected, an ordinary "
     "poll update",
     R"sql(
UPDATE mailtrail.orders SET created_at = '2026-01-31T20:00Z' WHERE id = 'letter_s1';
UPDATE mailtrail.orders SET mailing_class = 'certified_return_receipt' WHERE id = 'letter_s1';
UPDATE mailtrail.orders SET mailing_class = NULL WHERE id = 'postcard_s3';
UPDATE mailtrail.orders SET created_at = NULL WHERE id = 'return_envelope_order_s4';
UPDATE mailtrail.orders SET order_type = 'self_mailers' WHERE id = 'letter_s1';
UPDATE mailtrail.orders SET raw = jsonb_set(raw, '{to,provinceOrState}', '"ID"'),
    send_date = '2026-02-01T06:00Z' WHERE id = 'letter_s1';
UPDATE mailtrail.orders SET last_checked_at = now() WHERE id ~ '_s[0-9]$';
)sql"},
    {"one statement for many orders (a batch), after the generated history; a type corrected",
     R"sql(
UPDATE mailtrail.orders SET order_type = 'cheques'
 WHERE id = (SELECT min(id) FROM mailtrail.orders WHERE id LIKE 'letter\_%' AND id !~ '_s[0-9]$');
INSERT INTO mailtrail.order_changes (order_id, field, old_value, new_value, observed_at, source,
    api_updated_at)
SELECT o.id, 'status', o.status, 'completed', now() - interval '1 hour', 'poll', NULL
FROM mailtrail.orders o
WHERE NOT o.terminal AND o.id !~ '_s[0-9]$'
  AND o.id IN (SELECT id FROM mailtrail.orders ORDER BY id LIMIT 400);
INSERT INTO mailtrail.carrier_tracking_events (order_id, occurred_at, status, message, source)
SELECT o.id, now() - interval '30 minutes', 'delivered', 'Delivered (batch)', 'USPS'
FROM mailtrail.orders o
WHERE o.tracking_number IS NOT NULL
  AND o.id IN (SELECT id FROM mailtrail.orders ORDER BY id LIMIT 400);
)sql"},
    {"hand edits: a change's times corrected, a change and an event deleted",
     R"sql(
UPDATE mailtrail.order_changes SET api_updated_at = '2026-02-02T06:00Z'
 WHERE order_id = 'letter_s1' AND new_value = 'printing';
UPDATE mailtrail.carrier_tracking_events SET occurred_at = '2026-02-05T11:00Z'
 WHERE order_id = 'letter_s1' AND message = 'Delivered';
DELETE FROM mailtrail.order_changes WHERE order_id = 'letter_s1' AND field = 'signed_by';
DELETE FROM mailtrail.carrier_tracking_events WHERE order_id = 'letter_s1' AND message = 'Delivered again?';
)sql"},
};

TEST(OrderStageSummaries, TriggersKeepSummariesAndViewsRightAcrossTransactions) {
  mailtrail::testing::TestDatabase database;
  pqxx::connection connection(database.dsn());
  MigrateUpTo(connection, "0004");
  KeepCurrentViews(connection);
  ASSERT_FALSE(Migrate(connection, kMigrations).applied.empty());

  for (std::size_t i = 0; i < kSteps.size(); ++i) {
    const auto& [name, sql] = kSteps[i];
    if (i == 6) {
      pqxx::work tx(connection);
      tx.exec(GenerateSql(1500));
      tx.exec("ANALYZE");
      tx.commit();
    }
    {
      pqxx::work tx(connection);
      tx.exec(sql);
      tx.commit();
    }
    ExpectSummariesEqualRebuild(connection, name);
    ExpectViewsUnchanged(connection, name);
    ExpectBucketsCountStatusDurations(connection, name);
  }

  // letter_s1's type was corrected after its history had a copy of the old one (migration 0009).
  EXPECT_EQ(Count(connection, kHistoryRowsWithoutTheirOrdersType), 0);
  EXPECT_EQ(Count(connection,
                  "SELECT count(*) FROM mailtrail.order_timeline WHERE order_id = 'letter_s1' "
                  "AND order_type = 'self_mailers'"),
            Count(connection,
                  "SELECT count(*) FROM mailtrail.order_timeline WHERE order_id = 'letter_s1'"));

  // The hand-written rows of the steps got their order's type from orders; a row for an order
  // that does not exist is refused as the foreign key would.
  EXPECT_EQ(Count(connection,
                  "SELECT count(*) FROM mailtrail.order_changes WHERE order_id = 'postcard_s3' "
                  "AND order_type = 'postcards'"),
            Count(connection,
                  "SELECT count(*) FROM mailtrail.order_changes WHERE order_id = 'postcard_s3'"));
  {
    pqxx::work tx(connection);
    EXPECT_THROW(tx.exec("INSERT INTO mailtrail.order_changes (order_id, field, new_value, source) "
                         "VALUES ('letter_missing', 'status', 'ready', 'manual')"),
                 pqxx::foreign_key_violation);
  }

  // The steps reached the summaries as intended.
  // letter_s1: ready from the corrected createdAt, re-ordered by entered_at.
  EXPECT_EQ(Count(connection,
                  "SELECT count(*) FROM mailtrail.status_durations WHERE order_id = 'letter_s1' "
                  "AND status = 'ready' AND entered_at = '2026-01-31T20:00Z' "
                  "AND left_at = '2026-02-02T06:00Z'"),
            1);
  // Its first delivered event after the edits: 11:00 (the 18:00 one was deleted).
  EXPECT_EQ(Count(connection,
                  "SELECT count(*) FROM mailtrail.order_stage_times WHERE order_id = 'letter_s1' "
                  "AND delivered_event_at = '2026-02-05T11:00Z' "
                  "AND carrier_delivered_at = '2026-02-05T12:30Z' "
                  "AND signature_recorded_at IS NULL"),
            1);
  // postcard_s3: printing twice, mystery_hold twice, the NULL status not an entry.
  EXPECT_EQ(Count(connection,
                  "SELECT count(*) FROM mailtrail.status_durations WHERE order_id = 'postcard_s3'"),
            5);
  EXPECT_EQ(Count(connection,
                  "SELECT count(*) FROM mailtrail.daily_status_counts "
                  "WHERE status = 'mystery_hold' AND NOT live"),
            2);
  EXPECT_GT(Count(connection, "SELECT count(*) FROM mailtrail.delivery_performance"), 0);

  // TRUNCATE empties the derived rows of the truncated history.
  {
    pqxx::work tx(connection);
    tx.exec("TRUNCATE mailtrail.carrier_tracking_events");
    tx.commit();
  }
  ExpectSummariesEqualRebuild(connection, "truncate carrier events");
  ExpectViewsUnchanged(connection, "truncate carrier events");
  EXPECT_EQ(Count(connection,
                  "SELECT count(*) FROM mailtrail.order_stage_times "
                  "WHERE delivered_event_at IS NOT NULL"),
            0);
}

TEST(OrderStageSummaries, MigrationBackfillsHistoryWrittenBeforeIt) {
  mailtrail::testing::TestDatabase database;
  pqxx::connection connection(database.dsn());
  MigrateUpTo(connection, "0004");
  KeepCurrentViews(connection);
  MigrateUpTo(connection, "0005");
  {
    pqxx::work tx(connection);
    tx.exec(WithoutHistoryOrderType(GenerateSql(1500)));
    for (const auto& [name, sql] : kSteps) {
      if (sql.find("DELETE") == std::string::npos) tx.exec(sql);
    }
    tx.commit();
  }
  const auto result = Migrate(connection, kMigrations);
  ASSERT_FALSE(result.applied.empty());
  EXPECT_GT(Count(connection, "SELECT count(*) FROM mailtrail.order_status_entries"), 1500);
  EXPECT_GT(Count(connection, "SELECT count(*) FROM mailtrail.order_stage_times"), 0);
  ExpectSummariesEqualRebuild(connection, "after the backfill");
  ExpectViewsUnchanged(connection, "after the backfill");
  ExpectBucketsCountStatusDurations(connection, "after the backfill");
  // 0009 copied every order's type into its history rows.
  EXPECT_EQ(Count(connection, kHistoryRowsWithoutTheirOrdersType), 0);
  EXPECT_EQ(Count(connection,
                  "SELECT count(*) FROM mailtrail.order_changes WHERE order_type IS NULL"),
            0);
}

}  // namespace
}  // namespace mailtrail::store
