// The BI views of contract.md on a small, hand-made history whose right answers are worked out
// by hand in the comments. Each row of each view is checked.
#include <gtest/gtest.h>

#include <filesystem>
#include <pqxx/pqxx>

#include "pg_test_database.hpp"
#include "store/migrator.hpp"

namespace mailtrail::store {
namespace {

// A: letter, first class, no tracking number, terminal: ready 01-01 00:00 (createdAt) -> printing
//    01-02 09:00 -> processed_for_delivery 01-03 12:00 -> completed 01-06 12:00. Sent 01-01, NY.
// B: postcard, certified, processed_for_delivery since 01-10 and still there: stuck (> 10 days).
// C: cheque, ready, send date in 2100: waiting, not stuck.
// D: certified letter, delivered by the carrier 01-05 10:00, sent 01-01 00:00, CA.
// E: letter, first class, completed 01-04 00:00 (no tracking number), sent 01-01, NY.
constexpr const char* kHistory = R"sql(
INSERT INTO mailtrail.orders (id, order_type, live, status, mailing_class, tracking_number,
    carrier_status, send_date, created_at, updated_at, terminal, raw) VALUES
 ('letter_A', 'letters', true, 'completed', 'first_class', NULL, NULL,
  '2026-01-01T00:00Z', '2026-01-01T00:00Z', '2026-01-06T12:00Z', true,
  '{"to": {"countryCode": "US", "provinceOrState": "NY"}}'),
 ('postcard_B', 'postcards', true, 'processed_for_delivery', 'certified', '9400B', 'in_transit',
  '2026-01-08T00:00Z', '2026-01-08T00:00Z', '2026-01-10T00:00Z', false,
  '{"to": {"countryCode": "US", "provinceOrState": "TX"}}'),
 ('cheque_C', 'cheques', false, 'ready', 'first_class', NULL, NULL,
  '2100-01-01T00:00Z', '2026-01-01T00:00Z', '2026-01-01T00:00Z', false, '{"to": "contact_1"}'),
 ('letter_D', 'letters', true, 'completed', 'certified', '9400D', 'delivered',
  '2026-01-01T00:00Z', '2026-01-01T00:00Z', '2026-01-05T11:00Z', true,
  '{"to": {"countryCode": "US", "provinceOrState": "CA"}}'),
 ('letter_E', 'letters', true, 'completed', 'first_class', NULL, NULL,
  '2026-01-01T00:00Z', '2026-01-01T00:00Z', '2026-01-04T00:00Z', true,
  '{"to": {"address": {"countryCode": "US", "provinceOrState": "NY"}}}');

INSERT INTO mailtrail.order_changes (order_id, field, old_value, new_value, observed_at, source,
    api_updated_at) VALUES
 ('letter_A', 'status', NULL, 'ready', '2026-01-01T01:00Z', 'discovery', '2026-01-01T00:30Z'),
 ('letter_A', 'status', 'ready', 'printing', '2026-01-02T10:00Z', 'poll', '2026-01-02T09:00Z'),
 ('letter_A', 'status', 'printing', 'processed_for_delivery', '2026-01-03T13:00Z', 'poll', '2026-01-03T12:00Z'),
 ('letter_A', 'imb_status', NULL, 'entered_mail_stream', '2026-01-04T13:00Z', 'poll', '2026-01-04T12:00Z'),
 ('letter_A', 'status', 'processed_for_delivery', 'completed', '2026-01-06T13:00Z', 'webhook', '2026-01-06T12:00Z'),
 ('postcard_B', 'status', NULL, 'processed_for_delivery', '2026-01-10T01:00Z', 'discovery', '2026-01-10T00:00Z'),
 ('postcard_B', 'tracking_number', NULL, '9400B', '2026-01-10T01:00Z', 'discovery', '2026-01-10T00:00Z'),
 ('cheque_C', 'status', NULL, 'ready', '2026-01-01T02:00Z', 'discovery', '2026-01-01T00:00Z'),
 ('letter_D', 'status', NULL, 'processed_for_delivery', '2026-01-02T00:00Z', 'discovery', '2026-01-02T00:00Z'),
 ('letter_D', 'carrier_status', NULL, 'pre_transit', '2026-01-02T00:00Z', 'discovery', '2026-01-02T00:00Z'),
 ('letter_D', 'carrier_status', 'pre_transit', 'delivered', '2026-01-05T12:00Z', 'poll', '2026-01-05T11:00Z'),
 ('letter_D', 'status', 'processed_for_delivery', 'completed', '2026-01-05T12:00Z', 'poll', '2026-01-05T11:00Z'),
 ('letter_E', 'status', NULL, 'ready', '2026-01-01T00:10Z', 'discovery', '2026-01-01T00:00Z'),
 ('letter_E', 'status', 'ready', 'completed', '2026-01-04T01:00Z', 'poll', '2026-01-04T00:00Z');

INSERT INTO mailtrail.carrier_tracking_events (order_id, occurred_at, status, message, source,
    city, province_or_state, country_code, postal_or_zip) VALUES
 ('letter_D', '2026-01-02T08:00Z', 'pre_transit', 'Label created', 'USPS', NULL, NULL, NULL, NULL),
 ('letter_D', '2026-01-05T10:00Z', 'delivered', 'Delivered, front door', 'USPS',
  'Los Angeles', 'CA', 'US', '90001');
)sql";

class ViewsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    connection_ = std::make_unique<pqxx::connection>(database_.dsn());
    Migrate(*connection_, std::filesystem::path(MAILTRAIL_SOURCE_DIR) / "migrations");
    pqxx::work tx(*connection_);
    tx.exec(kHistory);
    tx.commit();
  }

  pqxx::result Query(const std::string& sql) {
    pqxx::work tx(*connection_);
    tx.exec("SET TIME ZONE 'UTC'");
    return tx.exec(sql);
  }

  mailtrail::testing::TestDatabase database_;
  std::unique_ptr<pqxx::connection> connection_;
};

std::string Text(const pqxx::field& field) { return field.is_null() ? "NULL" : field.c_str(); }

TEST_F(ViewsTest, StatusDurationsSpanEachStatusOfEachOrder) {
  const auto rows = Query(
      "SELECT order_id, status, entered_at, left_at, is_current, duration "
      "FROM mailtrail.status_durations WHERE order_id IN ('letter_A', 'postcard_B') "
      "ORDER BY order_id, entered_at");
  ASSERT_EQ(rows.size(), 5u);
  // A's first status was ready at createdAt, not at the snapshot's updatedAt.
  const std::vector<std::vector<std::string>> expected_a = {
      {"letter_A", "ready", "2026-01-01 00:00:00+00", "2026-01-02 09:00:00+00", "f",
       "1 day 09:00:00"},
      {"letter_A", "printing", "2026-01-02 09:00:00+00", "2026-01-03 12:00:00+00", "f",
       "1 day 03:00:00"},
      {"letter_A", "processed_for_delivery", "2026-01-03 12:00:00+00", "2026-01-06 12:00:00+00",
       "f", "3 days"},
      {"letter_A", "completed", "2026-01-06 12:00:00+00", "NULL", "t", "NULL"},
  };
  for (std::size_t r = 0; r < expected_a.size(); ++r) {
    for (std::size_t c = 0; c < expected_a[r].size(); ++c) {
      EXPECT_EQ(Text(rows[r][static_cast<int>(c)]), expected_a[r][c])
          << "row " << r << " col " << c;
    }
  }
  // B is still processed_for_delivery: its duration runs until now.
  EXPECT_EQ(Text(rows[4][1]), "processed_for_delivery");
  EXPECT_EQ(Text(rows[4][2]), "2026-01-10 00:00:00+00");
  EXPECT_TRUE(rows[4][3].is_null());
  EXPECT_EQ(Text(rows[4][4]), "t");
  const auto current = Query(
      "SELECT duration = now() - timestamptz '2026-01-10T00:00Z' FROM mailtrail.status_durations "
      "WHERE order_id = 'postcard_B'");
  EXPECT_EQ(Text(current[0][0]), "t");
}

TEST_F(ViewsTest, StuckOrdersListsOnlyOverdueNonTerminalOrders) {
  const auto rows =
      Query("SELECT order_id, status, since, allowed FROM mailtrail.stuck_orders ORDER BY 1");
  ASSERT_EQ(rows.size(), 1u) << "C waits for its 2100 send date, A/D/E are terminal";
  EXPECT_EQ(Text(rows[0][0]), "postcard_B");
  EXPECT_EQ(Text(rows[0][1]), "processed_for_delivery");
  EXPECT_EQ(Text(rows[0][2]), "2026-01-10 00:00:00+00");
  EXPECT_EQ(Text(rows[0][3]), "10 days");
}

TEST_F(ViewsTest, DailyStatusCountsCountEntriesPerDay) {
  const auto rows = Query(
      "SELECT day, order_type, live, status, orders_entered FROM mailtrail.daily_status_counts "
      "ORDER BY day, order_type, status, live");
  const std::vector<std::vector<std::string>> expected = {
      {"2026-01-01", "cheques", "f", "ready", "1"},
      {"2026-01-01", "letters", "t", "ready", "2"},  // A (createdAt) and E
      {"2026-01-02", "letters", "t", "printing", "1"},
      {"2026-01-02", "letters", "t", "processed_for_delivery", "1"},  // D first seen
      {"2026-01-03", "letters", "t", "processed_for_delivery", "1"},
      {"2026-01-04", "letters", "t", "completed", "1"},  // E
      {"2026-01-05", "letters", "t", "completed", "1"},  // D
      {"2026-01-06", "letters", "t", "completed", "1"},  // A
      {"2026-01-10", "postcards", "t", "processed_for_delivery", "1"},
  };
  ASSERT_EQ(rows.size(), expected.size());
  for (std::size_t r = 0; r < expected.size(); ++r) {
    for (std::size_t c = 0; c < expected[r].size(); ++c) {
      EXPECT_EQ(Text(rows[r][static_cast<int>(c)]), expected[r][c]) << "row " << r << " col " << c;
    }
  }
}

TEST_F(ViewsTest, DeliveryPerformanceGroupsSendToDelivery) {
  const auto rows = Query(
      "SELECT order_type, mailing_class, destination_country, destination_state, orders_delivered, "
      "avg_duration, p50_duration, p90_duration, min_duration, max_duration "
      "FROM mailtrail.delivery_performance ORDER BY mailing_class, destination_state");
  ASSERT_EQ(rows.size(), 2u) << "B is not delivered; C is not completed";
  // D: sent 01-01 00:00, carrier delivered 01-05 10:00 -> 4 days 10 h.
  EXPECT_EQ(Text(rows[0][1]), "certified");
  EXPECT_EQ(Text(rows[0][3]), "CA");
  EXPECT_EQ(Text(rows[0][4]), "1");
  EXPECT_EQ(Text(rows[0][5]), "4 days 10:00:00");
  // A (5 d 12 h, completed without tracking) and E (3 d, address nested under to.address).
  EXPECT_EQ(Text(rows[1][0]), "letters");
  EXPECT_EQ(Text(rows[1][1]), "first_class");
  EXPECT_EQ(Text(rows[1][2]), "US");
  EXPECT_EQ(Text(rows[1][3]), "NY");
  EXPECT_EQ(Text(rows[1][4]), "2");
  EXPECT_EQ(Text(rows[1][5]), "4 days 06:00:00");
  EXPECT_EQ(Text(rows[1][6]), "4 days 06:00:00");
  EXPECT_EQ(Text(rows[1][7]), "5 days 06:00:00");  // 3 d + 0.9 * 2 d 12 h
  EXPECT_EQ(Text(rows[1][8]), "3 days");
  EXPECT_EQ(Text(rows[1][9]), "5 days 12:00:00");
}

TEST_F(ViewsTest, OrderTimelineInterleavesChangesAndCarrierEvents) {
  const auto rows = Query(
      "SELECT occurred_at, kind, field, old_value, new_value, message, location, source "
      "FROM mailtrail.order_timeline WHERE order_id = 'letter_D' "
      "ORDER BY occurred_at, change_id NULLS LAST");
  const std::vector<std::vector<std::string>> expected = {
      {"2026-01-02 00:00:00+00", "change", "status", "NULL", "processed_for_delivery", "NULL",
       "NULL", "discovery"},
      {"2026-01-02 00:00:00+00", "change", "carrier_status", "NULL", "pre_transit", "NULL", "NULL",
       "discovery"},
      {"2026-01-02 08:00:00+00", "carrier_event", "carrier_event", "NULL", "pre_transit",
       "Label created", "NULL", "USPS"},
      {"2026-01-05 10:00:00+00", "carrier_event", "carrier_event", "NULL", "delivered",
       "Delivered, front door", "Los Angeles, CA, 90001, US", "USPS"},
      {"2026-01-05 12:00:00+00", "change", "carrier_status", "pre_transit", "delivered", "NULL",
       "NULL", "poll"},
      {"2026-01-05 12:00:00+00", "change", "status", "processed_for_delivery", "completed", "NULL",
       "NULL", "poll"},
  };
  ASSERT_EQ(rows.size(), expected.size());
  for (std::size_t r = 0; r < expected.size(); ++r) {
    for (std::size_t c = 0; c < expected[r].size(); ++c) {
      EXPECT_EQ(Text(rows[r][static_cast<int>(c)]), expected[r][c]) << "row " << r << " col " << c;
    }
  }
}

TEST_F(ViewsTest, EveryTableAndViewIsDocumented) {
  const auto rows = Query(
      "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
      "WHERE n.nspname = 'mailtrail' AND c.relkind IN ('r', 'v') "
      "AND obj_description(c.oid, 'pg_class') IS NULL");
  for (const auto& row : rows) ADD_FAILURE() << "no COMMENT ON " << row[0].c_str();
}

}  // namespace
}  // namespace mailtrail::store
