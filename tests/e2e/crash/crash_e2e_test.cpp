// Crash tests (issue 9): mailtrail's history must hold when the process dies.
//  - kill -9: a world of 2,000 live orders of every type progresses while webhooks (jwt and json)
//    flow; `mailtrail run` is SIGKILLed at seeded random moments and restarted like systemd's
//    Restart= would. After convergence the database must equal the simulator's truth, every
//    transition once, and every delivery answered 2xx must be recorded with its change.
//  - Graceful stop: SIGTERM during a busy sync exits 0 within 10 s and leaves no order
//    half-written (orders, order_changes and carrier events agree).
// MAILTRAIL_CRASH_KILLS sets the kill count (default 20; the `long` registration uses 100) and
// MAILTRAIL_CRASH_SEED replays a run (the seed is printed).
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iostream>
#include <iterator>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <pqxx/pqxx>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "e2e_world.hpp"
#include "mailtrail_process.hpp"
#include "pg_test_database.hpp"
#include "sim_process.hpp"

namespace mailtrail::e2e {
namespace {

using nlohmann::json;
using sim::testing::SimProcess;
using Clock = std::chrono::steady_clock;

constexpr const char* kLiveKey = "live_sk_sim";
constexpr const char* kJwtSecret = "whsec_crash_e2e_jwt_0123456789";
constexpr const char* kJsonSecret = "whsec_crash_e2e_json_0123456789";
constexpr const char* kPath = "/webhooks/postgrid";
constexpr const char* kIsoFormat = "'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'";

std::uint64_t SeedFromEnv() {
  if (const char* text = std::getenv("MAILTRAIL_CRASH_SEED"); text != nullptr && *text != '\0') {
    return std::stoull(text);
  }
  return std::random_device{}();
}

int KillsFromEnv() {
  if (const char* text = std::getenv("MAILTRAIL_CRASH_KILLS"); text != nullptr && *text != '\0') {
    return std::stoi(text);
  }
  return 20;
}

double Seconds(Clock::duration duration) { return std::chrono::duration<double>(duration).count(); }

std::string Tail(const std::string& text, std::size_t size = 6000) {
  return text.size() <= size ? text : "..." + text.substr(text.size() - size);
}

/// Empty while `pid` runs; once it has died, reaps it and says how (exit code or signal), as
/// systemd would log it. DaemonProcess::running() reaps without telling.
std::string DeathOf(pid_t pid) {
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string text((std::istreambuf_iterator<char>(stat)), std::istreambuf_iterator<char>());
  const auto paren = text.rfind(')');
  if (paren != std::string::npos && paren + 2 < text.size() && text[paren + 2] != 'Z') return "";
  int status = 0;
  if (::waitpid(pid, &status, WNOHANG) != pid) return text.empty() ? "gone" : "";
  if (WIFSIGNALED(status)) return std::string("signal ") + ::strsignal(WTERMSIG(status));
  return "exit code " + std::to_string(WEXITSTATUS(status));
}

/// `mailtrail run` supervised like systemd's Restart=: every incarnation appends to one log.
class Supervised {
 public:
  Supervised(std::filesystem::path config, std::filesystem::path log)
      : config_(std::move(config)), log_(std::move(log)) {}

  void Start() {
    daemon_ = std::make_unique<DaemonProcess>(
        std::vector<std::string>{"run", "--config", config_.string()}, log_);
    ++starts_;
  }
  DaemonProcess& daemon() { return *daemon_; }
  int starts() const { return starts_; }
  std::string Log() const { return daemon_ ? daemon_->Log() : std::string(); }

 private:
  std::filesystem::path config_;
  std::filesystem::path log_;
  std::unique_ptr<DaemonProcess> daemon_;
  int starts_ = 0;
};

/// Orders whose columns disagree with their latest order_changes row per field, order_changes
/// and carrier events without an order, and orders whose stored events differ in number from
/// the trackingUpdates of their stored raw object: anything a half-written refresh leaves.
std::vector<std::string> HalfWritten(const std::string& dsn) {
  pqxx::connection connection(dsn);
  pqxx::read_transaction tx(connection);
  std::vector<std::string> problems;
  const std::string iso = kIsoFormat;
  for (const auto& row :
       tx.exec("WITH latest AS (SELECT DISTINCT ON (order_id, field) order_id, field, new_value "
               "FROM mailtrail.order_changes ORDER BY order_id, field, id DESC) "
               "SELECT o.id, f.field, f.value, l.new_value FROM mailtrail.orders o "
               "CROSS JOIN LATERAL (VALUES ('status', o.status), ('imb_status', o.imb_status), "
               "('imb_zip_code', o.imb_zip_code), ('tracking_number', o.tracking_number), "
               "('carrier_status', o.carrier_status), "
               "('carrier_status_detail', o.carrier_status_detail), "
               "('est_delivery_date', to_char(o.est_delivery_date AT TIME ZONE 'UTC', " +
               iso +
               ")), ('signed_by', o.signed_by), ('cancellation_reason', o.cancellation_reason)) "
               "AS f(field, value) "
               "LEFT JOIN latest l ON l.order_id = o.id AND l.field = f.field "
               "WHERE f.value IS DISTINCT FROM l.new_value ORDER BY 1, 2 LIMIT 20")) {
    problems.push_back(std::string(row[0].c_str()) + " " + row[1].c_str() + ": column " +
                       Text(row[2]) + ", latest change " + Text(row[3]));
  }
  for (const auto& row :
       tx.exec("SELECT DISTINCT c.order_id FROM mailtrail.order_changes c "
               "LEFT JOIN mailtrail.orders o ON o.id = c.order_id WHERE o.id IS NULL LIMIT 20")) {
    problems.push_back(std::string(row[0].c_str()) + ": order_changes without an orders row");
  }
  for (const auto& row :
       tx.exec("SELECT DISTINCT e.order_id FROM mailtrail.carrier_tracking_events e "
               "LEFT JOIN mailtrail.orders o ON o.id = e.order_id WHERE o.id IS NULL LIMIT 20")) {
    problems.push_back(std::string(row[0].c_str()) +
                       ": carrier_tracking_events without an orders row");
  }
  for (const auto& row : tx.exec(
           "SELECT o.id, coalesce(jsonb_array_length(o.raw->'carrierTracking'->'trackingUpdates'), "
           "0) AS listed, (SELECT count(*) FROM mailtrail.carrier_tracking_events e "
           "WHERE e.order_id = o.id) AS stored FROM mailtrail.orders o "
           "WHERE coalesce(jsonb_array_length(o.raw->'carrierTracking'->'trackingUpdates'), 0) <> "
           "(SELECT count(*) FROM mailtrail.carrier_tracking_events e WHERE e.order_id = o.id) "
           "LIMIT 20")) {
    problems.push_back(std::string(row[0].c_str()) + ": raw lists " + row[1].c_str() +
                       " tracking updates, " + row[2].c_str() + " events stored");
  }
  return problems;
}

/// Where the unprocessed verified deliveries are: by format and type, and how many arrived in
/// the 2 s before a kill.
std::string UnprocessedBreakdown(const std::string& dsn, const std::vector<double>& kill_times) {
  std::string kills = "{";
  for (std::size_t i = 0; i < kill_times.size(); ++i) {
    kills += (i == 0 ? "" : ",") + std::to_string(kill_times[i]);
  }
  kills += "}";
  pqxx::connection connection(dsn);
  pqxx::read_transaction tx(connection);
  std::string text = "[";
  for (const auto& row : tx.exec_params(
           "SELECT payload_format, event_type, count(*), count(*) FILTER (WHERE EXISTS (SELECT 1 "
           "FROM unnest($1::float8[]) k WHERE extract(epoch FROM received_at) BETWEEN k - 2 AND "
           "k)), min(received_at)::text, max(received_at)::text FROM "
           "mailtrail.webhook_deliveries WHERE verified AND order_id IS NOT NULL AND processed_at "
           "IS NULL GROUP BY 1, 2 ORDER BY 3 DESC LIMIT 10",
           kills)) {
    text += std::string(" ") + Text(row[0]) + "/" + Text(row[1]) + ": " + row[2].c_str() + " (" +
            row[3].c_str() + " within 2 s before a kill; " + row[4].c_str() + " .. " +
            row[5].c_str() + ")";
  }
  return text + " ]";
}

/// Every event of the live world from the catch-up feed: event id -> {order id, createdAt}.
std::map<std::string, std::pair<std::string, std::string>> LiveEvents(const SimProcess& sim) {
  std::map<std::string, std::pair<std::string, std::string>> events;
  for (int skip = 0;; skip += 100) {
    const auto result = sim.Api("GET", "/events?limit=100&skip=" + std::to_string(skip), kLiveKey);
    if (result.status != 200) {
      throw std::runtime_error("GET /events: " + std::to_string(result.status) + " " +
                               result.error + " " + result.body);
    }
    const json page = json::parse(result.body);
    for (const auto& event : page["data"]) {
      events[event["id"].get<std::string>()] = {event["data"]["id"].get<std::string>(),
                                                event["createdAt"].get<std::string>()};
    }
    if (page["data"].size() < 100) break;
  }
  return events;
}

/// Waits until the simulator has no webhook delivery queued or in flight (retries scheduled for
/// later simulated times excepted: the paused clock holds them back).
bool WaitForWebhooksDrained(const SimProcess& sim, std::chrono::milliseconds timeout) {
  return WaitUntil(
      [&] {
        const json webhooks = GetJson(sim, "/__sim/stats")["webhooks"];
        return webhooks["queued"].get<long>() == 0 && webhooks["inFlight"].get<long>() == 0;
      },
      timeout);
}

class CrashE2eTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ::unsetenv("MAILTRAIL_POSTGRID_API_KEY");
    ::unsetenv("MAILTRAIL_DATABASE_URL");
    ::unsetenv("MAILTRAIL_WEBHOOK_SECRETS");
    seed_ = SeedFromEnv();
    std::cout << "[ seed     ] MAILTRAIL_CRASH_SEED=" << seed_ << " replays this run\n";
    rng_.seed(seed_);
  }

  std::string webhook_url() const {
    return "http://127.0.0.1:" + std::to_string(webhook_port_) + kPath;
  }

  std::chrono::milliseconds Uniform(std::chrono::milliseconds low, std::chrono::milliseconds high) {
    return std::chrono::milliseconds(
        std::uniform_int_distribution<long>(low.count(), high.count())(rng_));
  }

  std::uint64_t seed_ = 0;
  std::mt19937_64 rng_;
  std::uint16_t webhook_port_ = FreePort();
  std::uint16_t metrics_port_ = FreePort();
  TempDir dir_;
};

// Two simulated hours every three seconds: the closest changes of one field of one order (2
// simulated hours) are 3 s apart, several times a kill plus restart (0.3-0.6 s), so what a crash
// may cost is only what mailtrail itself loses. Failed deliveries are retried within simulated
// minutes. (At 3600 on a loaded 2-core machine webhook refreshes lagged past 2 s: README.md.)
constexpr int kSpeed = 2400;

TEST_F(CrashE2eTest, KillNineAtRandomMomentsLosesNothing) {
  const int kills = KillsFromEnv();
  ASSERT_GE(kills, 1);
  const auto test_start = Clock::now();
  mailtrail::testing::TestDatabase database;
  SimProcess sim({"--orders", "2000", "--seed", std::to_string(seed_ % 1000000), "--speed",
                  std::to_string(kSpeed), "--paused", "--history-days", "0", "--live-fraction", "1",
                  "--unknown-enum-rate", "0.05", "--webhook-retry-delays",
                  "5m,10m,15m,30m,1h,2h,4h"});
  // Both formats, each event delivered once: letters, cheques, boxes and return envelope orders
  // as JWTs, postcards, self-mailers and snap packs as signed JSON.
  const auto events_of = [](std::initializer_list<const char*> objects) {
    json events = json::array();
    for (const char* object : objects) {
      events.push_back(std::string(object) + ".created");
      events.push_back(std::string(object) + ".updated");
    }
    return events;
  };
  PostJson(sim, "/__sim/webhook-targets",
           {{"url", webhook_url()},
            {"secret", kJwtSecret},
            {"format", "jwt"},
            {"mode", "live"},
            {"events", events_of({"letter", "cheque", "box", "return_envelope_order"})}});
  PostJson(sim, "/__sim/webhook-targets",
           {{"url", webhook_url()},
            {"secret", kJsonSecret},
            {"format", "json"},
            {"mode", "live"},
            {"events", events_of({"postcard", "self_mailer", "snap_pack"})}});
  const auto world = SimOrders(sim, true);
  std::set<std::string> types;
  for (const auto& [id, order] : world) types.insert(order["type"].get<std::string>());
  ASSERT_GE(world.size(), 2000u);
  ASSERT_EQ(types.size(), 7u) << "the world must hold every order type";

  MailtrailConfig config;
  config.api_url = sim.api_url();
  config.api_key = kLiveKey;
  config.database_url = database.dsn();
  config.requests_per_second = 400;
  // Polls back webhooks up without swamping the one database thread: list polls of all 2,000
  // orders every 2 s delayed webhook refreshes past the 3 s between changes.
  config.interval = "6s";
  config.carrier_interval = "6s";
  config.discovery_interval = "5s";
  config.full_scan_interval = "20s";
  config.webhook_port = webhook_port_;
  config.metrics_port = metrics_port_;
  config.secrets = {kJwtSecret, kJsonSecret};
  if (const char* level = std::getenv("MAILTRAIL_CRASH_LOG_LEVEL"); level != nullptr && *level) {
    config.log_level = level;
  }
  Supervised supervised(dir_.Write("mailtrail.yaml", config.Yaml()), dir_.path() / "daemon.log");

  // Like systemd: a short RestartSec, and a death we did not cause is a failure of its own.
  int kills_done = 0;
  std::vector<double> uptimes;
  std::vector<double> kill_times;  // Unix seconds
  const auto crash_and_restart = [&](std::chrono::milliseconds uptime) {
    std::this_thread::sleep_for(uptime);
    const std::string death = DeathOf(supervised.daemon().pid());
    ASSERT_TRUE(death.empty()) << "mailtrail died on its own (" << death << ") after "
                               << Seconds(uptime) << " s\n"
                               << Tail(supervised.Log());
    supervised.daemon().Kill();
    kill_times.push_back(
        std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count());
    ++kills_done;
    uptimes.push_back(Seconds(uptime));
    std::this_thread::sleep_for(Uniform(100ms, 300ms));  // RestartSec
    supervised.Start();
  };
  supervised.Start();

  // Phase 1, clock paused: crashes during migrations and the first full scan. Every order must
  // still be recorded before anything happens to it (first seen as created, like the truth).
  const int paused_kills = std::max(1, kills / 10);
  for (int i = 0; i < paused_kills; ++i) {
    ASSERT_NO_FATAL_FAILURE(crash_and_restart(Uniform(50ms, 2500ms)));
  }
  ASSERT_TRUE(WaitForOrderCount(database.dsn(), world.size(), 120s))
      << Count(database.dsn(), "SELECT count(*) FROM mailtrail.orders") << " of " << world.size()
      << " orders recorded\n"
      << Tail(supervised.Log());
  const long first_seen = Count(database.dsn(), "SELECT count(*) FROM mailtrail.order_changes");
  ASSERT_EQ(sim.Post("/__sim/clock/resume").status, 200);
  const auto resumed = Clock::now();

  // Phase 2, the world moving and webhooks flowing: crashes at any moment, some right after a
  // restart (migrations, listener start, leadership), most mid-sync.
  for (int i = paused_kills; i < kills; ++i) {
    const bool early = std::uniform_real_distribution<double>(0, 1)(rng_) < 0.2;
    ASSERT_NO_FATAL_FAILURE(
        crash_and_restart(early ? Uniform(50ms, 700ms) : Uniform(1500ms, 9000ms)));
  }
  // The last incarnation syncs with the world still moving, and the world moves long enough for
  // carrier tracking and completions whatever the kill uptimes drew: 100 s is 67 simulated
  // hours, and carrier events start 23-50 simulated hours after an order is sent (one fresh-clone
  // run whose short uptimes left 62 s moving recorded none).
  constexpr auto kMinimumMoving = 100s;
  std::this_thread::sleep_for(
      std::max<Clock::duration>(5s, kMinimumMoving - (Clock::now() - resumed)));
  ASSERT_EQ(sim.Post("/__sim/clock/pause").status, 200);
  const double moving_seconds = Seconds(Clock::now() - resumed);
  ASSERT_TRUE(supervised.daemon().running()) << Tail(supervised.Log());

  // Convergence: deliveries already queued land, full scans and polls catch up.
  ASSERT_TRUE(WaitForWebhooksDrained(sim, 60s));
  const auto final_state = SimOrders(sim, true);
  std::vector<std::string> diverging;
  EXPECT_TRUE(WaitUntil(
      [&] {
        diverging = Diverging(database.dsn(), final_state);
        return diverging.empty();
      },
      90s))
      << diverging.size() << " orders differ from the truth, e.g. "
      << (diverging.empty() ? "" : diverging[0]) << "\n"
      << Tail(supervised.Log());
  // Deliveries answered 2xx are refreshed even when the incarnation that took them died.
  const std::string unprocessed_sql =
      "SELECT count(*) FROM mailtrail.webhook_deliveries WHERE verified AND order_id IS NOT NULL "
      "AND processed_at IS NULL";
  EXPECT_TRUE(WaitUntil([&] { return Count(database.dsn(), unprocessed_sql) == 0; }, 30s))
      << Count(database.dsn(), unprocessed_sql)
      << " verified deliveries were never processed (their refresh died with the process?) "
      << UnprocessedBreakdown(database.dsn(), kill_times);
  EXPECT_EQ(supervised.daemon().Terminate(10s), 0) << Tail(supervised.Log());
  if (const char* keep = std::getenv("MAILTRAIL_CRASH_KEEP_LOG"); keep != nullptr && *keep) {
    std::filesystem::copy_file(dir_.path() / "daemon.log", keep,
                               std::filesystem::copy_options::overwrite_existing);
  }

  // The history: every true transition exactly once, every carrier event exactly once.
  pqxx::connection connection(database.dsn());
  pqxx::read_transaction tx(connection);
  std::map<std::string, json> truths;
  std::map<std::string, Transitions> stored;
  std::size_t transitions = 0, events = 0, completed = 0, history_mismatches = 0;
  for (const auto& [id, order] : final_state) {
    const json& truth = truths[id] = GetJson(sim, "/__sim/orders/" + id + "/truth");
    const auto want = TruthTransitions(truth);
    for (const auto& [field, list] : want) transitions += list.size();
    stored[id] = StoredTransitions(tx, id);
    const auto want_events = TruthEvents(truth);
    events += want_events.size();
    completed += Text(order["status"]) == "completed" ? 1 : 0;
    if (stored[id] != want || StoredEvents(tx, id) != want_events) ++history_mismatches;
    EXPECT_EQ(stored[id], want) << "order_changes of " << id;
    EXPECT_EQ(StoredEvents(tx, id), want_events) << "carrier_tracking_events of " << id;
  }
  EXPECT_EQ(history_mismatches, 0u);
  EXPECT_EQ(tx.exec("SELECT count(*) FROM (SELECT 1 FROM mailtrail.carrier_tracking_events "
                    "GROUP BY order_id, occurred_at, status, message HAVING count(*) > 1) d")[0][0]
                .as<long>(),
            0)
      << "duplicate carrier_tracking_events";
  EXPECT_EQ(tx.exec("SELECT count(*) FROM (SELECT 1 FROM mailtrail.order_changes GROUP BY "
                    "order_id, field, old_value, new_value HAVING count(*) > 1) d")[0][0]
                .as<long>(),
            0)
      << "a transition recorded twice";
  const auto half_written = HalfWritten(database.dsn());
  EXPECT_TRUE(half_written.empty())
      << half_written.size() << " problems, e.g. " << (half_written.empty() ? "" : half_written[0]);

  // No lost webhook-triggered change: every delivery the simulator saw answered 2xx is
  // recorded verified, and the change its event announced is in order_changes.
  const auto event_index = LiveEvents(sim);
  std::set<std::string> json_event_ids;
  std::map<std::pair<std::string, std::string>, long> jwt_rows;  // (order, type) -> rows
  for (const auto& row : tx.exec("SELECT payload_format, event_id, order_id, event_type FROM "
                                 "mailtrail.webhook_deliveries WHERE verified")) {
    if (std::string(row[0].c_str()) == "json" && !row[1].is_null()) {
      json_event_ids.insert(row[1].c_str());
    } else if (std::string(row[0].c_str()) == "jwt" && !row[2].is_null() && !row[3].is_null()) {
      ++jwt_rows[{row[2].c_str(), row[3].c_str()}];
    }
  }
  std::map<std::pair<std::string, std::string>, long> jwt_answered;
  std::size_t answered = 0, refused = 0, announced_checked = 0, lost = 0, late_deliveries = 0;
  const json targets = GetJson(sim, "/__sim/webhook-targets");
  for (const auto& target : targets["data"]) {
    const std::string format = target["payloadFormat"].get<std::string>();
    const json invocations =
        GetJson(sim, "/__sim/webhook-targets/" + target["id"].get<std::string>() + "/invocations");
    for (const auto& invocation : invocations["data"]) {
      const int status = invocation["statusCode"].get<int>();
      if (status < 200 || status > 299) {
        ++refused;
        continue;
      }
      ++answered;
      const std::string event_id = invocation["event"].get<std::string>();
      const std::string order_id = invocation["orderID"].get<std::string>();
      if (format == "json") {
        EXPECT_EQ(json_event_ids.count(event_id), 1u)
            << "json delivery of " << event_id << " answered " << status << " but not recorded";
      } else {
        ++jwt_answered[{order_id, invocation["type"].get<std::string>()}];
      }
      const auto event = event_index.find(event_id);
      ASSERT_NE(event, event_index.end()) << event_id << " is not in the simulator's feed";
      const auto truth = truths.find(order_id);
      ASSERT_NE(truth, truths.end()) << order_id;
      // Simulated time when the simulator had the answer (ISO strings of one format compare
      // like the times they name).
      const std::string answered_at = invocation["createdAt"].get<std::string>();
      const json& changes = truth->second["changes"];
      for (std::size_t i = 0; i < changes.size(); ++i) {
        const json& change = changes[i];
        const std::string field = change["field"].get<std::string>();
        if (change["at"].get<std::string>() != event->second.second ||
            TrackedFields().count(field) == 0) {
          continue;
        }
        // A delivery that arrives after the field changed again announces a state no GET can
        // show any more (PostGrid has no history endpoint): not mailtrail's to record.
        bool superseded = false;
        for (std::size_t j = i + 1; j < changes.size() && !superseded; ++j) {
          superseded =
              changes[j]["field"] == field && changes[j]["at"].get<std::string>() <= answered_at;
        }
        if (superseded) {
          ++late_deliveries;
          continue;
        }
        const std::string transition = Text(change["old"]) + " -> " + Text(change["new"]);
        const auto& have = stored[order_id][field];
        ++announced_checked;
        if (std::find(have.begin(), have.end(), transition) == have.end()) {
          ++lost;
          ADD_FAILURE() << "the change " << field << " " << transition << " of " << order_id
                        << " announced by " << event_id << " (answered " << status
                        << ") is not in order_changes";
        }
      }
    }
  }
  for (const auto& [key, count] : jwt_answered) {
    EXPECT_GE(jwt_rows[key], count) << "jwt deliveries of " << key.second << " for " << key.first
                                    << " answered 2xx but not recorded";
  }
  EXPECT_EQ(lost, 0u);

  // The run really exercised something: crashes, lifecycles, webhook traffic both ways.
  EXPECT_EQ(kills_done, kills);
  EXPECT_EQ(supervised.starts(), kills + 1);
  EXPECT_GE(static_cast<long>(transitions) - first_seen, static_cast<long>(final_state.size()) / 2)
      << "the world barely moved";
  EXPECT_GT(events, 0u) << "no carrier tracking happened";
  EXPECT_GT(answered, final_state.size()) << "too few webhook deliveries landed";
  EXPECT_GT(announced_checked, final_state.size());
  EXPECT_GT(tx.exec("SELECT count(*) FROM mailtrail.order_changes WHERE source = "
                    "'webhook'")[0][0]
                .as<long>(),
            0);
  std::cout << "[ measured ] seed " << seed_ << ": " << kills_done << " kills (" << paused_kills
            << " during the first scan), " << final_state.size() << " orders, " << transitions
            << " transitions and " << events << " carrier events recorded once, " << completed
            << " orders completed, " << answered << " deliveries answered 2xx ("
            << announced_checked << " announced changes checked, " << late_deliveries
            << " superseded before the delivery was answered), " << refused
            << " not (daemon down), world moving " << moving_seconds << " s, total "
            << Seconds(Clock::now() - test_start) << " s\n";
  std::cout << "[ measured ] uptimes before each kill (s):";
  for (const double uptime : uptimes) std::cout << " " << uptime;
  std::cout << "\n";
}

// SIGTERM while a large backlog of due orders is being refreshed through a slow API (so many
// requests are in flight) and webhooks arrive: exit 0 within 10 s, nothing half-written. Four
// rounds, each stopping at another moment: the first during the start-up full scan, the others
// mid-backlog. Accepted deliveries whose refresh was still queued are done by the next start.
TEST_F(CrashE2eTest, SigtermDuringBusySyncExitsCleanlyWithNothingHalfWritten) {
  mailtrail::testing::TestDatabase database;
  SimProcess sim({"--orders",
                  "3000",
                  "--seed",
                  std::to_string(seed_ % 1000000),
                  "--paused",
                  "--history-days",
                  "0",
                  "--live-fraction",
                  "1",
                  "--unknown-enum-rate",
                  "0.05",
                  "--fault",
                  "latency:ms=150",
                  "--webhook-url",
                  webhook_url(),
                  "--webhook-secret",
                  kJsonSecret,
                  "--webhook-format",
                  "json",
                  "--webhook-retry-delays",
                  "5m,10m,15m,30m,1h,2h,4h"});
  const auto world = SimOrders(sim, true);
  ASSERT_GE(world.size(), 3000u);

  MailtrailConfig config;
  config.api_url = sim.api_url();
  config.api_key = kLiveKey;
  config.database_url = database.dsn();
  config.requests_per_second = 400;
  config.interval = "1h";
  config.carrier_interval = "1h";
  config.discovery_interval = "1h";
  config.full_scan_interval = "1h";
  config.webhook_port = webhook_port_;
  config.secrets = {kJsonSecret};
  config.metrics_port = metrics_port_;
  const auto config_path = dir_.Write("mailtrail.yaml", config.Yaml());
  const auto log_path = dir_.path() / "daemon.log";

  constexpr int kRounds = 4;
  std::vector<double> stop_seconds;
  for (int round = 0; round < kRounds; ++round) {
    if (round > 0) {
      // Every order changes or is due: a simulated day passes and the whole table is due now.
      ASSERT_EQ(sim.Post("/__sim/advance", R"({"duration":"1d"})").status, 200);
      pqxx::connection connection(database.dsn());
      pqxx::work tx(connection);
      tx.exec(
          "UPDATE mailtrail.orders SET next_check_at = now() - interval '1 second' "
          "WHERE NOT terminal");
      tx.commit();
    }
    const long changes_before =
        std::max(0L, Count(database.dsn(), "SELECT count(*) FROM mailtrail.order_changes"));
    DaemonProcess daemon({"run", "--config", config_path.string()}, log_path);
    // Busy: refreshes are being written (round 0: the first scan is recording orders).
    ASSERT_TRUE(WaitUntil(
        [&] {
          return !daemon.running() ||
                 Count(database.dsn(), "SELECT count(*) FROM mailtrail.order_changes") >
                     changes_before + 50;
        },
        60s))
        << Tail(daemon.Log());
    ASSERT_TRUE(daemon.running()) << Tail(daemon.Log());
    // Webhooks arrive on top of the backlog (two simulated hours of events at once).
    if (round > 0) {
      ASSERT_EQ(sim.Post("/__sim/advance", R"({"duration":"2h"})").status, 200);
    }
    // Up to 1.5 s: a full scan writes pages while it fetches the next ones, and the list walks
    // that stand in for polls clear a backlog of this size in a few seconds.
    std::this_thread::sleep_for(Uniform(0ms, 1500ms));
    const long pending = round == 0
                             ? static_cast<long>(world.size()) -
                                   Count(database.dsn(), "SELECT count(*) FROM mailtrail.orders")
                             : Count(database.dsn(),
                                     "SELECT count(*) FROM mailtrail.orders WHERE NOT terminal AND "
                                     "next_check_at <= now()");
    ASSERT_GT(pending, 20) << "round " << round << ": the backlog was gone before SIGTERM\n"
                           << Tail(daemon.Log());
    ASSERT_TRUE(daemon.running()) << Tail(daemon.Log());
    const auto sent = Clock::now();
    const int exit_code = daemon.Terminate(10s);
    const double took = Seconds(Clock::now() - sent);
    stop_seconds.push_back(took);
    EXPECT_EQ(exit_code, 0) << "round " << round << ": SIGTERM with " << pending
                            << " orders pending must exit 0 within 10 s (took " << took << " s)\n"
                            << Tail(daemon.Log());
    const auto problems = HalfWritten(database.dsn());
    EXPECT_TRUE(problems.empty()) << "round " << round << ": " << problems.size()
                                  << " half-written orders, e.g. "
                                  << (problems.empty() ? "" : problems[0]);
    std::cout << "[ measured ] round " << round << ": SIGTERM with " << pending
              << " orders pending, exited " << exit_code << " after " << took << " s\n";
  }
  EXPECT_EQ(stop_seconds.size(), static_cast<std::size_t>(kRounds));

  // Deliveries accepted before a SIGTERM whose refresh was still queued are refreshed by the
  // next start, and every delivery the simulator saw answered 2xx is recorded.
  ASSERT_TRUE(WaitForWebhooksDrained(sim, 60s));
  const std::string unprocessed_sql =
      "SELECT count(*) FROM mailtrail.webhook_deliveries WHERE verified AND order_id IS NOT NULL "
      "AND processed_at IS NULL";
  const long unprocessed_at_stop = Count(database.dsn(), unprocessed_sql);
  ASSERT_EQ(sim.Delete("/__sim/faults").status, 200);  // catching up is not what is measured
  DaemonProcess daemon({"run", "--config", config_path.string()}, log_path);
  EXPECT_TRUE(WaitUntil([&] { return Count(database.dsn(), unprocessed_sql) == 0; }, 120s))
      << Count(database.dsn(), unprocessed_sql) << " accepted deliveries never processed\n"
      << Tail(daemon.Log());
  EXPECT_EQ(daemon.Terminate(10s), 0) << Tail(daemon.Log());
  const auto problems = HalfWritten(database.dsn());
  EXPECT_TRUE(problems.empty()) << problems.size() << " half-written orders, e.g. "
                                << (problems.empty() ? "" : problems[0]);
  std::set<std::string> recorded;
  {
    pqxx::connection connection(database.dsn());
    pqxx::read_transaction tx(connection);
    for (const auto& row : tx.exec("SELECT event_id FROM mailtrail.webhook_deliveries WHERE "
                                   "verified AND event_id IS NOT NULL")) {
      recorded.insert(row[0].c_str());
    }
  }
  std::size_t answered = 0;
  const json targets = GetJson(sim, "/__sim/webhook-targets");
  for (const auto& target : targets["data"]) {
    const json invocations =
        GetJson(sim, "/__sim/webhook-targets/" + target["id"].get<std::string>() + "/invocations");
    for (const auto& invocation : invocations["data"]) {
      const int status = invocation["statusCode"].get<int>();
      if (status < 200 || status > 299) continue;
      ++answered;
      EXPECT_EQ(recorded.count(invocation["event"].get<std::string>()), 1u)
          << invocation.dump() << " answered 2xx but not recorded";
    }
  }
  EXPECT_GT(answered, 100u) << "webhooks barely flowed during the stops";
  std::cout << "[ measured ] " << answered << " deliveries answered 2xx around the stops, "
            << unprocessed_at_stop << " accepted but not yet processed when stopped\n";
}

}  // namespace
}  // namespace mailtrail::e2e
