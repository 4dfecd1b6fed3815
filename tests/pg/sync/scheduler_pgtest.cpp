// Scheduler polling (RefreshDue) against a scripted PostGrid and a real PostgreSQL: the fetched
// orders of a claim are written together, and every order that could not be fetched or read is
// counted as a failed refresh (mailtrail_refresh_failures_total) and written nowhere.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <filesystem>
#include <functional>
#include <iostream>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <numeric>
#include <optional>
#include <pqxx/pqxx>
#include <string>
#include <vector>

#include "app/runtime.hpp"
#include "config/config.hpp"
#include "pg_test_database.hpp"
#include "store/database.hpp"
#include "store/migrator.hpp"
#include "support/fake_postgrid.hpp"

namespace mailtrail::sync {
namespace {

using postgrid::testing::FakePostGrid;
using postgrid::testing::FakeRequest;
using postgrid::testing::FakeResponse;

nlohmann::json Letter(const std::string& id, const std::string& status,
                      const std::string& updated_at) {
  return {{"id", id},
          {"object", "letter"},
          {"live", false},
          {"status", status},
          {"createdAt", "2026-11-20T10:00:00.000Z"},
          {"updatedAt", updated_at}};
}

class SchedulerPgTest : public ::testing::Test {
 protected:
  config::Config MakeConfig(const std::string& base_url) const {
    const std::string yaml = "postgrid:\n  base_url: " + base_url +
                             "\n  api_key: test_sk_scheduler\n  order_types: [letters]\n"
                             "  requests_per_second: 1000\n  timeout: 2s\n"
                             "database:\n  url: " +
                             database_.dsn() + "\n";
    return config::LoadConfigFromString(
        yaml, "scheduler_pgtest.yaml",
        [](const char*) -> std::optional<std::string> { return std::nullopt; });
  }

  void SetUp() override {
    pqxx::connection connection(database_.dsn());
    store::Migrate(connection, std::filesystem::path(MAILTRAIL_SOURCE_DIR) / "migrations");
  }

  /// Runs statements that return nothing, in one committed transaction.
  void Execute(const std::vector<std::string>& statements) {
    pqxx::connection connection(database_.dsn());
    pqxx::work work(connection);
    for (const auto& sql : statements) work.exec0(sql);
    work.commit();
  }

  std::string Query(const std::string& sql) {
    pqxx::connection connection(database_.dsn());
    pqxx::work work(connection);
    const auto row = work.exec1(sql);
    return row[0].is_null() ? "NULL" : row[0].c_str();
  }

  /// Runs `runtime`'s loop in 100 ms slices, for up to 10 s, until `done()`; returns `done()`.
  static bool RunUntil(app::Runtime& runtime, const std::function<bool()>& done) {
    for (int i = 0; i < 100 && !done(); ++i) {
      runtime.io.restart();
      runtime.io.run_for(std::chrono::milliseconds(100));
    }
    return done();
  }

  testing::TestDatabase database_;
};

TEST_F(SchedulerPgTest, PollingRecordsTheFetchedOrdersAndCountsEveryFailedRefresh) {
  const std::string list_path = std::string(FakePostGrid::kPrefix) + "/letters";
  // Discovery sees three ready letters; the polls that follow find one printing, one failing
  // with 500 on every attempt, one answering a status that is not a string.
  bool polling = false;
  FakePostGrid api([&](const FakeRequest& request) {
    FakeResponse response;
    if (request.target.rfind(list_path + "?", 0) == 0) {
      nlohmann::json data = nlohmann::json::array();
      for (const char* id : {"letter_c", "letter_b", "letter_a"}) {
        data.push_back(Letter(id, "ready", "2026-11-20T10:00:00.000Z"));
      }
      response.body = nlohmann::json{
          {"object", "list"},
          {"limit", 100},
          {"skip", 0},
          {"totalCount", 3},
          {"data", data}}.dump();
    } else if (polling && request.target == list_path + "/letter_a") {
      response.body = Letter("letter_a", "printing", "2026-11-21T10:00:00.000Z").dump();
    } else if (polling && request.target == list_path + "/letter_b") {
      response.status = 500;
      response.body = R"({"object":"error","error":{"type":"internal_error","message":"x"}})";
    } else if (polling && request.target == list_path + "/letter_c") {
      auto order = Letter("letter_c", "printing", "2026-11-21T10:00:00.000Z");
      order["status"] = 42;
      response.body = order.dump();
    } else {
      response.status = 404;
      response.body = R"({"object":"error","error":{"type":"not_found_error","message":"no"}})";
    }
    return response;
  });

  app::Runtime runtime(MakeConfig(api.base_url()));
  const PassResult discovered =
      app::RunToCompletion(runtime.io, runtime.scheduler->Discover(/*full_scan=*/true));
  ASSERT_EQ(discovered.new_orders, 3u);
  ASSERT_EQ(runtime.syncer->counters().refresh_failures.load(), 0u);

  // Make all three due now, as an hour passing would.
  Execute({"UPDATE mailtrail.orders SET next_check_at = now() - interval '1 second'"});
  polling = true;
  const PassResult polled = app::RunToCompletion(runtime.io, runtime.scheduler->RefreshDue());

  EXPECT_EQ(polled.failures, 2u);
  EXPECT_EQ(runtime.syncer->counters().refresh_failures.load(), 2u);
  EXPECT_EQ(runtime.syncer->counters().mapping_errors.load(), 1u);
  EXPECT_EQ(Query("SELECT status FROM mailtrail.orders WHERE id = 'letter_a'"), "printing");
  EXPECT_EQ(Query("SELECT string_agg(coalesce(old_value, 'NULL') || '->' || new_value || '/' || "
                  "source, ', ' ORDER BY id) FROM mailtrail.order_changes "
                  "WHERE order_id = 'letter_a' AND field = 'status'"),
            "NULL->ready/discovery, ready->printing/poll");
  // The two that failed keep what discovery recorded: nothing half-written, nothing lost.
  EXPECT_EQ(Query("SELECT count(*) FROM mailtrail.order_changes WHERE order_id IN "
                  "('letter_b', 'letter_c') AND field = 'status'"),
            "2");
  EXPECT_EQ(Query("SELECT string_agg(status, ',' ORDER BY id) FROM mailtrail.orders "
                  "WHERE id IN ('letter_b', 'letter_c')"),
            "ready,ready");
}

TEST_F(SchedulerPgTest, AListWalkForPollsRecordsNewOrdersAsDiscoveredAndChangedOnesAsPolled) {
  FakePostGrid api([](const FakeRequest&) { return FakeResponse{}; });
  app::Runtime runtime(MakeConfig(api.base_url()));
  nlohmann::json first = nlohmann::json::array();
  first.push_back(Letter("letter_known", "ready", "2026-11-20T10:00:00.000Z"));
  const PageOutcome seeded = app::RunToCompletion(
      runtime.io, runtime.syncer->ApplyPage(first, store::Source::kDiscovery, ""));
  ASSERT_EQ(seeded.new_orders, 1u);

  // The cheaper path's walk (source poll) meets the known order changed and a new one.
  nlohmann::json page = nlohmann::json::array();
  page.push_back(Letter("letter_new", "ready", "2026-11-21T09:00:00.000Z"));
  page.push_back(Letter("letter_known", "printing", "2026-11-21T10:00:00.000Z"));
  const PageOutcome walked =
      app::RunToCompletion(runtime.io, runtime.syncer->ApplyPage(page, store::Source::kPoll, ""));
  EXPECT_EQ(walked.new_orders, 1u);
  EXPECT_EQ(walked.changed, 1u);
  EXPECT_EQ(Query("SELECT string_agg(order_id || ':' || coalesce(old_value, 'NULL') || '->' || "
                  "new_value || '/' || source, ', ' ORDER BY order_id, id) "
                  "FROM mailtrail.order_changes WHERE field = 'status'"),
            "letter_known:NULL->ready/discovery, letter_known:ready->printing/poll, "
            "letter_new:NULL->ready/discovery");
  const auto& changes = runtime.syncer->counters().changes;
  const auto status = static_cast<std::size_t>(domain::Field::kStatus);
  EXPECT_EQ(changes[status][static_cast<std::size_t>(store::Source::kDiscovery)].load(), 2u);
  EXPECT_EQ(changes[status][static_cast<std::size_t>(store::Source::kPoll)].load(), 1u);
}

// A polled order's raw column is the body PostGrid sent, not the parsed object written out again
// (jsonb keeps a number's digits as sent: 1.10 stays 1.10, which a re-serialization makes 1.1).
// A later poll that finds the same updatedAt and nothing to record writes only the check: PostGrid
// moves updatedAt on every change (postgrid-api.md), so the stored row is that object already.
TEST_F(SchedulerPgTest, PollsKeepPostGridsTextAsRawAndAnUnmovedOrderOnlyItsCheck) {
  const std::string list_path = std::string(FakePostGrid::kPrefix) + "/letters";
  std::atomic<int> poll{0};
  FakePostGrid api([&](const FakeRequest& request) {
    FakeResponse response;
    if (request.target.rfind(list_path + "?", 0) == 0) {
      response.body =
          nlohmann::json{{"object", "list"},
                         {"limit", 100},
                         {"skip", 0},
                         {"totalCount", 1},
                         {"data", {Letter("letter_a", "ready", "2026-11-20T10:00:00.000Z")}}}
              .dump();
    } else if (request.target == list_path + "/letter_a" && poll.load() == 1) {
      response.body = R"({ "id": "letter_a", "object": "letter", "live": false,
          "status": "printing", "price": 1.10, "createdAt": "2026-11-20T10:00:00.000Z",
          "updatedAt": "2026-11-21T10:00:00.000Z" })";
    } else if (request.target == list_path + "/letter_a" && poll.load() == 2) {
      response.body = R"({"id":"letter_a","object":"letter","live":false,"status":"printing",
          "price":2.5,"createdAt":"2026-11-20T10:00:00.000Z",
          "updatedAt":"2026-11-21T10:00:00.000Z"})";
    } else {
      response.status = 404;
      response.body = R"({"object":"error","error":{"type":"not_found_error","message":"no"}})";
    }
    return response;
  });
  app::Runtime runtime(MakeConfig(api.base_url()));
  ASSERT_EQ(
      app::RunToCompletion(runtime.io, runtime.scheduler->Discover(/*full_scan=*/true)).new_orders,
      1u);
  const auto poll_now = [&](int number) {
    Execute(
        {"UPDATE mailtrail.orders SET next_check_at = now() - interval '1 second', "
         "last_checked_at = '2000-01-01Z'"});
    poll = number;
    return app::RunToCompletion(runtime.io, runtime.scheduler->RefreshDue());
  };

  const PassResult first = poll_now(1);
  EXPECT_EQ(first.refreshed, 1u);
  EXPECT_EQ(first.failures, 0u);
  EXPECT_EQ(Query("SELECT raw->>'price' FROM mailtrail.orders"), "1.10");
  EXPECT_EQ(Query("SELECT status FROM mailtrail.orders"), "printing");

  const PassResult second = poll_now(2);
  EXPECT_EQ(second.refreshed, 1u);
  EXPECT_EQ(second.failures, 0u);
  EXPECT_EQ(Query("SELECT raw->>'price' FROM mailtrail.orders"), "1.10");
  EXPECT_EQ(Query("SELECT last_checked_at > now() - interval '1 minute' "
                  "AND next_check_at > now() FROM mailtrail.orders"),
            "t");
  EXPECT_EQ(Query("SELECT string_agg(coalesce(old_value, 'NULL') || '->' || new_value || '/' || "
                  "source, ', ' ORDER BY id) FROM mailtrail.order_changes WHERE field = 'status'"),
            "NULL->ready/discovery, ready->printing/poll");
}

// A round of list polls plans every type's walk before it walks any, and the poll loop claims
// none of those types' due orders until their walk ends: the walk records them (its horizon is a
// whole interval), so a GET meanwhile would fetch an order twice. Here every stored letter is due
// and the list answers slowly; without the exclusion the poll loop GETs most of them while the
// walk is under way.
TEST_F(SchedulerPgTest, ARoundOfListPollsLeavesItsTypesDueOrdersToTheWalk) {
  constexpr int kLetters = 300;
  const std::string list_path = std::string(FakePostGrid::kPrefix) + "/letters";
  const std::string updated_at = "2026-11-20T10:00:00.000Z";
  std::vector<nlohmann::json> letters;
  for (int i = 0; i < kLetters; ++i) {
    letters.push_back(Letter("letter_" + std::to_string(1000 + i), "ready", updated_at));
  }
  std::atomic<int> retrievals{0};
  std::atomic<int> list_pages{0};
  FakePostGrid api([&](const FakeRequest& request) {
    FakeResponse response;
    const std::string& target = request.target;
    if (target.rfind(list_path + "?", 0) == 0) {
      const auto number_after = [&target](const std::string& key) {
        const auto at = target.find(key);
        return at == std::string::npos ? 0 : std::stoi(target.substr(at + key.size()));
      };
      const int skip = number_after("skip=");
      const int limit = number_after("limit=");
      nlohmann::json data = nlohmann::json::array();
      for (int i = skip; i < std::min(kLetters, skip + limit); ++i) data.push_back(letters[i]);
      response.body = nlohmann::json{
          {"object", "list"},
          {"limit", limit},
          {"skip", skip},
          {"totalCount", kLetters},
          {"data", data}}.dump();
      response.delay = std::chrono::milliseconds(400);
      ++list_pages;
    } else if (target.rfind(list_path + "/", 0) == 0) {
      ++retrievals;
      response.body = Letter(target.substr(target.rfind('/') + 1), "ready", updated_at).dump();
      response.delay = std::chrono::milliseconds(50);
    }
    return response;
  });
  config::Config config = MakeConfig(api.base_url());
  // Two workers claim 32 orders at a time: small beside the 300 letters, so the bound below
  // tells the exclusion from its absence.
  config.postgrid.max_concurrency = 2;
  const std::size_t claim_batch = app::SchedulerOptionsFrom(config, true).claim_batch;
  {
    app::Runtime seeding(config);
    for (int first = 0; first < kLetters; first += 100) {
      nlohmann::json page = nlohmann::json::array();
      for (int i = first; i < first + 100; ++i) page.push_back(letters[i]);
      app::RunToCompletion(seeding.io,
                           seeding.syncer->ApplyPage(page, store::Source::kDiscovery, ""));
    }
  }
  // Every letter due; discovery and the full scan done just now, so the leader's first step is a
  // round of list polls.
  Execute({"UPDATE mailtrail.orders SET next_check_at = now() - interval '1 second'",
           "INSERT INTO mailtrail.sync_runs (job, last_success_at) VALUES ('full_scan', now()), "
           "('discovery', now())"});

  app::Runtime runtime(config, /*leader_jobs=*/true);
  runtime.scheduler->Start();
  runtime.io.run_for(std::chrono::seconds(3));
  runtime.scheduler->Stop();
  ASSERT_TRUE(RunUntil(runtime, [&runtime] { return runtime.scheduler->stopped(); }));

  EXPECT_GE(list_pages.load(), 3) << "the round of list polls did not walk the letters";
  EXPECT_EQ(Query("SELECT count(*) FROM mailtrail.orders WHERE next_check_at <= now()"), "0")
      << "the walk must have recorded every letter as checked";
  // The poll loop may claim before the leader has planned the round: allow two such claims.
  // Without the exclusion it fetches ~150-300 while the three slow pages are walked.
  std::cout << "[ measured ] " << retrievals.load() << " retrievals, " << list_pages.load()
            << " list pages, claims of " << claim_batch << "\n";
  ASSERT_LE(claim_batch, 32u);
  EXPECT_LE(retrievals.load(), static_cast<int>(2 * claim_batch))
      << "the poll loop fetched letters the walk was recording";
}

// A burst of webhooks: the orders queued when a worker wakes are fetched concurrently and those
// fetched are written together (a transaction per order fell seconds behind a burst of a thousand
// deliveries), and each order keeps the webhook path's promises: the deliveries of the orders
// recorded are reported processed, with source webhook; an order that could not be fetched or
// read is due for polling at once, and its deliveries stay unprocessed, so nothing announced is
// lost. A GET retried for seconds holds back no other order's write.
TEST_F(SchedulerPgTest, ABurstOfWebhooksIsFetchedTogetherAndRecordedInAFewTransactions) {
  const std::string list_path = std::string(FakePostGrid::kPrefix) + "/letters";
  // 40 letters that moved on, then letter_d (500 on every attempt) and letter_e (unreadable).
  std::vector<std::string> ids;
  for (int i = 10; i < 50; ++i) ids.push_back("letter_" + std::to_string(i));
  const std::size_t moved = ids.size();
  ids.push_back("letter_d");
  ids.push_back("letter_e");
  std::mutex gets_mutex;
  std::map<std::string, int> gets;  // GETs by order id
  const auto gets_of = [&](const std::string& id) {
    std::lock_guard lock(gets_mutex);
    return gets[id];
  };
  FakePostGrid api([&](const FakeRequest& request) {
    FakeResponse response;
    if (request.target.rfind(list_path + "/", 0) == 0) {
      std::lock_guard lock(gets_mutex);
      ++gets[request.target.substr(list_path.size() + 1)];
    }
    if (request.target == list_path + "/letter_d") {
      response.status = 500;
      response.body = R"({"object":"error","error":{"type":"internal_error","message":"x"}})";
    } else if (request.target == list_path + "/letter_e") {
      auto order = Letter("letter_e", "printing", "2026-11-21T10:00:00.000Z");
      order["status"] = 42;
      response.body = order.dump();
    } else if (request.target.rfind(list_path + "/", 0) == 0) {
      const std::string id = request.target.substr(list_path.size() + 1);
      response.body = Letter(id, "printing", "2026-11-21T10:00:00.000Z").dump();
    } else {
      response.status = 404;
      response.body = R"({"object":"error","error":{"type":"not_found_error","message":"no"}})";
    }
    return response;
  });
  app::Runtime runtime(MakeConfig(api.base_url()));
  nlohmann::json known = nlohmann::json::array();
  for (const auto& id : ids) known.push_back(Letter(id, "ready", "2026-11-20T10:00:00.000Z"));
  ASSERT_EQ(app::RunToCompletion(runtime.io,
                                 runtime.syncer->ApplyPage(known, store::Source::kDiscovery, ""))
                .new_orders,
            ids.size());

  std::vector<std::int64_t> processed;
  runtime.scheduler->SetProcessedCallback([&processed](std::vector<std::int64_t> delivered) {
    processed.insert(processed.end(), delivered.begin(), delivered.end());
  });
  runtime.scheduler->Start();
  std::int64_t delivery = 0;
  for (const auto& id : ids)
    runtime.scheduler->Trigger({domain::OrderType::kLetter, id, ""}, ++delivery);
  runtime.scheduler->Trigger({domain::OrderType::kLetter, "letter_10", ""}, ++delivery);
  // letter_d fails three attempts (about 1.4 s of backoff) for its webhook, then as many for the
  // poll that picks it up; letter_e is read, refused, and polled again.
  RunUntil(runtime, [&] {
    return processed.size() >= moved + 1 && gets_of("letter_d") >= 6 && gets_of("letter_e") >= 2;
  });
  runtime.scheduler->Stop();
  ASSERT_TRUE(RunUntil(runtime, [&runtime] { return runtime.scheduler->stopped(); }));

  std::sort(processed.begin(), processed.end());
  std::vector<std::int64_t> want(moved);
  std::iota(want.begin(), want.end(), 1);
  want.push_back(delivery);  // letter_10's second
  EXPECT_EQ(processed, want);
  EXPECT_EQ(Query("SELECT count(*) FROM mailtrail.order_changes WHERE field = 'status' AND "
                  "old_value = 'ready' AND new_value = 'printing' AND source = 'webhook'"),
            std::to_string(moved));
  // Written as they were fetched, several per transaction (one per order before): with eight
  // GETs at a time, each write takes what arrived during the one before.
  const int transactions = std::stoi(
      Query("SELECT count(DISTINCT xmin::text) FROM mailtrail.orders WHERE status = 'printing'"));
  std::cout << "[ measured ] " << moved << " orders written in " << transactions
            << " transactions\n";
  EXPECT_LE(transactions, static_cast<int>(moved / 2));
  // Fetched once each: the webhook's GET was the refresh.
  for (std::size_t i = 0; i < moved; ++i) EXPECT_EQ(gets_of(ids[i]), 1) << ids[i];
  // Due at once (their next check was an hour away): the poll loop fetched them again.
  EXPECT_GE(gets_of("letter_d"), 6);
  EXPECT_GE(gets_of("letter_e"), 2);
  EXPECT_EQ(Query("SELECT string_agg(id || ':' || status, ', ' ORDER BY id) "
                  "FROM mailtrail.orders WHERE id IN ('letter_d', 'letter_e')"),
            "letter_d:ready, letter_e:ready");
  EXPECT_GE(runtime.syncer->counters().refresh_failures.load(), 2u);
  EXPECT_GE(runtime.syncer->counters().mapping_errors.load(), 1u);
  EXPECT_EQ(runtime.scheduler->state().webhook_refreshes, moved);
}

}  // namespace
}  // namespace mailtrail::sync
