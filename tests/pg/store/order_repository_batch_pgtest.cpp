// OrderRepository::ApplyBatch (issue 10, benchmark 6) against Apply, its one-order-per-transaction
// reference: the same pages of snapshots applied both ways to two databases must leave the same
// rows and report the same results, whatever mix of new, changed, stale and repeated orders a page
// holds; racing batches must write each change once.
#include <gtest/gtest.h>

#include <filesystem>
#include <pqxx/pqxx>
#include <random>
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

domain::TrackingUpdate Update(Timestamp at, const std::string& status, const std::string& message) {
  domain::TrackingUpdate update;
  update.occurred_at = at;
  update.status = domain::CarrierStatus::FromRaw(status);
  update.message = message;
  update.source = "USPS";
  update.city = "Springfield";
  update.postal_or_zip = "10001";
  return update;
}

// Version `v` (0..5) of order number `n`: the status moves on with v, carrier data appears for
// tracked orders, tracking updates accumulate (with a repeat inside one response), some orders are
// cancelled, and a few carry awkward text (quotes, backslashes, braces, commas, "NULL").
OrderSnapshot Version(int n, int v) {
  static const std::vector<std::string> kStatuses = {
      "ready", "printing", "processed_for_delivery", "completed", "completed", "completed"};
  OrderSnapshot order;
  order.ref = {domain::OrderType::kLetter, "letter_" + std::to_string(n), ""};
  if (n % 7 == 3)
    order.ref = {domain::OrderType::kReturnEnvelopeOrder,
                 "return_envelope_order_" + std::to_string(n), "return_envelope_1"};
  order.live = n % 5 != 0;
  const Timestamp created = At("2026-01-01T00:00:00Z") + std::chrono::hours(n);
  order.created_at = created;
  order.updated_at = created + std::chrono::hours(24 * v);
  order.send_date = created;
  const bool tracked = n % 3 == 0;
  const bool cancelled = n % 11 == 5 && v >= 1;
  if (order.ref.type == domain::OrderType::kReturnEnvelopeOrder) {
    order.status = domain::OrderStatus::FromRaw(v >= 3 ? "filled" : "placed");
  } else {
    order.status = domain::OrderStatus::FromRaw(cancelled ? "cancelled" : kStatuses[v]);
  }
  if (cancelled) order.cancellation_reason = "user_initiated";
  order.mailing_class = tracked ? "certified" : "first_class";
  order.description = n % 4 == 1 ? R"(quote " backslash \ brace { } comma , NULL)" : "plain";
  order.metadata_json = R"({"customer_id": "C-)" + std::to_string(n % 9) + R"(", "q": "a\"b"})";
  if (!tracked && v >= 2 && !cancelled) {
    order.imb_status =
        domain::ImbStatus::FromRaw(v >= 4 ? "out_for_delivery" : "entered_mail_stream");
    order.imb_zip_code = v >= 4 ? "10002" : "60607";
  }
  if (tracked && v >= 2 && !cancelled) {
    order.tracking_number = "9400" + std::to_string(n);
    order.carrier_tracking.emplace();
    order.carrier_tracking->carrier = "USPS";
    order.carrier_tracking->status = domain::CarrierStatus::FromRaw(
        v >= 4 ? "delivered" : (v == 3 ? "in_transit" : "pre_transit"));
    order.carrier_tracking->status_detail = v >= 4 ? "delivered, left with \"J\"" : "moving";
    order.carrier_tracking->est_delivery_date = created + std::chrono::hours(24 * 6);
    if (v >= 4) order.carrier_tracking->signed_by = "J SMITH";
    for (int e = 2; e <= v; ++e) {
      order.carrier_tracking->updates.push_back(Update(created + std::chrono::hours(24 * e + 1),
                                                       e >= 4 ? "delivered" : "in_transit",
                                                       "scan " + std::to_string(e)));
    }
    if (v >= 3) order.carrier_tracking->updates.push_back(order.carrier_tracking->updates.front());
  }
  return order;
}

// `fetch` tells fetches of one version apart: a repeat with the stored updatedAt keeps the raw
// object first stored, both ways.
std::string Raw(const OrderSnapshot& order, int v, int fetch = 0) {
  return R"({"id": ")" + order.ref.id + R"(", "v": )" + std::to_string(v) + R"(, "fetch": )" +
         std::to_string(fetch) + R"(, "text": "q\"b\\s{x,y}"})";
}

std::string ResultText(const ApplyResult& result) {
  std::string text =
      std::string(result.first_observation ? "first " : "") + (result.stale ? "stale " : "") +
      "events=" + std::to_string(result.new_tracking_events) +
      " reason=" + std::string(domain::CheckReasonName(result.schedule.reason)) +
      (result.schedule.terminal ? " terminal" : "") + " next=" +
      (result.schedule.next_check_at ? domain::FormatTimestamp(*result.schedule.next_check_at)
                                     : "none");
  for (const auto& change : result.changes) {
    text += " " + std::string(domain::FieldName(change.field)) + ":" +
            change.old_value.value_or("NULL") + ">" + change.new_value.value_or("NULL");
  }
  return text;
}

// Every row of the three tables as text, ids of order_changes left out (their order within an
// order is kept: rows are listed by order_id, id).
std::vector<std::string> Dump(pqxx::connection& connection) {
  pqxx::read_transaction tx(connection);
  std::vector<std::string> rows;
  for (const char* sql : {"SELECT o::text FROM mailtrail.orders o ORDER BY id",
                          "SELECT row(order_id, order_type, field, old_value, new_value, observed_at, "
                          "source, api_updated_at)::text "
                          "FROM mailtrail.order_changes ORDER BY order_id, id",
                          "SELECT e::text FROM mailtrail.carrier_tracking_events e "
                          "ORDER BY order_id, occurred_at, status, message"}) {
    for (const auto& row : tx.exec(sql)) rows.push_back(row[0].as<std::string>());
  }
  return rows;
}

class ApplyBatchTest : public ::testing::Test {
 protected:
  void SetUp() override {
    one_by_one_ = std::make_unique<pqxx::connection>(one_by_one_db_.dsn());
    batched_ = std::make_unique<pqxx::connection>(batched_db_.dsn());
    const auto migrations = std::filesystem::path(MAILTRAIL_SOURCE_DIR) / "migrations";
    Migrate(*one_by_one_, migrations);
    Migrate(*batched_, migrations);
  }

  OrderRepository Repository(pqxx::connection_base& connection) {
    return OrderRepository(connection, policy_, [] { return 0.25; });
  }

  mailtrail::testing::TestDatabase one_by_one_db_;
  mailtrail::testing::TestDatabase batched_db_;
  std::unique_ptr<pqxx::connection> one_by_one_;
  std::unique_ptr<pqxx::connection> batched_;
  domain::PollPolicy policy_{1h, 6h, 24h * 14};
};

TEST_F(ApplyBatchTest, LeavesTheSameRowsAndResultsAsApplyOrderByOrder) {
  // Pages of (order, version) pairs in random order: versions go forward, repeat (unchanged),
  // go back (stale), and the same order can occur several times in one page.
  std::mt19937 random(20261127);
  constexpr int kOrders = 60;
  std::vector<int> latest(kOrders, -1);
  auto one_by_one = Repository(*one_by_one_);
  auto batched = Repository(*batched_);
  std::size_t stale = 0, first = 0, repeats = 0, changes = 0, events = 0;
  for (int page_number = 0; page_number < 12; ++page_number) {
    std::vector<SnapshotToApply> page;
    std::vector<int> page_ids;
    const int size = page_number == 0 ? 100 : 1 + static_cast<int>(random() % 100);
    for (int i = 0; i < size; ++i) {
      const int n = static_cast<int>(random() % kOrders);
      int v = latest[n] + static_cast<int>(random() % 3) - 1;  // back, same or forward
      v = std::clamp(v, 0, 5);
      latest[n] = std::max(latest[n], v);
      OrderSnapshot order = Version(n, v);
      page.push_back({order, Raw(order, v, page_number * 1000 + i)});
      repeats += std::count(page_ids.begin(), page_ids.end(), n);
      page_ids.push_back(n);
    }
    const Timestamp observed = At("2026-03-01T00:00:00Z") + std::chrono::hours(page_number);
    std::vector<ApplyResult> expected;
    for (const auto& item : page) {
      expected.push_back(
          one_by_one.Apply(item.snapshot, item.raw_json, Source::kBackfill, observed));
    }
    const auto actual = batched.ApplyBatch(page, Source::kBackfill, observed);
    ASSERT_EQ(actual.size(), expected.size());
    for (std::size_t i = 0; i < page.size(); ++i) {
      EXPECT_EQ(ResultText(actual[i]), ResultText(expected[i]))
          << "page " << page_number << " item " << i << " " << page[i].snapshot.ref.id;
      stale += expected[i].stale;
      first += expected[i].first_observation;
      changes += expected[i].changes.size();
      events += expected[i].new_tracking_events;
    }
    ASSERT_EQ(Dump(*batched_), Dump(*one_by_one_)) << "after page " << page_number;
  }
  // The history really exercised every path (unmoved repeats kept an earlier fetch's raw).
  EXPECT_EQ(first, static_cast<std::size_t>(kOrders));
  pqxx::read_transaction tx(*batched_);
  EXPECT_GT(tx.exec1("SELECT count(*) FROM mailtrail.orders WHERE (raw->>'fetch')::int / 1000 < "
                     "11 AND last_checked_at = '2026-03-01T11:00:00Z'")[0]
                .as<int>(),
            0);
  // Every history row carries its order's type (migration 0009), from both paths alike.
  EXPECT_EQ(tx.exec1("SELECT (SELECT count(*) FROM mailtrail.order_changes c "
                     "        JOIN mailtrail.orders o ON o.id = c.order_id "
                     "        WHERE c.order_type IS DISTINCT FROM o.order_type) "
                     "     + (SELECT count(*) FROM mailtrail.carrier_tracking_events e "
                     "        JOIN mailtrail.orders o ON o.id = e.order_id "
                     "        WHERE e.order_type IS DISTINCT FROM o.order_type)")[0]
                .as<int>(),
            0);
  EXPECT_GT(stale, 10u);
  EXPECT_GT(repeats, 10u);
  EXPECT_GT(changes, 200u);
  EXPECT_GT(events, 20u);
}

TEST_F(ApplyBatchTest, EmptyBatchWritesNothing) {
  auto batched = Repository(*batched_);
  EXPECT_TRUE(batched.ApplyBatch({}, Source::kBackfill, At("2026-03-01T00:00:00Z")).empty());
  pqxx::read_transaction tx(*batched_);
  EXPECT_EQ(tx.exec("SELECT count(*) FROM mailtrail.orders")[0][0].as<int>(), 0);
}

TEST_F(ApplyBatchTest, AnOrderTheDatabaseRefusesWritesNothingOfThePage) {
  auto batched = Repository(*batched_);
  std::vector<SnapshotToApply> page;
  for (int n = 1; n <= 3; ++n) {
    OrderSnapshot order = Version(n, 2);
    page.push_back({order, Raw(order, 2)});
  }
  page[1].raw_json = "not json";  // PostgreSQL refuses it as jsonb
  EXPECT_THROW(batched.ApplyBatch(page, Source::kBackfill, At("2026-03-01T00:00:00Z")),
               pqxx::sql_error);
  pqxx::read_transaction tx(*batched_);
  EXPECT_EQ(tx.exec("SELECT count(*) FROM mailtrail.orders")[0][0].as<int>(), 0);
  EXPECT_EQ(tx.exec("SELECT count(*) FROM mailtrail.order_changes")[0][0].as<int>(), 0);
}

TEST_F(ApplyBatchTest, RacingBatchesWriteEachChangeOnce) {
  // Several "replicas" apply the same versions of the same 50 orders in pages, each in its own
  // page order, at the same time. Every transition must be written exactly once, as one replica
  // applying them alone writes it.
  constexpr int kOrders = 50;
  constexpr int kReplicas = 4;
  std::vector<std::string> errors(kReplicas);
  std::vector<std::thread> threads;
  for (int r = 0; r < kReplicas; ++r) {
    threads.emplace_back([&, r] {
      try {
        pqxx::connection connection(batched_db_.dsn());
        auto repository = Repository(connection);
        for (int v = 0; v <= 5; ++v) {
          std::vector<SnapshotToApply> page;
          for (int i = 0; i < kOrders; ++i) {
            const int n = r % 2 == 0 ? i : kOrders - 1 - i;
            OrderSnapshot order = Version(n, v);
            page.push_back({order, Raw(order, v)});
          }
          for (int attempt = 0;; ++attempt) {
            try {
              repository.ApplyBatch(page, r % 2 == 0 ? Source::kPoll : Source::kWebhook,
                                    At("2026-03-01T00:00:00Z"));
              break;
            } catch (const pqxx::deadlock_detected&) {
              // All or nothing: a batch that lost a deadlock wrote nothing; the syncer then
              // records the page order by order. Here: try the batch again.
              if (attempt == 5) throw;
            }
          }
        }
      } catch (const std::exception& e) {
        errors[r] = e.what();
      }
    });
  }
  for (auto& thread : threads) thread.join();
  for (const auto& error : errors) EXPECT_EQ(error, "");

  auto alone = Repository(*one_by_one_);
  for (int v = 0; v <= 5; ++v) {
    for (int n = 0; n < kOrders; ++n) {
      OrderSnapshot order = Version(n, v);
      alone.Apply(order, Raw(order, v), Source::kPoll, At("2026-03-01T00:00:00Z"));
    }
  }
  const auto history = [](pqxx::connection& connection) {
    pqxx::read_transaction tx(connection);
    std::vector<std::string> rows;
    for (const auto& row : tx.exec("SELECT row(order_id, field, old_value, new_value)::text "
                                   "FROM mailtrail.order_changes ORDER BY order_id, id")) {
      rows.push_back(row[0].as<std::string>());
    }
    for (const auto& row : tx.exec("SELECT row(order_id, occurred_at, status, message)::text "
                                   "FROM mailtrail.carrier_tracking_events ORDER BY 1")) {
      rows.push_back(row[0].as<std::string>());
    }
    return rows;
  };
  const auto expected = history(*one_by_one_);
  EXPECT_GT(expected.size(), 200u);
  EXPECT_EQ(history(*batched_), expected);
}

}  // namespace
}  // namespace mailtrail::store
