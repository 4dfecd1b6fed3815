// Webhooks end to end (issue 7): the simulator's real deliveries in both formats refresh orders,
// every forgery is refused, recorded and changes nothing, a database outage answers 503 and the
// simulator's retry lands once the database is back; a live /metrics scrape passes promtool.
#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <pqxx/pqxx>
#include <set>
#include <sstream>

#include "e2e_world.hpp"
#include "mailtrail_process.hpp"
#include "pg_test_database.hpp"
#include "private_postgres.hpp"
#include "sim_process.hpp"

namespace mailtrail::e2e {
namespace {

using nlohmann::json;
using sim::testing::SimProcess;

constexpr const char* kLiveKey = "live_sk_sim";
constexpr const char* kJwtSecret = "whsec_webhook_e2e_jwt_0123456789";
constexpr const char* kJsonSecret = "whsec_webhook_e2e_json_0123456789";
constexpr const char* kPath = "/webhooks/postgrid";

/// Runs `command` with `input` on its stdin; returns its exit status and what it printed.
std::pair<int, std::string> Pipe(const std::string& command, const std::string& input,
                                 const TempDir& dir) {
  const auto in = dir.Write("pipe.in", input);
  const auto out = dir.path() / "pipe.out";
  const int status =
      std::system((command + " < " + in.string() + " > " + out.string() + " 2>&1").c_str());
  std::ifstream file(out);
  std::ostringstream text;
  text << file.rdbuf();
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, text.str()};
}

class WebhookE2eTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ::unsetenv("MAILTRAIL_POSTGRID_API_KEY");
    ::unsetenv("MAILTRAIL_DATABASE_URL");
    ::unsetenv("MAILTRAIL_WEBHOOK_SECRETS");
  }

  /// Webhooks are the only trigger here: polling, discovery and full scans are an hour apart
  /// (the first full scan at start-up records the world).
  MailtrailConfig WebhookOnlyConfig(const SimProcess& sim, const std::string& dsn) {
    MailtrailConfig config;
    config.api_url = sim.api_url();
    config.api_key = kLiveKey;
    config.database_url = dsn;
    config.interval = "1h";
    config.carrier_interval = "1h";
    config.discovery_interval = "1h";
    config.full_scan_interval = "1h";
    config.webhook_port = webhook_port_;
    config.metrics_port = metrics_port_;
    config.secrets = {kJwtSecret, kJsonSecret};
    return config;
  }

  std::unique_ptr<DaemonProcess> Start(const MailtrailConfig& config) {
    const auto path = dir_.Write("mailtrail.yaml", config.Yaml());
    return std::make_unique<DaemonProcess>(
        std::vector<std::string>{"run", "--config", path.string()}, dir_.path() / "daemon.log");
  }

  std::string webhook_url() const {
    return "http://127.0.0.1:" + std::to_string(webhook_port_) + kPath;
  }

  std::uint16_t webhook_port_ = FreePort();
  std::uint16_t metrics_port_ = FreePort();
  TempDir dir_;
};

// The simulator delivers every event twice, once per format (JWT signed with one secret, JSON
// with the other: rotation). Orders are stepped one planned step at a time, so each refresh
// sees exactly one true change and the history can be compared transition by transition.
TEST_F(WebhookE2eTest, GenuineDeliveriesInBothFormatsRecordEveryChange) {
  mailtrail::testing::TestDatabase database;
  SimProcess sim({"--orders",
                  "60",
                  "--seed",
                  "515",
                  "--paused",
                  "--history-days",
                  "0",
                  "--live-fraction",
                  "1",
                  "--start",
                  "2026-03-10T15:00:00.000Z",
                  "--unknown-enum-rate",
                  "0.1",
                  "--webhook-url",
                  webhook_url(),
                  "--webhook-secret",
                  kJwtSecret,
                  "--webhook-format",
                  "jwt",
                  "--webhook-url",
                  webhook_url(),
                  "--webhook-secret",
                  kJsonSecret,
                  "--webhook-format",
                  "json"});
  const auto world = SimOrders(sim, true);
  auto daemon = Start(WebhookOnlyConfig(sim, database.dsn()));
  ASSERT_TRUE(WaitForOrderCount(database.dsn(), world.size(), 60s)) << daemon->Log();
  // Start-up work (the full scan, a list poll) done: from here on only webhooks refresh.
  ASSERT_TRUE(WaitForApiQuiet(sim, 1500ms, 30s)) << daemon->Log();
  const long first_seen = Count(database.dsn(), "SELECT count(*) FROM mailtrail.order_changes");
  const long last_discovery_row =
      Count(database.dsn(), "SELECT coalesce(max(id), 0) FROM mailtrail.order_changes");

  std::set<std::string> active;
  for (const auto& [id, order] : world) active.insert(id);
  std::size_t steps = 0;
  for (int round = 0; round < 30 && !active.empty(); ++round) {
    for (auto it = active.begin(); it != active.end();) {
      const auto result = sim.Post("/__sim/orders/" + *it + "/step");
      if (result.status == 422) {
        it = active.erase(it);
        continue;
      }
      ASSERT_EQ(result.status, 200) << result.body;
      ++steps;
      ++it;
    }
    // Each step's webhook must bring the database to the simulator's state.
    const auto now = SimOrders(sim, true);
    std::vector<std::string> diverging;
    ASSERT_TRUE(WaitUntil(
        [&] {
          diverging = Diverging(database.dsn(), now);
          return diverging.empty();
        },
        30s))
        << "round " << round << ": " << diverging.size() << " orders differ, e.g. " << diverging[0]
        << "\n"
        << daemon->Log();
  }
  ASSERT_TRUE(active.empty()) << "some lifecycles did not finish in 30 steps";
  ASSERT_GT(steps, world.size() * 3);

  // Every delivery the simulator made was answered 200 and recorded verified and processed.
  std::size_t invocations = 0;
  std::map<std::string, std::size_t> by_format;
  const json targets = GetJson(sim, "/__sim/webhook-targets");  // named: must outlive the loop
  for (const auto& target : targets["data"]) {
    const auto list =
        GetJson(sim, "/__sim/webhook-targets/" + target["id"].get<std::string>() + "/invocations");
    for (const auto& invocation : list["data"]) {
      EXPECT_EQ(invocation["statusCode"], 200) << invocation.dump();
      ++invocations;
      ++by_format[target["payloadFormat"].get<std::string>()];
    }
  }
  EXPECT_EQ(by_format["jwt"], steps);
  EXPECT_EQ(by_format["json"], steps);
  ASSERT_TRUE(WaitUntil(
      [&] {
        return Count(database.dsn(),
                     "SELECT count(*) FROM mailtrail.webhook_deliveries WHERE verified AND "
                     "processed_at IS NOT NULL") == static_cast<long>(invocations);
      },
      30s))
      << Count(database.dsn(),
               "SELECT count(*) FROM mailtrail.webhook_deliveries WHERE processed_at IS NULL")
      << " of " << invocations << " deliveries not processed";
  EXPECT_EQ(Count(database.dsn(), "SELECT count(*) FROM mailtrail.webhook_deliveries"),
            static_cast<long>(invocations));
  EXPECT_EQ(Count(database.dsn(),
                  "SELECT count(DISTINCT payload_format) FROM mailtrail.webhook_deliveries WHERE "
                  "order_id IS NOT NULL AND event_type LIKE '%.updated'"),
            2);

  // The history: each true transition exactly once, every change after the start-up scan
  // written by a webhook-triggered refresh.
  const std::string metrics = LocalGet(metrics_port_, "/metrics").body;
  EXPECT_EQ(daemon->Terminate(10s), 0) << daemon->Log();
  const std::string daemon_log = daemon->Log();
  pqxx::connection connection(database.dsn());
  pqxx::read_transaction tx(connection);
  std::size_t transitions = 0;
  for (const auto& [id, order] : world) {
    const json truth = GetJson(sim, "/__sim/orders/" + id + "/truth");
    const auto want = TruthTransitions(truth);
    for (const auto& [field, list] : want) transitions += list.size();
    EXPECT_EQ(StoredTransitions(tx, id), want) << "order_changes of " << id;
    EXPECT_EQ(StoredEvents(tx, id), TruthEvents(truth)) << "carrier events of " << id;
  }
  EXPECT_GT(static_cast<long>(transitions), first_seen + static_cast<long>(world.size()));
  EXPECT_EQ(tx.exec_params("SELECT count(*) FROM mailtrail.order_changes WHERE id > $1 AND "
                           "source <> 'webhook'",
                           last_discovery_row)[0][0]
                .as<long>(),
            0)
      << [&] {
           std::string text = "sources of later changes:";
           for (const auto& row : tx.exec_params(
                    "SELECT source, count(*), min(observed_at)::text, max(observed_at)::text "
                    "FROM mailtrail.order_changes WHERE id > $1 GROUP BY 1",
                    last_discovery_row)) {
             text += std::string(" ") + row[0].c_str() + "=" + row[1].c_str() + " (" +
                     row[2].c_str() + " .. " + row[3].c_str() + ")";
           }
           return text + "\n" + daemon_log;
         }();
  EXPECT_GT(MetricSum(metrics, "mailtrail_webhook_deliveries_total", {"result=\"accepted\""}), 0)
      << metrics;
  EXPECT_GT(MetricSum(metrics, "mailtrail_changes_total", {"source=\"webhook\""}), 0) << metrics;
  std::cout << "[ measured ] " << steps << " steps, " << invocations << " deliveries, "
            << transitions << " transitions recorded once each\n";
}

// Every forgery the simulator can make is answered 4xx, recorded as refused with its reason, and
// triggers nothing: the order it names stays stale until a genuine delivery arrives.
TEST_F(WebhookE2eTest, ForgedDeliveriesAreRefusedRecordedAndChangeNothing) {
  mailtrail::testing::TestDatabase database;
  SimProcess sim({"--orders", "30", "--seed", "616", "--paused", "--history-days", "0",
                  "--live-fraction", "1", "--start", "2026-03-10T15:00:00.000Z"});
  const auto world = SimOrders(sim, true, "letters");
  ASSERT_FALSE(world.empty());
  const std::string id = world.begin()->first;
  MailtrailConfig config = WebhookOnlyConfig(sim, database.dsn());
  config.secrets = {kJwtSecret};
  auto daemon = Start(config);
  ASSERT_TRUE(WaitUntil(
      [&] {
        return Count(database.dsn(),
                     "SELECT count(*) FROM mailtrail.orders WHERE id = '" + id + "'") == 1 &&
               LocalGet(metrics_port_, "/readyz").status == 200;
      },
      60s))
      << daemon->Log();
  // Wait out the start-up scan, then make the order stale (no target: nothing is delivered).
  ASSERT_TRUE(WaitUntil(
      [&] {
        return Count(database.dsn(),
                     "SELECT count(*) FROM mailtrail.sync_runs WHERE job = "
                     "'full_scan' AND last_success_at IS NOT NULL") == 1;
      },
      60s));
  ASSERT_TRUE(WaitForApiQuiet(sim, 1500ms, 30s)) << daemon->Log();
  const json stepped = PostJson(sim, "/__sim/orders/" + id + "/step");
  ASSERT_NE(stepped["status"], "ready");
  const long changes = Count(database.dsn(), "SELECT count(*) FROM mailtrail.order_changes");
  ASSERT_EQ(sim.Delete("/__sim/stats").status, 200);

  struct Forgery {
    std::string kind, format;
  };
  std::vector<Forgery> forgeries;
  for (const std::string kind : {"wrong_secret", "alg_none", "alg_rs256", "alg_hs512", "expired",
                                 "future", "modified_body", "truncated_token"}) {
    forgeries.push_back({kind, "jwt"});
  }
  for (const std::string kind : {"wrong_secret", "expired", "future", "modified_body",
                                 "truncated_token", "missing_header", "malformed_header"}) {
    forgeries.push_back({kind, "json"});
  }
  for (const auto& forgery : forgeries) {
    const json sent = PostJson(sim, "/__sim/webhooks/forge",
                               {{"url", webhook_url()},
                                {"secret", kJwtSecret},
                                {"kind", forgery.kind},
                                {"format", forgery.format},
                                {"orderId", id},
                                {"age", "1h"}});
    const int status = sent["statusCode"].get<int>();
    EXPECT_TRUE(status >= 400 && status < 500)
        << forgery.format << " " << forgery.kind << " answered " << status << ": " << sent.dump();
  }
  const json oversize = PostJson(
      sim, "/__sim/webhooks/forge",
      {{"url", webhook_url()}, {"secret", kJwtSecret}, {"kind", "oversize"}, {"orderId", id}});
  // The listener answers 413 from the header's Content-Length and closes; a sender still writing
  // the 2.7 MB body may see that close (a broken pipe) before it reads the 413. Either way the
  // body was refused, and below nothing of it is recorded or applied.
  const int oversize_status = oversize["statusCode"].get<int>();
  const std::string oversize_error = oversize.value("error", "");
  EXPECT_TRUE(oversize_status == 413 ||
              (oversize_status == 0 && (oversize_error.find("Broken pipe") != std::string::npos ||
                                        oversize_error.find("reset") != std::string::npos)))
      << oversize.dump();

  // Recorded, refused, with a reason; nothing processed, nothing fetched, nothing changed.
  std::this_thread::sleep_for(1s);
  pqxx::connection connection(database.dsn());
  {
    pqxx::read_transaction tx(connection);
    const auto rows = tx.exec(
        "SELECT verified, rejection_reason, processed_at IS NOT NULL FROM "
        "mailtrail.webhook_deliveries ORDER BY id");
    EXPECT_EQ(rows.size(), forgeries.size()) << "every forgery (not the oversize one, whose body "
                                                "is never read) is recorded";
    std::set<std::string> reasons;
    for (const auto& row : rows) {
      EXPECT_FALSE(row[0].as<bool>());
      EXPECT_FALSE(row[1].is_null());
      EXPECT_FALSE(row[2].as<bool>());
      if (!row[1].is_null()) reasons.insert(row[1].c_str());
    }
    EXPECT_GE(reasons.size(), 4u) << "refusals should say why, not one catch-all reason";
    EXPECT_EQ(tx.exec("SELECT count(*) FROM mailtrail.order_changes")[0][0].as<long>(), changes);
    EXPECT_EQ(tx.exec_params("SELECT status FROM mailtrail.orders WHERE id = $1", id)[0][0]
                  .as<std::string>(),
              "ready");
  }
  EXPECT_EQ(GetJson(sim, "/__sim/stats")["total"], 0) << "a forgery must not trigger a fetch";

  // The same delivery, genuine, refreshes the order; its byte-for-byte replay triggers nothing.
  const json valid = PostJson(sim, "/__sim/webhooks/forge",
                              {{"url", webhook_url()},
                               {"secret", kJwtSecret},
                               {"kind", "valid"},
                               {"format", "jwt"},
                               {"orderId", id}});
  ASSERT_EQ(valid["statusCode"], 200) << valid.dump();
  ASSERT_TRUE(WaitUntil(
      [&] {
        return Count(database.dsn(), "SELECT count(*) FROM mailtrail.orders WHERE id = '" + id +
                                         "' AND status = '" + stepped["status"].get<std::string>() +
                                         "'") == 1;
      },
      10s))
      << daemon->Log();
  ASSERT_TRUE(WaitUntil(
      [&] {
        return Count(database.dsn(),
                     "SELECT count(*) FROM mailtrail.webhook_deliveries WHERE verified AND "
                     "processed_at IS NOT NULL") == 1;
      },
      10s));
  const long fetches = GetJson(sim, "/__sim/stats")["total"].get<long>();
  EXPECT_EQ(fetches, 1);
  sim::testing::Headers headers;
  for (const auto& [name, value] : valid["headers"].items()) {
    headers.emplace_back(name, value.get<std::string>());
  }
  const auto replay = sim::testing::HttpRequest("127.0.0.1", webhook_port_, "POST", kPath,
                                                valid["body"].get<std::string>(), headers);
  EXPECT_TRUE(replay.status == 200 || replay.status == 409) << replay.status << replay.body;
  std::this_thread::sleep_for(1s);
  EXPECT_EQ(GetJson(sim, "/__sim/stats")["total"].get<long>(), fetches)
      << "a replay must trigger nothing";
  EXPECT_EQ(Count(database.dsn(),
                  "SELECT count(*) FROM mailtrail.order_changes WHERE source = 'webhook'"),
            Count(database.dsn(), "SELECT count(*) FROM mailtrail.order_changes") - changes);
  EXPECT_EQ(daemon->Terminate(10s), 0) << daemon->Log();
}

// The database goes away (on the test's own server): deliveries are answered 503 and /readyz
// says 503; when it is back, /readyz is 200 and the simulator's retry an hour later (its clock
// driven forward) is accepted and the change lands.
TEST_F(WebhookE2eTest, DatabaseOutageAnswers503AndTheRetryLands) {
  PrivatePostgres postgres;
  SimProcess sim({"--orders", "20", "--seed", "717", "--paused", "--history-days", "0",
                  "--live-fraction", "1", "--start", "2026-03-10T15:00:00.000Z", "--webhook-url",
                  webhook_url(), "--webhook-secret", kJwtSecret, "--webhook-format", "jwt"});
  const auto letters = SimOrders(sim, true, "letters");
  ASSERT_FALSE(letters.empty());
  const std::string id = letters.begin()->first;
  auto daemon = Start(WebhookOnlyConfig(sim, postgres.dsn()));
  ASSERT_TRUE(WaitUntil(
      [&] {
        return Count(postgres.dsn(),
                     "SELECT count(*) FROM mailtrail.orders WHERE id = '" + id + "'") == 1 &&
               LocalGet(metrics_port_, "/readyz").status == 200;
      },
      60s))
      << daemon->Log();
  ASSERT_TRUE(WaitForApiQuiet(sim, 1500ms, 30s)) << daemon->Log();

  postgres.Stop();
  const json stepped = PostJson(sim, "/__sim/orders/" + id + "/step");
  const std::string new_status = stepped["status"].get<std::string>();
  ASSERT_NE(new_status, "ready");
  const std::string target =
      GetJson(sim, "/__sim/webhook-targets")["data"][0]["id"].get<std::string>();
  json invocations;
  ASSERT_TRUE(WaitUntil(
      [&] {
        invocations = GetJson(sim, "/__sim/webhook-targets/" + target + "/invocations")["data"];
        return !invocations.empty();
      },
      20s));
  EXPECT_EQ(invocations[0]["statusCode"], 503) << invocations.dump();
  ASSERT_TRUE(WaitUntil([&] { return LocalGet(metrics_port_, "/readyz").status == 503; }, 30s));
  EXPECT_EQ(LocalGet(metrics_port_, "/healthz").status, 200);
  EXPECT_TRUE(daemon->running()) << "the daemon must wait for the database, not exit";

  postgres.Start();
  const auto restarted = std::chrono::steady_clock::now();
  ASSERT_TRUE(WaitUntil([&] { return LocalGet(metrics_port_, "/readyz").status == 200; }, 60s))
      << daemon->Log();
  std::cout << "[ measured ] /readyz back to 200 "
            << std::chrono::duration_cast<std::chrono::milliseconds>(
                   std::chrono::steady_clock::now() - restarted)
                   .count()
            << " ms after the database came back\n";
  EXPECT_EQ(Count(postgres.dsn(), "SELECT count(*) FROM mailtrail.orders WHERE id = '" + id +
                                      "' AND status = 'ready'"),
            1)
      << "nothing else may have refreshed the order (polls are an hour apart)";

  // PostGrid retries an hour later.
  PostJson(sim, "/__sim/advance", {{"duration", "61m"}});
  ASSERT_TRUE(WaitUntil(
      [&] {
        return Count(postgres.dsn(),
                     "SELECT count(*) FROM mailtrail.order_changes WHERE "
                     "order_id = '" +
                         id + "' AND new_value = '" + new_status + "' AND source = 'webhook'") == 1;
      },
      30s))
      << daemon->Log();
  invocations = GetJson(sim, "/__sim/webhook-targets/" + target + "/invocations")["data"];
  ASSERT_GE(invocations.size(), 2u) << invocations.dump();
  EXPECT_EQ(invocations[invocations.size() - 1]["statusCode"], 200) << invocations.dump();
  EXPECT_EQ(invocations[invocations.size() - 1]["attempt"].get<int>(),
            invocations[0]["attempt"].get<int>() + 1)
      << "the accepted delivery is the simulator's first retry\n"
      << invocations.dump();
  ASSERT_TRUE(WaitUntil(
      [&] {
        return Count(postgres.dsn(),
                     "SELECT count(*) FROM mailtrail.webhook_deliveries WHERE verified AND "
                     "order_id = '" +
                         id + "' AND processed_at IS NOT NULL") == 1;
      },
      10s));
  const std::string metrics = LocalGet(metrics_port_, "/metrics").body;
  EXPECT_GT(MetricSum(metrics, "mailtrail_webhook_deliveries_total", {"result=\"unavailable\""}), 0)
      << metrics;
  EXPECT_GT(MetricSum(metrics, "mailtrail_database_reconnects_total"), 0) << metrics;
  EXPECT_EQ(daemon->Terminate(10s), 0) << daemon->Log();
}

// promtool (Debian package prometheus) accepts a live scrape of a daemon that has done work:
// requests, changes, webhook results, histograms.
TEST_F(WebhookE2eTest, LiveMetricsScrapePassesPromtool) {
  const std::string promtool = "/usr/bin/promtool";
  ASSERT_EQ(::access(promtool.c_str(), X_OK), 0)
      << promtool << " is missing: install the Debian package prometheus (scripts/install-deps.sh)";
  mailtrail::testing::TestDatabase database;
  SimProcess sim({"--orders", "40", "--seed", "818", "--paused", "--history-days", "3",
                  "--live-fraction", "1", "--start", "2026-03-10T15:00:00.000Z",
                  "--unknown-enum-rate", "0.2", "--webhook-url", webhook_url(), "--webhook-secret",
                  kJwtSecret, "--webhook-format", "jwt"});
  auto daemon = Start(WebhookOnlyConfig(sim, database.dsn()));
  const auto world = SimOrders(sim, true);
  ASSERT_TRUE(WaitForOrderCount(database.dsn(), world.size(), 60s)) << daemon->Log();
  for (const auto& [id, order] : world) sim.Post("/__sim/orders/" + id + "/step");
  PostJson(sim, "/__sim/webhooks/forge",
           {{"url", webhook_url()}, {"secret", kJwtSecret}, {"kind", "wrong_secret"}});
  ASSERT_TRUE(WaitUntil(
      [&] {
        return Count(database.dsn(),
                     "SELECT count(*) FROM mailtrail.order_changes WHERE "
                     "source = 'webhook'") > 0;
      },
      30s));

  std::string scrape;
  // The order gauges are refreshed on a timer: wait until they are in.
  ASSERT_TRUE(WaitUntil(
      [&] {
        scrape = LocalGet(metrics_port_, "/metrics").body;
        return MetricSum(scrape, "mailtrail_orders") > 0 &&
               MetricSum(scrape, "mailtrail_webhook_deliveries_total") > 0;
      },
      30s))
      << scrape;
  const auto [status, output] = Pipe(promtool + " check metrics", scrape, dir_);
  EXPECT_EQ(status, 0) << output << "\n" << scrape;
  for (const std::string family :
       {"mailtrail_api_requests_total", "mailtrail_changes_total", "mailtrail_orders",
        "mailtrail_orders_due", "mailtrail_freshness_lag_seconds",
        "mailtrail_last_success_timestamp_seconds", "mailtrail_webhook_deliveries_total",
        "mailtrail_database_errors_total", "mailtrail_database_reconnects_total"}) {
    EXPECT_NE(scrape.find("# TYPE " + family + " "), std::string::npos) << family << "\n" << scrape;
  }
  EXPECT_EQ(scrape.find(kJwtSecret), std::string::npos);
  EXPECT_EQ(daemon->Terminate(10s), 0) << daemon->Log();
}

// Issue 7's metrics: the API request latency histogram, the webhook-to-row latency histogram,
// 429s and retry waits, and unknown enum values seen, each with something counted.
TEST_F(WebhookE2eTest, MetricsIncludeLatencyHistogramsAndUnknownValues) {
  mailtrail::testing::TestDatabase database;
  SimProcess sim({"--orders", "30", "--seed", "919", "--paused", "--history-days", "3",
                  "--live-fraction", "1", "--unknown-enum-rate", "0.5", "--webhook-url",
                  webhook_url(), "--webhook-secret", kJwtSecret, "--webhook-format", "jwt",
                  "--fault", "429:rate=0.2,retry_after=1"});
  auto daemon = Start(WebhookOnlyConfig(sim, database.dsn()));
  const auto world = SimOrders(sim, true);
  ASSERT_TRUE(WaitForOrderCount(database.dsn(), world.size(), 60s)) << daemon->Log();
  for (const auto& [id, order] : world) sim.Post("/__sim/orders/" + id + "/step");
  ASSERT_TRUE(WaitUntil(
      [&] {
        return Count(database.dsn(),
                     "SELECT count(*) FROM mailtrail.order_changes WHERE "
                     "source = 'webhook'") > 0;
      },
      30s));
  std::this_thread::sleep_for(1s);
  const std::string scrape = LocalGet(metrics_port_, "/metrics").body;
  std::map<std::string, std::size_t> families;  // what a family name contains -> how many
  for (std::size_t at = scrape.find("# TYPE "); at != std::string::npos;
       at = scrape.find("# TYPE ", at + 1)) {
    const std::string line = scrape.substr(at, scrape.find('\n', at) - at);
    if (line.find(" histogram") != std::string::npos) ++families["histogram"];
    const std::string name = line.substr(7, line.find(' ', 7) - 7);
    for (const std::string word : {"retry", "unknown"}) {
      if (name.find(word) != std::string::npos) ++families[word];
    }
  }
  EXPECT_GE(families["histogram"], 2u) << "API request latency and webhook-to-row latency\n"
                                       << scrape;
  EXPECT_GE(families["retry"], 1u) << "429 retry waits\n" << scrape;
  EXPECT_GE(families["unknown"], 1u) << "unknown enum values seen\n" << scrape;
  // Sums of the series whose line starts with `prefix` (labels ignored).
  const auto total = [&scrape](const std::string& prefix) {
    double sum = 0;
    std::istringstream lines(scrape);
    for (std::string line; std::getline(lines, line);) {
      if (line.rfind(prefix, 0) == 0 &&
          (line[prefix.size()] == ' ' || line[prefix.size()] == '{')) {
        sum += std::stod(line.substr(line.rfind(' ') + 1));
      }
    }
    return sum;
  };
  EXPECT_GT(total("mailtrail_webhook_to_row_seconds_count"), 0) << scrape;
  EXPECT_GT(total("mailtrail_api_request_duration_seconds_count"), 0) << scrape;
  // Unknown enum values are counted in the 1000-order world (tests/e2e/sync), where they occur.
  EXPECT_GT(total("mailtrail_api_retries_total"), 0) << "the simulator answered 20 % with 429\n"
                                                     << scrape;
  EXPECT_EQ(daemon->Terminate(10s), 0) << daemon->Log();
}

}  // namespace
}  // namespace mailtrail::e2e
