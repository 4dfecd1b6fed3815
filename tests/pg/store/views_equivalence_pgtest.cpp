// Migrations that rewrite a contract view for speed (0005 and later) must not change what it
// returns (issue 10, benchmark 7). The definitions as of migration 0004 are captured, the newest
// migrations applied, and both compared row for row (as multisets) on a generated history
// (bench/sql/generate.sql, the one the benchmark times) plus hand-made edge cases.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <pqxx/pqxx>
#include <regex>
#include <sstream>

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

// What the views' rewrites must get right besides the generated mix: an order without createdAt
// or sendDate, a `to` that is only a contact id or nested under `address`, a delivered carrier
// event without a delivered carrier_status change and the reverse, a tracked order without
// events, an order whose first status is not ready, statuses entered at the same instant (the
// change id decides), an unknown status, and a non-terminal order in a status with no threshold.
constexpr const char* kEdgeCases = R"sql(
INSERT INTO mailtrail.orders (id, order_type, live, status, mailing_class, tracking_number,
    carrier_status, send_date, created_at, updated_at, terminal, raw) VALUES
 ('letter_e1', 'letters', true, 'completed', 'first_class', NULL, NULL,
  NULL, NULL, '2026-01-06T12:00Z', true, '{"to": "contact_1"}'),
 ('letter_e2', 'letters', true, 'completed', 'certified', '9400E2', 'delivered',
  '2026-01-01T00:00Z', '2026-01-01T00:00Z', '2026-01-05T11:00Z', true,
  '{"to": {"address": {"countryCode": "CA", "provinceOrState": "ON"}}}'),
 ('letter_e3', 'letters', false, 'completed', 'express', '9400E3', 'delivered',
  NULL, '2026-01-01T00:00Z', '2026-01-05T11:00Z', true,
  '{"to": {"countryCode": "US", "provinceOrState": "NY"}}'),
 ('letter_e4', 'letters', true, 'brand_new_status', 'first_class', NULL, NULL,
  '2026-01-01T00:00Z', '2026-01-01T00:00Z', '2026-01-02T00:00Z', false, '{}'),
 ('letter_e5', 'letters', true, 'completed', 'registered', '9400E5', 'in_transit',
  '2026-01-01T00:00Z', '2026-01-01T00:00Z', '2026-01-03T00:00Z', false, NULL);
INSERT INTO mailtrail.order_changes (order_id, field, old_value, new_value, observed_at, source,
    api_updated_at) VALUES
 ('letter_e1', 'status', NULL, 'ready', '2026-01-01T01:00Z', 'discovery', NULL),
 ('letter_e1', 'status', 'ready', 'completed', '2026-01-06T13:00Z', 'poll', NULL),
 ('letter_e2', 'status', NULL, 'printing', '2026-01-02T00:00Z', 'discovery', '2026-01-02T00:00Z'),
 ('letter_e2', 'status', 'printing', 'completed', '2026-01-05T12:00Z', 'poll', '2026-01-05T11:00Z'),
 ('letter_e3', 'status', NULL, 'processed_for_delivery', '2026-01-02T00:00Z', 'discovery', '2026-01-02T00:00Z'),
 ('letter_e3', 'carrier_status', NULL, 'delivered', '2026-01-04T00:00Z', 'poll', '2026-01-03T23:00Z'),
 ('letter_e3', 'carrier_status', 'delivered', 'in_transit', '2026-01-04T01:00Z', 'poll', NULL),
 ('letter_e3', 'carrier_status', 'in_transit', 'delivered', '2026-01-04T02:00Z', 'poll', NULL),
 ('letter_e3', 'status', 'processed_for_delivery', 'completed', '2026-01-05T12:00Z', 'poll', '2026-01-05T11:00Z'),
 ('letter_e4', 'status', NULL, 'ready', '2026-01-01T00:00Z', 'discovery', '2026-01-01T00:00Z'),
 ('letter_e4', 'status', 'ready', 'printing', '2026-01-02T00:00Z', 'poll', '2026-01-02T00:00Z'),
 ('letter_e4', 'status', 'printing', 'brand_new_status', '2026-01-02T00:00Z', 'poll', '2026-01-02T00:00Z'),
 ('letter_e4', 'status', 'brand_new_status', NULL, '2026-01-02T00:00Z', 'poll', '2026-01-02T00:00Z'),
 ('letter_e5', 'status', NULL, 'completed', '2026-01-03T00:00Z', 'discovery', '2026-01-03T00:00Z');
INSERT INTO mailtrail.carrier_tracking_events (order_id, occurred_at, status, message, source,
    city, province_or_state, country_code, postal_or_zip) VALUES
 ('letter_e2', '2026-01-05T10:00Z', 'delivered', 'Delivered', 'USPS', NULL, NULL, NULL, NULL),
 ('letter_e2', '2026-01-05T09:00Z', 'delivered', 'Delivered early?', 'USPS', 'Toronto', 'ON', 'CA', NULL),
 ('letter_e5', '2026-01-04T10:00Z', 'delivered', 'Delivered', 'USPS', NULL, NULL, NULL, NULL);
)sql";

TEST(ViewsEquivalence, RewrittenViewsReturnWhatThe0004DefinitionsReturned) {
  mailtrail::testing::TestDatabase database;
  pqxx::connection connection(database.dsn());

  // The schema as of 0004, from a directory holding only those files.
  char dir_template[] = "/tmp/mailtrail-migrations-XXXXXX";
  ASSERT_NE(mkdtemp(dir_template), nullptr);
  const fs::path old_migrations(dir_template);
  for (const auto& entry : fs::directory_iterator(kMigrations)) {
    const std::string name = entry.path().filename().string();
    if (name.size() > 4 && name.substr(0, 4) <= "0004" && entry.path().extension() == ".sql") {
      fs::copy_file(entry.path(), old_migrations / name);
    }
  }
  Migrate(connection, old_migrations);
  fs::remove_all(old_migrations);
  std::map<std::string, std::string> old_definitions;
  {
    pqxx::work tx(connection);
    for (const char* view : kViews) {
      old_definitions[view] = tx.exec_params("SELECT pg_get_viewdef($1::regclass)",
                                             std::string("mailtrail.") + view)[0][0]
                                  .as<std::string>();
    }
  }

  const auto result = Migrate(connection, kMigrations);
  ASSERT_FALSE(result.applied.empty()) << "no migration after 0004 to check";
  {
    pqxx::work tx(connection);
    tx.exec("CREATE SCHEMA old_views");
    for (const auto& [view, definition] : old_definitions) {
      tx.exec("CREATE VIEW old_views." + view + " AS " + definition);
    }
    tx.exec(GenerateSql(3000));
    tx.exec(kEdgeCases);
    tx.exec("ANALYZE");
    tx.commit();
  }

  pqxx::work tx(connection);
  tx.exec("SET TIME ZONE 'UTC'");
  for (const char* view : kViews) {
    const std::string now = std::string("mailtrail.") + view;
    const std::string old = std::string("old_views.") + view;
    const long rows = tx.exec("SELECT count(*) FROM " + now)[0][0].as<long>();
    EXPECT_GT(rows, 0) << view;
    EXPECT_EQ(tx.exec("SELECT count(*) FROM " + old)[0][0].as<long>(), rows) << view;
    // One statement each way, so now() is the same for both sides.
    const auto differences =
        tx.exec("(SELECT 'new', * FROM " + now + " EXCEPT ALL SELECT 'new', * FROM " + old +
                ") UNION ALL (SELECT 'old', * FROM " + old + " EXCEPT ALL SELECT 'old', * FROM " +
                now + ") LIMIT 5");
    std::string shown;
    for (const auto& row : differences) {
      for (const auto& field : row)
        shown += std::string(field.is_null() ? "NULL" : field.c_str()) + " | ";
      shown += "\n";
    }
    EXPECT_TRUE(differences.empty()) << view << " differs:\n" << shown;
  }
  // The edge cases reach the views.
  EXPECT_EQ(
      tx.exec("SELECT count(*) FROM mailtrail.status_durations WHERE order_id ~ '^letter_e[1-5]$'")
          [0][0]
              .as<long>(),
      10);
  // letter_e2: nested address (CA), delivered at its earliest delivered event.
  EXPECT_EQ(tx.exec("SELECT orders_delivered FROM mailtrail.delivery_performance "
                    "WHERE destination_country = 'CA' AND min_duration = interval '4 days 9 hours'")
                .size(),
            1u);
}

}  // namespace
}  // namespace mailtrail::store
