// The mailtrail CLI end to end (contract.md, issue 6): every command run as a child process
// against postgrid-sim and a database of its own, its exit code, its output and what it left in
// the database, compared with the simulator's ground truth.
#include <gtest/gtest.h>

#include <cstdlib>
#include <map>
#include <nlohmann/json.hpp>
#include <pqxx/pqxx>
#include <regex>
#include <set>
#include <sstream>

#include "e2e_world.hpp"
#include "mailtrail_process.hpp"
#include "pg_test_database.hpp"
#include "sim_process.hpp"

namespace mailtrail::e2e {
namespace {

using nlohmann::json;
using sim::testing::SimProcess;

constexpr const char* kLiveKey = "live_sk_sim";
constexpr const char* kTestKey = "test_sk_sim";
constexpr const char* kWebhookSecret = "whsec_cli_e2e_0123456789abcdef";
constexpr const char* kDbPassword = "pw_cli_e2e_s3cr3t";

/// A small mid-flight world: orders created over the last four simulated days, clock paused so
/// the truth stays put while mailtrail reads it.
std::vector<std::string> SmallWorld(const std::string& orders = "240") {
  return {"--orders",
          orders,
          "--seed",
          "61127",
          "--paused",
          "--history-days",
          "4",
          "--start",
          "2026-03-10T15:00:00.000Z",
          "--live-fraction",
          "0.5"};
}

class CliE2eTest : public ::testing::Test {
 protected:
  void SetUp() override {
    // Environment overrides would change what the configs below say.
    ::unsetenv("MAILTRAIL_POSTGRID_API_KEY");
    ::unsetenv("MAILTRAIL_DATABASE_URL");
    ::unsetenv("MAILTRAIL_WEBHOOK_SECRETS");
  }

  MailtrailConfig BaseConfig(const SimProcess& sim, const std::string& key) const {
    MailtrailConfig config;
    config.api_url = sim.api_url();
    config.api_key = key;
    config.database_url = database_.dsn();
    return config;
  }

  std::string Write(const MailtrailConfig& config, const std::string& name = "mailtrail.yaml") {
    return dir_.Write(name, config.Yaml()).string();
  }

  CommandResult Mailtrail(std::vector<std::string> args, const std::string& config_path) {
    args.push_back("--config");
    args.push_back(config_path);
    return RunMailtrail(args, 120s);
  }

  long Sql(const std::string& sql) const { return Count(database_.dsn(), sql); }

  /// Every stored order's order_changes must be exactly a first observation of the truth, and
  /// its carrier events the truth's, with `source` on every row.
  void ExpectFirstObservations(const SimProcess& sim, const std::map<std::string, json>& orders,
                               const std::string& source) {
    pqxx::connection connection(database_.dsn());
    pqxx::read_transaction tx(connection);
    for (const auto& [id, order] : orders) {
      const json truth = GetJson(sim, "/__sim/orders/" + id + "/truth");
      EXPECT_EQ(StoredTransitions(tx, id), FirstObservation(truth)) << "order_changes of " << id;
      EXPECT_EQ(StoredEvents(tx, id), TruthEvents(truth)) << "carrier events of " << id;
    }
    EXPECT_EQ(tx.exec_params("SELECT count(*) FROM mailtrail.order_changes WHERE source <> $1",
                             source)[0][0]
                  .as<long>(),
              0)
        << "every first observation must be recorded with source " << source;
  }

  long DuplicateChanges() const {
    return Sql(
        "SELECT count(*) FROM (SELECT order_id, field, old_value, new_value FROM "
        "mailtrail.order_changes GROUP BY 1, 2, 3, 4 HAVING count(*) > 1) AS d");
  }

  mailtrail::testing::TestDatabase database_;
  TempDir dir_;
};

// ---- sync --once -------------------------------------------------------------------------------

TEST_F(CliE2eTest, SyncOnceRecordsEveryOrderAndASecondRunAddsNothing) {
  SimProcess sim(SmallWorld());
  const auto live = SimOrders(sim, true);
  std::set<std::string> types;
  for (const auto& [id, order] : live) types.insert(order["type"].get<std::string>());
  ASSERT_EQ(types.size(), 7u) << "the world must hold every order type";

  const auto config = Write(BaseConfig(sim, kLiveKey));
  const auto first = Mailtrail({"sync", "--once"}, config);
  ASSERT_EQ(first.exit_code, 0) << first.output;
  EXPECT_NE(first.output.find("sync: "), std::string::npos) << first.output;

  const auto diverging = Diverging(database_.dsn(), live);
  EXPECT_TRUE(diverging.empty()) << diverging.size() << " orders differ, e.g. " << diverging[0];
  EXPECT_EQ(Sql("SELECT count(*) FROM mailtrail.orders"), static_cast<long>(live.size()))
      << "only the key's mode (live) is recorded";
  EXPECT_EQ(Sql("SELECT count(DISTINCT order_type) FROM mailtrail.orders"), 7);
  ExpectFirstObservations(sim, live, "discovery");

  const long changes = Sql("SELECT count(*) FROM mailtrail.order_changes");
  const long events = Sql("SELECT count(*) FROM mailtrail.carrier_tracking_events");
  ASSERT_GT(changes, static_cast<long>(live.size()));
  ASSERT_GT(events, 0) << "the world should hold carrier tracking by now";

  const auto second = Mailtrail({"sync", "--once"}, config);
  ASSERT_EQ(second.exit_code, 0) << second.output;
  EXPECT_EQ(Sql("SELECT count(*) FROM mailtrail.order_changes"), changes) << second.output;
  EXPECT_EQ(Sql("SELECT count(*) FROM mailtrail.carrier_tracking_events"), events);
  EXPECT_EQ(DuplicateChanges(), 0);
}

TEST_F(CliE2eTest, SyncWithoutOnceIsBadUsage) {
  SimProcess sim(SmallWorld("10"));
  const auto result = Mailtrail({"sync"}, Write(BaseConfig(sim, kLiveKey)));
  EXPECT_EQ(result.exit_code, 2) << result.output;
  EXPECT_NE(result.output.find("--once"), std::string::npos) << result.output;
}

// ---- status ------------------------------------------------------------------------------------

TEST_F(CliE2eTest, StatusShowsCountsDueRequestsAndWebhooksButNoSecrets) {
  SimProcess sim(SmallWorld());
  MailtrailConfig config = BaseConfig(sim, kLiveKey);
  config.database_url = WithPassword(database_.dsn(), kDbPassword);
  config.interval = "1s";  // everything non-terminal is due a second after it was seen
  config.carrier_interval = "1s";
  config.webhook_port = FreePort();
  config.secrets = {kWebhookSecret};
  const auto path = Write(config);
  ASSERT_EQ(PostJson(sim, "/__sim/stats/reset").value("reset", false), true);
  const auto synced = Mailtrail({"sync", "--once"}, path);
  ASSERT_EQ(synced.exit_code, 0) << synced.output;
  std::this_thread::sleep_for(1500ms);

  const auto status = Mailtrail({"status"}, path);
  ASSERT_EQ(status.exit_code, 0) << status.output;
  const std::string& out = status.output;

  const long orders = Sql("SELECT count(*) FROM mailtrail.orders");
  const long terminal = Sql("SELECT count(*) FROM mailtrail.orders WHERE terminal");
  EXPECT_NE(out.find("orders: " + std::to_string(orders) + " (" + std::to_string(terminal) +
                     " terminal)"),
            std::string::npos)
      << out;
  EXPECT_NE(out.find("due now: " + std::to_string(orders - terminal)), std::string::npos)
      << "every non-terminal order is due a second after it was seen\n"
      << out;

  // One line per (type, status, terminal) with its count.
  pqxx::connection connection(database_.dsn());
  pqxx::read_transaction tx(connection);
  std::size_t groups = 0;
  for (const auto& row :
       tx.exec("SELECT order_type, status, terminal, count(*) FROM mailtrail.orders "
               "GROUP BY 1, 2, 3")) {
    const std::regex line(std::string(row[0].c_str()) + R"(\s+)" + row[1].c_str() + R"(\s+)" +
                          (row[2].as<bool>() ? "yes" : "no") + R"(\s+)" + row[3].c_str() + "\n");
    EXPECT_TRUE(std::regex_search(out, line))
        << "no line for " << row[0].c_str() << " " << row[1].c_str() << "\n"
        << out;
    ++groups;
  }
  EXPECT_GT(groups, 10u);

  // Requests by purpose: what mailtrail counted is what the simulator served.
  const json stats = GetJson(sim, "/__sim/stats");
  EXPECT_EQ(Sql("SELECT sum(requests) FROM mailtrail.api_request_totals"),
            stats["total"].get<long>());
  const long discovery =
      Sql("SELECT sum(requests) FROM mailtrail.api_request_totals WHERE purpose = 'discovery'");
  EXPECT_GT(discovery, 0);
  EXPECT_TRUE(
      std::regex_search(out, std::regex(R"(API requests by purpose:\n(.*\n)*\s+discovery\s+)" +
                                        std::to_string(discovery) + R"(\s+429s 0)")))
      << out;
  EXPECT_NE(out.find("webhook deliveries: 0 (0 verified, 0 refused"), std::string::npos) << out;

  for (const std::string secret : {kDbPassword, kLiveKey, kWebhookSecret}) {
    EXPECT_EQ(out.find(secret), std::string::npos) << "status printed a secret: " << secret;
  }
}

// Issue 6: status shows the last discovery. `sync --once` runs one, so status should say when.
TEST_F(CliE2eTest, StatusShowsTheDiscoveryOfSyncOnce) {
  SimProcess sim(SmallWorld("40"));
  const auto path = Write(BaseConfig(sim, kLiveKey));
  ASSERT_EQ(Mailtrail({"sync", "--once"}, path).exit_code, 0);
  const auto status = Mailtrail({"status"}, path);
  ASSERT_EQ(status.exit_code, 0) << status.output;
  EXPECT_TRUE(
      std::regex_search(status.output, std::regex(R"(discovery\s+last success \d{4}-\d\d-\d\d)")))
      << status.output;
}

// ---- history -----------------------------------------------------------------------------------

TEST_F(CliE2eTest, HistoryPrintsTheTimelineAndRefusesUnknownIds) {
  SimProcess sim(SmallWorld());
  const auto config = Write(BaseConfig(sim, kLiveKey));
  ASSERT_EQ(Mailtrail({"sync", "--once"}, config).exit_code, 0);

  // The order with the longest timeline (carrier events and changes).
  std::string id;
  {
    pqxx::connection connection(database_.dsn());
    pqxx::read_transaction tx(connection);
    const auto rows = tx.exec(
        "SELECT o.id FROM mailtrail.orders o ORDER BY (SELECT count(*) FROM "
        "mailtrail.carrier_tracking_events e WHERE e.order_id = o.id) DESC, o.id LIMIT 1");
    ASSERT_EQ(rows.size(), 1u);
    id = rows[0][0].c_str();
  }
  const auto history = Mailtrail({"history", id}, config);
  ASSERT_EQ(history.exit_code, 0) << history.output;
  const std::string& out = history.output;
  EXPECT_EQ(out.rfind(id, 0), 0u) << "the first line names the order\n" << out;

  pqxx::connection connection(database_.dsn());
  pqxx::read_transaction tx(connection);
  const long changes =
      tx.exec_params("SELECT count(*) FROM mailtrail.order_changes WHERE order_id = $1", id)[0][0]
          .as<long>();
  const long events = tx.exec_params(
                            "SELECT count(*) FROM mailtrail.carrier_tracking_events WHERE "
                            "order_id = $1",
                            id)[0][0]
                          .as<long>();
  ASSERT_GT(events, 0) << id;
  EXPECT_NE(out.find("\n" + std::to_string(changes + events) + " timeline entries"),
            std::string::npos)
      << out;
  const auto has_line = [&out](const std::string& a, const std::string& b) {
    std::istringstream lines(out);
    for (std::string line; std::getline(lines, line);) {
      const auto at = line.find(a);
      if (at != std::string::npos && line.find(b, at + a.size()) != std::string::npos) return true;
    }
    return false;
  };
  for (const auto& row : tx.exec_params(
           "SELECT field, coalesce(old_value, '-'), coalesce(new_value, '-'), source FROM "
           "mailtrail.order_changes WHERE order_id = $1",
           id)) {
    const std::string change =
        std::string(row[1].c_str()) + " -> " + row[2].c_str() + "  [" + row[3].c_str() + "]";
    EXPECT_TRUE(has_line(std::string("  ") + row[0].c_str() + " ", change))
        << "no timeline line for " << row[0].c_str() << " " << change << "\n"
        << out;
  }
  for (const auto& row : tx.exec_params(
           "SELECT status, message FROM mailtrail.carrier_tracking_events WHERE order_id = $1",
           id)) {
    EXPECT_NE(out.find(std::string(row[0].c_str()) + ": " + row[1].c_str()), std::string::npos)
        << "no timeline line for carrier event " << row[0].c_str() << "\n"
        << out;
  }

  const auto unknown = Mailtrail({"history", "letter_doesNotExist123"}, config);
  EXPECT_EQ(unknown.exit_code, 1) << unknown.output;
  EXPECT_NE(unknown.output.find("letter_doesNotExist123 is not in the database"), std::string::npos)
      << unknown.output;
  const auto missing = Mailtrail({"history"}, config);
  EXPECT_EQ(missing.exit_code, 2) << missing.output;
}

// ---- progress ----------------------------------------------------------------------------------

TEST_F(CliE2eTest, ProgressWithATestKeyMovesTheOrderOneStageAndRecordsItAsManual) {
  SimProcess sim(SmallWorld());
  const auto config = Write(BaseConfig(sim, kTestKey));
  ASSERT_EQ(Mailtrail({"sync", "--once"}, config).exit_code, 0);
  const auto test_orders = SimOrders(sim, false, "letters");
  std::string id;
  for (const auto& [candidate, order] : test_orders) {
    if (order["status"] == "ready") {
      id = candidate;
      break;
    }
  }
  ASSERT_FALSE(id.empty()) << "no ready test letter in the world";
  ASSERT_EQ(
      Sql("SELECT count(*) FROM mailtrail.orders WHERE status = 'ready' AND id = '" + id + "'"), 1);

  const auto progressed = Mailtrail({"progress", id}, config);
  ASSERT_EQ(progressed.exit_code, 0) << progressed.output;
  const json now = GetJson(sim, "/__sim/orders/" + id);
  ASSERT_NE(now["status"], "ready") << "PostGrid did not move the order";
  const std::string moved_to = now["status"].get<std::string>();
  EXPECT_NE(progressed.output.find("moved it to " + moved_to), std::string::npos)
      << progressed.output;
  EXPECT_NE(progressed.output.find("status: ready -> " + moved_to), std::string::npos)
      << progressed.output;
  EXPECT_EQ(Sql("SELECT count(*) FROM mailtrail.order_changes WHERE order_id = '" + id +
                "' AND field = 'status' AND old_value = 'ready' AND new_value = '" + moved_to +
                "' AND source = 'manual'"),
            1);
  EXPECT_EQ(Sql("SELECT count(*) FROM mailtrail.orders WHERE id = '" + id + "' AND status = '" +
                moved_to + "'"),
            1);
  // The second progression too, and the history matches the truth transition for transition.
  ASSERT_EQ(Mailtrail({"progress", id}, config).exit_code, 0);
  const json truth = GetJson(sim, "/__sim/orders/" + id + "/truth");
  pqxx::connection connection(database_.dsn());
  pqxx::read_transaction tx(connection);
  EXPECT_EQ(StoredTransitions(tx, id), TruthTransitions(truth));
  // Two progressions, each recorded by its own manual refresh (a certified letter also gets its
  // tracking number with processed_for_delivery); the rest is the first observation by sync.
  EXPECT_GE(tx.exec_params("SELECT count(*) FROM mailtrail.order_changes WHERE order_id = $1 "
                           "AND source = 'manual'",
                           id)[0][0]
                .as<long>(),
            2);
  EXPECT_EQ(tx.exec_params("SELECT count(*) FROM mailtrail.order_changes WHERE order_id = $1 "
                           "AND source NOT IN ('manual', 'discovery')",
                           id)[0][0]
                .as<long>(),
            0);

  const auto unknown = Mailtrail({"progress", "nonsense_id"}, config);
  EXPECT_EQ(unknown.exit_code, 1) << unknown.output;
  EXPECT_NE(unknown.output.find("nonsense_id"), std::string::npos) << unknown.output;
}

TEST_F(CliE2eTest, ProgressWithALiveKeyFailsClearly) {
  SimProcess sim(SmallWorld());
  const auto config = Write(BaseConfig(sim, kLiveKey));
  ASSERT_EQ(Mailtrail({"sync", "--once"}, config).exit_code, 0);
  std::string id;
  for (const auto& [candidate, order] : SimOrders(sim, true, "letters")) {
    if (order["status"] == "ready") id = candidate;
  }
  ASSERT_FALSE(id.empty());
  const long changes = Sql("SELECT count(*) FROM mailtrail.order_changes");
  const auto result = Mailtrail({"progress", id}, config);
  EXPECT_EQ(result.exit_code, 1) << result.output;
  EXPECT_NE(result.output.find("mailtrail progress"), std::string::npos) << result.output;
  EXPECT_NE(result.output.find("401"), std::string::npos) << "the refusal should be reported\n"
                                                          << result.output;
  EXPECT_EQ(GetJson(sim, "/__sim/orders/" + id)["status"], "ready");
  EXPECT_EQ(Sql("SELECT count(*) FROM mailtrail.order_changes"), changes);
}

// ---- backfill ----------------------------------------------------------------------------------

TEST_F(CliE2eTest, BackfillRecordsEveryOrder) {
  SimProcess sim(SmallWorld());
  const auto live = SimOrders(sim, true);
  const auto result = Mailtrail({"backfill"}, Write(BaseConfig(sim, kLiveKey)));
  ASSERT_EQ(result.exit_code, 0) << result.output;
  const auto diverging = Diverging(database_.dsn(), live);
  EXPECT_TRUE(diverging.empty()) << diverging.size() << " orders differ, e.g. " << diverging[0];
  EXPECT_EQ(Sql("SELECT count(*) FROM mailtrail.orders"), static_cast<long>(live.size()));
  ExpectFirstObservations(sim, live, "backfill");
  EXPECT_EQ(Sql("SELECT count(*) FROM mailtrail.backfill_progress WHERE finished_at IS NULL"), 0);
  EXPECT_EQ(Sql("SELECT count(*) FROM mailtrail.backfill_progress"), 7);
}

TEST_F(CliE2eTest, BackfillOfLettersOnly) {
  SimProcess sim(SmallWorld());
  const auto letters = SimOrders(sim, true, "letters");
  const auto result =
      Mailtrail({"backfill", "--types", "letters"}, Write(BaseConfig(sim, kLiveKey)));
  ASSERT_EQ(result.exit_code, 0) << result.output;
  EXPECT_EQ(Sql("SELECT count(*) FROM mailtrail.orders WHERE order_type <> 'letters'"), 0);
  EXPECT_EQ(Sql("SELECT count(*) FROM mailtrail.orders"), static_cast<long>(letters.size()));
  EXPECT_TRUE(Diverging(database_.dsn(), letters).empty());
}

TEST_F(CliE2eTest, BackfillSinceRecordsOnlyOrdersCreatedSince) {
  SimProcess sim(SmallWorld("600"));
  const auto letters = SimOrders(sim, true, "letters");
  std::map<std::string, std::string> created;  // id -> createdAt
  std::vector<std::string> times;
  for (const auto& [id, order] : letters) {
    created[id] = GetJson(sim, "/__sim/orders/" + id + "/truth")["createdAt"].get<std::string>();
    times.push_back(created[id]);
  }
  std::sort(times.begin(), times.end());
  ASSERT_GT(times.size(), 40u);
  const std::string since = times[times.size() / 2];
  std::set<std::string> want;
  for (const auto& [id, at] : created) {
    if (at >= since) want.insert(id);
  }

  const auto result = Mailtrail({"backfill", "--types", "letters", "--since", since},
                                Write(BaseConfig(sim, kLiveKey)));
  ASSERT_EQ(result.exit_code, 0) << result.output;
  std::set<std::string> have;
  pqxx::connection connection(database_.dsn());
  pqxx::read_transaction tx(connection);
  for (const auto& row : tx.exec("SELECT id FROM mailtrail.orders")) have.insert(row[0].c_str());
  EXPECT_EQ(have, want) << "since " << since;
}

TEST_F(CliE2eTest, BackfillRefusesBadTypesAndDates) {
  SimProcess sim(SmallWorld("10"));
  const auto config = Write(BaseConfig(sim, kLiveKey));
  for (const std::vector<std::string>& args :
       {std::vector<std::string>{"backfill", "--types", "letters,parcels"},
        std::vector<std::string>{"backfill", "--types", ""},
        std::vector<std::string>{"backfill", "--since", "yesterday"},
        std::vector<std::string>{"backfill", "--since", "2026-13-45"},
        std::vector<std::string>{"backfill", "--bogus"}}) {
    const auto result = Mailtrail(args, config);
    EXPECT_EQ(result.exit_code, 2) << args.back() << "\n" << result.output;
  }
  const auto types = Mailtrail({"backfill", "--types", "letters,parcels"}, config);
  EXPECT_NE(types.output.find("parcels"), std::string::npos) << types.output;
  const auto since = Mailtrail({"backfill", "--since", "yesterday"}, config);
  EXPECT_NE(since.output.find("yesterday"), std::string::npos) << since.output;
  EXPECT_EQ(GetJson(sim, "/__sim/stats")["total"], 0) << "bad usage must not call the API";
}

// Interrupted with SIGKILL half-way, a backfill resumes from its saved position and the result
// is the same as one uninterrupted run: every order once, every first observation once.
TEST_F(CliE2eTest, BackfillKilledMidwayResumesWithoutDuplicates) {
  SimProcess sim({"--orders", "20000", "--seed", "4242", "--paused", "--history-days", "3",
                  "--live-fraction", "1"});
  const auto live = SimOrders(sim, true);
  ASSERT_GT(live.size(), 19000u);

  MailtrailConfig slow = BaseConfig(sim, kLiveKey);
  slow.requests_per_second = 12;  // about 210 list pages: ~17 s if left alone
  {
    DaemonProcess backfill({"backfill", "--config", Write(slow, "slow.yaml")},
                           dir_.path() / "backfill.log");
    ASSERT_TRUE(WaitUntil(
        [&] {
          return Sql("SELECT coalesce(max(next_skip), 0) FROM mailtrail.backfill_progress") >= 1500;
        },
        60s))
        << backfill.Log();
    ASSERT_TRUE(backfill.running()) << "the backfill finished before it could be interrupted\n"
                                    << backfill.Log();
    backfill.Kill();
  }
  const long recorded = Sql("SELECT count(*) FROM mailtrail.orders");
  EXPECT_GT(Sql("SELECT max(next_skip) FROM mailtrail.backfill_progress"), 0);
  ASSERT_LT(recorded, static_cast<long>(live.size())) << "the kill came too late";
  ASSERT_GT(recorded, 0);

  ASSERT_EQ(sim.Delete("/__sim/stats").status, 200);
  MailtrailConfig fast = BaseConfig(sim, kLiveKey);
  fast.requests_per_second = 1000;
  const auto rerun = Mailtrail({"backfill"}, Write(fast, "fast.yaml"));
  ASSERT_EQ(rerun.exit_code, 0) << rerun.output;

  EXPECT_EQ(Sql("SELECT count(*) FROM mailtrail.orders"), static_cast<long>(live.size()));
  const auto diverging = Diverging(database_.dsn(), live);
  EXPECT_TRUE(diverging.empty()) << diverging.size() << " orders differ, e.g. " << diverging[0];
  // The clock is paused, so each field of each order was observed once: one row per field.
  EXPECT_EQ(Sql("SELECT count(*) FROM (SELECT order_id, field FROM mailtrail.order_changes "
                "GROUP BY 1, 2 HAVING count(*) > 1) AS d"),
            0);
  EXPECT_EQ(Sql("SELECT count(*) FROM mailtrail.order_changes WHERE old_value IS NOT NULL"), 0);
  EXPECT_EQ(Sql("SELECT count(*) FROM (SELECT order_id, occurred_at, status, message, count(*) "
                "FROM mailtrail.carrier_tracking_events GROUP BY 1, 2, 3, 4 HAVING count(*) > 1) "
                "AS d"),
            0);
  EXPECT_EQ(Sql("SELECT count(*) FROM mailtrail.backfill_progress WHERE finished_at IS NULL"), 0);

  // A sample against the truth, field by field.
  {
    pqxx::connection connection(database_.dsn());
    pqxx::read_transaction tx(connection);
    std::size_t i = 0;
    for (const auto& [id, order] : live) {
      if (i++ % 100 != 0) continue;
      const json truth = GetJson(sim, "/__sim/orders/" + id + "/truth");
      EXPECT_EQ(StoredTransitions(tx, id), FirstObservation(truth)) << id;
      EXPECT_EQ(StoredEvents(tx, id), TruthEvents(truth)) << id;
    }
  }

  // The rerun resumed: it listed fewer pages than a complete walk needs.
  long list_requests = 0;
  const json stats = GetJson(sim, "/__sim/stats");  // named: a temporary would dangle below
  for (const auto& cell : stats["requests"]) {
    const auto endpoint = cell["endpoint"].get<std::string>();
    if (endpoint.find("{id}") == std::string::npos) list_requests += cell["count"].get<long>();
  }
  long full_walk = 0;
  std::map<std::string, long> per_type;
  for (const auto& [id, order] : live) ++per_type[order["type"].get<std::string>()];
  for (const auto& [type, n] : per_type) full_walk += n / 100 + 1;
  EXPECT_LT(list_requests, full_walk - 10)
      << "the rerun should continue from the saved position, not start over";
}

// ---- check-config and run ----------------------------------------------------------------------

TEST_F(CliE2eTest, CheckConfigReportsARefusedKey) {
  SimProcess sim(SmallWorld("10"));
  MailtrailConfig config = BaseConfig(sim, "live_sk_wrong_key_12345");
  const auto result = Mailtrail({"check-config"}, Write(config));
  EXPECT_EQ(result.exit_code, 1) << result.output;
  EXPECT_NE(result.output.find("the API key was refused"), std::string::npos) << result.output;
  EXPECT_NE(result.output.find("reachable (PostgreSQL"), std::string::npos)
      << "the database check is reported on its own\n"
      << result.output;
  EXPECT_EQ(result.output.find("live_sk_wrong_key_12345"), std::string::npos)
      << "check-config printed the key";

  const auto good = Mailtrail({"check-config"}, Write(BaseConfig(sim, kLiveKey), "good.yaml"));
  EXPECT_EQ(good.exit_code, 0) << good.output;
  EXPECT_NE(good.output.find("key accepted"), std::string::npos) << good.output;
}

TEST_F(CliE2eTest, CheckConfigReportsAnUnreachableApi) {
  MailtrailConfig config;
  config.api_url = "http://127.0.0.1:" + std::to_string(FreePort()) + "/print-mail/v1";
  config.api_key = kLiveKey;
  config.database_url = database_.dsn();
  config.timeout = "2s";
  const auto result = Mailtrail({"check-config"}, Write(config));
  EXPECT_EQ(result.exit_code, 1) << result.output;
  EXPECT_NE(result.output.find("postgrid api " + config.api_url + ": "), std::string::npos)
      << result.output;
  EXPECT_EQ(result.output.find("key accepted"), std::string::npos) << result.output;
}

TEST_F(CliE2eTest, CommandsReportAnUnreachableDatabase) {
  SimProcess sim(SmallWorld("10"));
  MailtrailConfig config = BaseConfig(sim, kLiveKey);
  config.database_url = WithPassword(
      "postgresql://postgres@127.0.0.1:" + std::to_string(FreePort()) + "/nowhere", kDbPassword);
  const auto path = Write(config);
  for (const std::vector<std::string>& args :
       {std::vector<std::string>{"status"}, std::vector<std::string>{"history", "letter_x"},
        std::vector<std::string>{"sync", "--once"}, std::vector<std::string>{"check-config"},
        std::vector<std::string>{"progress", "letter_x"}}) {
    const auto result = Mailtrail(args, path);
    EXPECT_EQ(result.exit_code, 1) << args[0] << "\n" << result.output;
    EXPECT_NE(result.output.find("Connection refused"), std::string::npos)
        << args[0] << " should say what failed\n"
        << result.output;
    EXPECT_EQ(result.output.find(kDbPassword), std::string::npos)
        << args[0] << " printed the database password\n"
        << result.output;
  }
}

TEST_F(CliE2eTest, RunWithoutWebhookSecretsIsABadConfig) {
  SimProcess sim(SmallWorld("10"));
  MailtrailConfig config = BaseConfig(sim, kLiveKey);
  config.webhook_port = FreePort();
  config.metrics_port = FreePort();
  const auto result = Mailtrail({"run"}, Write(config));
  EXPECT_EQ(result.exit_code, 2) << result.output;
  EXPECT_NE(result.output.find("secret"), std::string::npos) << result.output;
  EXPECT_EQ(Sql("SELECT count(*) FROM pg_tables WHERE schemaname = 'mailtrail'"), 0)
      << "a refused config must not touch the database";
}

}  // namespace
}  // namespace mailtrail::e2e
