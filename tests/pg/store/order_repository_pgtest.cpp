#include <gtest/gtest.h>

#include <filesystem>
#include <pqxx/pqxx>
#include <thread>

#include "pg_test_database.hpp"
#include "store/migrator.hpp"
#include "store/order_repository.hpp"

namespace mailtrail::store {
namespace {

using domain::OrderSnapshot;
using domain::Timestamp;
using namespace std::chrono_literals;

Timestamp At(const std::string& iso) { return *domain::ParseTimestamp(iso); }

OrderSnapshot Letter(const std::string& status, const std::string& updated_at) {
  OrderSnapshot order;
  order.ref = {domain::OrderType::kLetter, "letter_1", ""};
  order.live = true;
  order.status = domain::OrderStatus::FromRaw(status);
  order.mailing_class = "first_class";
  order.created_at = At("2026-01-01T00:00:00Z");
  order.updated_at = At(updated_at);
  return order;
}

domain::TrackingUpdate Update(const std::string& at, const std::string& status,
                              const std::string& message) {
  domain::TrackingUpdate update;
  update.occurred_at = At(at);
  update.status = domain::CarrierStatus::FromRaw(status);
  update.message = message;
  update.source = "USPS";
  return update;
}

class OrderRepositoryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    connection_ = std::make_unique<pqxx::connection>(database_.dsn());
    Migrate(*connection_, std::filesystem::path(MAILTRAIL_SOURCE_DIR) / "migrations");
  }

  OrderRepository Repository(pqxx::connection_base& connection) {
    return OrderRepository(connection, policy_, [] { return 0.0; });
  }

  // order_changes as "field:old>new@source" strings in insertion order.
  std::vector<std::string> Changes(const std::string& id = "letter_1") {
    pqxx::read_transaction tx(*connection_);
    std::vector<std::string> out;
    for (const auto& row : tx.exec_params(
             "SELECT field, coalesce(old_value, 'NULL'), coalesce(new_value, 'NULL'), source "
             "FROM mailtrail.order_changes WHERE order_id = $1 ORDER BY id",
             id)) {
      out.push_back(row[0].as<std::string>() + ":" + row[1].as<std::string>() + ">" +
                    row[2].as<std::string>() + "@" + row[3].as<std::string>());
    }
    return out;
  }

  long Count(const std::string& sql) {
    pqxx::read_transaction tx(*connection_);
    return tx.exec(sql)[0][0].as<long>();
  }

  mailtrail::testing::TestDatabase database_;
  std::unique_ptr<pqxx::connection> connection_;
  domain::PollPolicy policy_{1h, 6h, 24h * 14};
};

TEST_F(OrderRepositoryTest, FirstObservationWritesTheRowAndAChangePerNonNullField) {
  auto repository = Repository(*connection_);
  OrderSnapshot order = Letter("processed_for_delivery", "2026-01-02T00:00:00Z");
  order.tracking_number = "9400";
  order.carrier_tracking.emplace();
  order.carrier_tracking->status = domain::CarrierStatus::FromRaw("in_transit");
  order.carrier_tracking->updates = {Update("2026-01-02T01:00:00Z", "pre_transit", "Label"),
                                     Update("2026-01-02T05:00:00Z", "in_transit", "Moving")};
  const auto result = repository.Apply(order, R"({"id":"letter_1","extra":1})", Source::kDiscovery,
                                       At("2026-01-02T06:00:00Z"));
  EXPECT_TRUE(result.first_observation);
  EXPECT_FALSE(result.stale);
  EXPECT_EQ(result.new_tracking_events, 2u);
  EXPECT_EQ(Changes(), (std::vector<std::string>{
                           "status:NULL>processed_for_delivery@discovery",
                           "tracking_number:NULL>9400@discovery",
                           "carrier_status:NULL>in_transit@discovery",
                       }));
  pqxx::read_transaction tx(*connection_);
  const auto row = tx.exec(
      "SELECT status, tracking_number, carrier_status, raw->>'extra', terminal, check_reason, "
      "next_check_at = timestamptz '2026-01-02T06:00:00Z' + interval '3 hours', "
      "last_changed_at = timestamptz '2026-01-02T06:00:00Z' FROM mailtrail.orders")[0];
  EXPECT_EQ(row[0].as<std::string>(), "processed_for_delivery");
  EXPECT_EQ(row[1].as<std::string>(), "9400");
  EXPECT_EQ(row[2].as<std::string>(), "in_transit");
  EXPECT_EQ(row[3].as<std::string>(), "1") << "raw keeps unknown fields";
  EXPECT_FALSE(row[4].as<bool>());
  EXPECT_EQ(row[5].as<std::string>(), "carrier_tracking");
  EXPECT_TRUE(row[6].as<bool>()) << "first observation waits half the carrier interval (jitter 0)";
  EXPECT_TRUE(row[7].as<bool>());
}

TEST_F(OrderRepositoryTest, UnchangedSnapshotWritesNoHistory) {
  auto repository = Repository(*connection_);
  const auto order = Letter("ready", "2026-01-01T00:00:00Z");
  repository.Apply(order, "{}", Source::kDiscovery, At("2026-01-01T01:00:00Z"));
  const auto again = repository.Apply(order, "{}", Source::kPoll, At("2026-01-01T02:00:00Z"));
  EXPECT_FALSE(again.first_observation);
  EXPECT_TRUE(again.changes.empty());
  EXPECT_EQ(Changes(), (std::vector<std::string>{"status:NULL>ready@discovery"}));
  EXPECT_EQ(Count("SELECT count(*) FROM mailtrail.orders WHERE last_checked_at = "
                  "'2026-01-01T02:00:00Z' AND last_changed_at = '2026-01-01T01:00:00Z'"),
            1);
}

TEST_F(OrderRepositoryTest, ChangeIsRecordedWithSourceAndApiUpdatedAt) {
  auto repository = Repository(*connection_);
  repository.Apply(Letter("ready", "2026-01-01T00:00:00Z"), "{}", Source::kDiscovery,
                   At("2026-01-01T01:00:00Z"));
  const auto result = repository.Apply(Letter("printing", "2026-01-02T03:04:05.678Z"), "{}",
                                       Source::kWebhook, At("2026-01-02T04:00:00Z"));
  ASSERT_EQ(result.changes.size(), 1u);
  EXPECT_EQ(Changes().back(), "status:ready>printing@webhook");
  EXPECT_EQ(Count("SELECT count(*) FROM mailtrail.order_changes WHERE new_value = 'printing' "
                  "AND api_updated_at = '2026-01-02T03:04:05.678Z' "
                  "AND observed_at = '2026-01-02T04:00:00Z'"),
            1);
}

TEST_F(OrderRepositoryTest, StaleSnapshotWritesNothing) {
  auto repository = Repository(*connection_);
  repository.Apply(Letter("printing", "2026-01-02T00:00:00Z"), "{}", Source::kPoll,
                   At("2026-01-02T01:00:00Z"));
  const auto stale = repository.Apply(Letter("ready", "2026-01-01T00:00:00Z"), "{}",
                                      Source::kWebhook, At("2026-01-02T02:00:00Z"));
  EXPECT_TRUE(stale.stale);
  EXPECT_TRUE(stale.changes.empty());
  EXPECT_EQ(Changes(), (std::vector<std::string>{"status:NULL>printing@poll"}));
  EXPECT_EQ(Count("SELECT count(*) FROM mailtrail.orders WHERE status = 'printing' "
                  "AND last_checked_at = '2026-01-02T02:00:00Z'"),
            1);
}

TEST_F(OrderRepositoryTest, CarrierEventsAreStoredOnceWhateverTheOrderOrRepeats) {
  auto repository = Repository(*connection_);
  OrderSnapshot order = Letter("processed_for_delivery", "2026-01-02T00:00:00Z");
  order.tracking_number = "9400";
  order.carrier_tracking.emplace();
  order.carrier_tracking->updates = {Update("2026-01-02T01:00:00Z", "pre_transit", "Label")};
  repository.Apply(order, "{}", Source::kPoll, At("2026-01-02T02:00:00Z"));

  order.updated_at = At("2026-01-03T00:00:00Z");
  order.carrier_tracking->updates = {
      Update("2026-01-03T00:00:00Z", "in_transit", "Arrived"),
      Update("2026-01-02T01:00:00Z", "pre_transit", "Label"),
      Update("2026-01-03T00:00:00Z", "in_transit", "Arrived"),   // duplicate in one response
      Update("2026-01-03T00:00:00Z", "in_transit", "Departed"),  // same time, other message
  };
  const auto result = repository.Apply(order, "{}", Source::kPoll, At("2026-01-03T01:00:00Z"));
  EXPECT_EQ(result.new_tracking_events, 2u);
  EXPECT_EQ(Count("SELECT count(*) FROM mailtrail.carrier_tracking_events"), 3);
  const auto again = repository.Apply(order, "{}", Source::kPoll, At("2026-01-03T02:00:00Z"));
  EXPECT_EQ(again.new_tracking_events, 0u);
  EXPECT_EQ(Count("SELECT count(*) FROM mailtrail.carrier_tracking_events"), 3);
  // Each history row carries the order's type (migration 0009).
  EXPECT_EQ(Count("SELECT count(*) FROM mailtrail.carrier_tracking_events "
                  "WHERE order_type = 'letters'"),
            3);
  EXPECT_EQ(Count("SELECT count(*) FROM mailtrail.order_changes "
                  "WHERE order_type IS DISTINCT FROM 'letters'"),
            0);
}

TEST_F(OrderRepositoryTest, RacingRefreshesWriteEachChangeOnce) {
  // Five successive states of one order; several "replicas" each apply all of them in order, at
  // the same time, on their own connections. Every true transition must appear exactly once.
  const std::vector<std::string> statuses = {"ready", "printing", "processed_for_delivery",
                                             "completed", "completed"};
  std::vector<OrderSnapshot> versions;
  for (std::size_t i = 0; i < statuses.size(); ++i) {
    OrderSnapshot order = Letter(statuses[i], "2026-01-0" + std::to_string(i + 1) + "T00:00:00Z");
    if (i >= 2)
      order.imb_status =
          domain::ImbStatus::FromRaw(i == 4 ? "out_for_delivery" : "entered_mail_stream");
    versions.push_back(order);
  }
  constexpr int kReplicas = 6;
  std::vector<std::thread> threads;
  std::vector<std::string> errors(kReplicas);
  for (int r = 0; r < kReplicas; ++r) {
    threads.emplace_back([&, r] {
      try {
        pqxx::connection connection(database_.dsn());
        auto repository = Repository(connection);
        for (const auto& version : versions) {
          repository.Apply(version, "{}", r % 2 == 0 ? Source::kPoll : Source::kWebhook,
                           At("2026-02-01T00:00:00Z"));
        }
      } catch (const std::exception& e) {
        errors[r] = e.what();
      }
    });
  }
  for (auto& thread : threads) thread.join();
  for (const auto& error : errors) EXPECT_EQ(error, "");

  std::vector<std::string> without_source;
  for (const auto& change : Changes()) without_source.push_back(change.substr(0, change.find('@')));
  EXPECT_EQ(without_source, (std::vector<std::string>{
                                "status:NULL>ready",
                                "status:ready>printing",
                                "status:printing>processed_for_delivery",
                                "imb_status:NULL>entered_mail_stream",
                                "status:processed_for_delivery>completed",
                                "imb_status:entered_mail_stream>out_for_delivery",
                            }));
}

TEST_F(OrderRepositoryTest, TerminalOrdersAreNeverDue) {
  auto repository = Repository(*connection_);
  OrderSnapshot cancelled = Letter("cancelled", "2026-01-01T00:00:00Z");
  cancelled.ref.id = "letter_cancelled";
  cancelled.cancellation_reason = "user_initiated";
  const auto result =
      repository.Apply(cancelled, "{}", Source::kDiscovery, At("2026-01-01T01:00:00Z"));
  EXPECT_TRUE(result.schedule.terminal);
  EXPECT_EQ(Count("SELECT count(*) FROM mailtrail.orders WHERE terminal AND next_check_at IS NULL "
                  "AND check_reason = 'terminal_cancelled'"),
            1);
  EXPECT_TRUE(repository
                  .ClaimDue(At("2030-01-01T00:00:00Z"), 100, 5min,
                            {domain::kAllOrderTypes.begin(), domain::kAllOrderTypes.end()})
                  .empty());
}

TEST_F(OrderRepositoryTest, OnlyAWebhookRescheduleReopensATerminalOrder) {
  auto repository = Repository(*connection_);
  OrderSnapshot cancelled = Letter("cancelled", "2026-01-01T00:00:00Z");
  cancelled.ref.id = "letter_cancelled";
  cancelled.cancellation_reason = "user_initiated";
  repository.Apply(cancelled, "{}", Source::kDiscovery, At("2026-01-01T01:00:00Z"));
  const std::vector<domain::OrderType> letters = {domain::OrderType::kLetter};

  EXPECT_FALSE(
      repository.Reschedule("letter_cancelled", At("2026-01-01T02:00:00Z"), "refresh_failed"));
  EXPECT_FALSE(repository.Reschedule("letter_unknown", At("2026-01-01T02:00:00Z"), "webhook_retry",
                                     /*reopen_terminal=*/true));
  EXPECT_TRUE(repository.ClaimDue(At("2026-01-01T03:00:00Z"), 100, 5min, letters).empty());

  EXPECT_TRUE(repository.Reschedule("letter_cancelled", At("2026-01-01T02:00:00Z"), "webhook_retry",
                                    /*reopen_terminal=*/true));
  const auto due = repository.ClaimDue(At("2026-01-01T03:00:00Z"), 100, 5min, letters);
  ASSERT_EQ(due.size(), 1u);
  EXPECT_EQ(due.front().ref.id, "letter_cancelled");
  EXPECT_EQ(due.front().check_reason, "webhook_retry");
  // The refresh that follows decides again: still cancelled, so terminal again.
  OrderSnapshot again = cancelled;
  const auto result = repository.Apply(again, "{}", Source::kPoll, At("2026-01-01T03:00:01Z"));
  EXPECT_TRUE(result.schedule.terminal);
  EXPECT_EQ(
      Count("SELECT count(*) FROM mailtrail.orders WHERE id = 'letter_cancelled' AND terminal "
            "AND next_check_at IS NULL"),
      1);
}

TEST_F(OrderRepositoryTest, ClaimDueLeasesDisjointSetsAndSkipsNotYetDue) {
  auto repository = Repository(*connection_);
  for (int i = 0; i < 20; ++i) {
    OrderSnapshot order = Letter("ready", "2026-01-01T00:00:00Z");
    order.ref.id = "letter_" + std::to_string(i);
    repository.Apply(order, "{}", Source::kDiscovery, At("2026-01-01T00:00:00Z"));
  }
  // With jitter 0 a first observation is due half an interval later: 00:30.
  const std::vector<domain::OrderType> letters = {domain::OrderType::kLetter};
  EXPECT_TRUE(repository.ClaimDue(At("2026-01-01T00:29:00Z"), 100, 5min, letters).empty());
  EXPECT_TRUE(repository.ClaimDue(At("2026-01-01T00:31:00Z"), 100, 5min, {domain::OrderType::kBox})
                  .empty());

  pqxx::connection other_connection(database_.dsn());
  auto other = Repository(other_connection);
  const auto first = repository.ClaimDue(At("2026-01-01T00:31:00Z"), 12, 5min, letters);
  const auto second = other.ClaimDue(At("2026-01-01T00:31:00Z"), 12, 5min, letters);
  EXPECT_EQ(first.size(), 12u);
  EXPECT_EQ(second.size(), 8u);
  std::set<std::string> ids;
  for (const auto& due : first) ids.insert(due.ref.id);
  for (const auto& due : second) ids.insert(due.ref.id);
  EXPECT_EQ(ids.size(), 20u) << "no order is claimed twice";
  EXPECT_EQ(first.front().check_reason, "awaiting_carrier_data");
  // The lease runs out after 5 minutes, and the orders are due again.
  EXPECT_TRUE(repository.ClaimDue(At("2026-01-01T00:35:00Z"), 100, 5min, letters).empty());
  EXPECT_EQ(repository.ClaimDue(At("2026-01-01T00:36:01Z"), 100, 5min, letters).size(), 20u);
}

TEST_F(OrderRepositoryTest, LoadRoundTripsWhatApplyStored) {
  auto repository = Repository(*connection_);
  OrderSnapshot order = Letter("completed", "2026-01-05T00:00:00Z");
  order.tracking_number = "9400";
  order.imb_status = domain::ImbStatus::FromRaw("brand_new_imb_value");
  order.carrier_tracking.emplace();
  order.carrier_tracking->status = domain::CarrierStatus::FromRaw("delivered");
  order.carrier_tracking->est_delivery_date = At("2026-01-05");
  order.carrier_tracking->signed_by = "J DOE";
  order.carrier_tracking->updates = {Update("2026-01-04T10:00:00.123456Z", "delivered", "Done")};
  order.metadata_json = R"({"campaign":"x"})";
  repository.Apply(order, "{}", Source::kBackfill, At("2026-01-06T00:00:00Z"));
  const auto loaded = repository.Load("letter_1");
  ASSERT_TRUE(loaded.has_value());
  for (auto field : domain::kAllFields) {
    EXPECT_EQ(domain::FieldValue(*loaded, field), domain::FieldValue(order, field))
        << domain::FieldName(field);
  }
  EXPECT_EQ(loaded->carrier_tracking->updates, order.carrier_tracking->updates);
  EXPECT_EQ(loaded->imb_status->raw, "brand_new_imb_value");
  EXPECT_EQ(Count("SELECT count(*) FROM mailtrail.orders WHERE terminal "
                  "AND check_reason = 'terminal_delivered'"),
            1);
}

// An untracked completed order is watched for completed_grace (14 days here) from when it first
// became completed, not from its latest updatedAt: a late IMB scan moves updatedAt on, and the
// grace must not restart with it. Both write paths read that moment from the stored history.
TEST_F(OrderRepositoryTest, CompletedGraceCountsFromWhenTheOrderFirstBecameCompleted) {
  auto repository = Repository(*connection_);
  const auto completed_on_jan_5 = [](const std::string& id) {
    OrderSnapshot order = Letter("completed", "2026-01-05T00:00:00Z");
    order.ref.id = id;
    return order;
  };
  const auto scanned_on_jan_19 = [&](const std::string& id) {
    OrderSnapshot order = completed_on_jan_5(id);
    order.updated_at = At("2026-01-19T00:00:00Z");
    order.imb_status = domain::ImbStatus::FromRaw("out_for_delivery");
    return order;
  };
  repository.Apply(completed_on_jan_5("letter_apply"), "{}", Source::kPoll,
                   At("2026-01-05T01:00:00Z"));
  repository.ApplyBatch({{completed_on_jan_5("letter_batch"), "{}"}}, Source::kPoll,
                        At("2026-01-05T01:00:00Z"));

  // Day 15 after completion, day 1 after the scan: the grace of the first completion is over.
  const auto by_apply = repository.Apply(scanned_on_jan_19("letter_apply"), "{}", Source::kPoll,
                                         At("2026-01-20T00:00:00Z"));
  const auto by_batch = repository.ApplyBatch({{scanned_on_jan_19("letter_batch"), "{}"}},
                                              Source::kPoll, At("2026-01-20T00:00:00Z"));
  ASSERT_EQ(by_batch.size(), 1u);
  for (const ApplyResult* result : {&by_apply, &by_batch.front()}) {
    EXPECT_EQ(domain::CheckReasonName(result->schedule.reason), "terminal_grace_expired");
    EXPECT_TRUE(result->schedule.terminal);
    EXPECT_EQ(result->changes.size(), 1u) << "the IMB scan is recorded";
  }
  EXPECT_EQ(Count("SELECT count(*) FROM mailtrail.orders WHERE terminal "
                  "AND check_reason = 'terminal_grace_expired'"),
            2);
}

TEST_F(OrderRepositoryTest, CompletedGraceRunsOnWhileItLasts) {
  auto repository = Repository(*connection_);
  OrderSnapshot order = Letter("completed", "2026-01-05T00:00:00Z");
  repository.Apply(order, "{}", Source::kPoll, At("2026-01-05T01:00:00Z"));
  order.updated_at = At("2026-01-10T00:00:00Z");
  order.imb_status = domain::ImbStatus::FromRaw("out_for_delivery");
  const auto result = repository.Apply(order, "{}", Source::kPoll, At("2026-01-11T00:00:00Z"));
  EXPECT_EQ(domain::CheckReasonName(result.schedule.reason), "completed_grace");
  EXPECT_FALSE(result.schedule.terminal);
}

}  // namespace
}  // namespace mailtrail::store
