// The capability users install mailtrail for, end to end: a simulated PostGrid world of several
// hundred orders of all seven types goes through whole lifecycles while `mailtrail run` polls and
// takes webhooks; afterwards the database must hold exactly the simulator's ground truth.
#include <gtest/gtest.h>

#include <map>
#include <nlohmann/json.hpp>
#include <pqxx/pqxx>
#include <set>
#include <sstream>

#include "mailtrail_process.hpp"
#include "pg_test_database.hpp"
#include "sim_process.hpp"

namespace mailtrail::e2e {
namespace {

using nlohmann::json;
using sim::testing::SimProcess;

constexpr const char* kSecret = "whsec_e2e_world_0123456789";
constexpr const char* kLiveKey = "live_sk_sim";
const std::set<std::string> kTrackedFields = {"status",
                                              "imb_status",
                                              "imb_zip_code",
                                              "tracking_number",
                                              "carrier_status",
                                              "carrier_status_detail",
                                              "est_delivery_date",
                                              "signed_by",
                                              "cancellation_reason"};

json GetJson(const SimProcess& sim, const std::string& target) {
  const auto result = sim.Get(target);
  if (result.status != 200) {
    throw std::runtime_error("GET " + target + ": " + std::to_string(result.status) + " " +
                             result.error + " " + result.body);
  }
  return json::parse(result.body);
}

// The simulator's current live orders: id -> summary (status, imbStatus, trackingNumber, ...).
std::map<std::string, json> SimOrders(const SimProcess& sim) {
  std::map<std::string, json> orders;
  for (int skip = 0;; skip += 10000) {
    const json page =
        GetJson(sim, "/__sim/orders?live=true&limit=10000&skip=" + std::to_string(skip));
    for (const auto& order : page["data"]) orders[order["id"].get<std::string>()] = order;
    if (page["data"].size() < 10000) break;
  }
  return orders;
}

std::string Text(const json& value) { return value.is_null() ? "NULL" : value.get<std::string>(); }
std::string Text(const pqxx::field& field) { return field.is_null() ? "NULL" : field.c_str(); }

class WorldE2eTest : public ::testing::Test {
 protected:
  long Count(const std::string& sql) {
    pqxx::connection connection(database_.dsn());
    pqxx::read_transaction tx(connection);
    return tx.exec(sql)[0][0].as<long>();
  }

  // Orders whose stored state differs from the simulator's current state.
  std::vector<std::string> Diverging(const std::map<std::string, json>& truth) {
    pqxx::connection connection(database_.dsn());
    pqxx::read_transaction tx(connection);
    std::map<std::string, pqxx::row> rows;
    const auto result = tx.exec(
        "SELECT id, status, imb_status, tracking_number, carrier_status, "
        "to_char(updated_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"') "
        "FROM mailtrail.orders");
    for (const auto& row : result) rows.emplace(row[0].c_str(), row);
    std::vector<std::string> diverging;
    for (const auto& [id, order] : truth) {
      const auto it = rows.find(id);
      if (it == rows.end()) {
        diverging.push_back(id + " missing");
        continue;
      }
      const auto& row = it->second;
      const std::string want = Text(order["status"]) + "|" + Text(order["imbStatus"]) + "|" +
                               Text(order["trackingNumber"]) + "|" + Text(order["carrierStatus"]) +
                               "|" + Text(order["updatedAt"]);
      const std::string have = Text(row[1]) + "|" + Text(row[2]) + "|" + Text(row[3]) + "|" +
                               Text(row[4]) + "|" + Text(row[5]);
      if (want != have) diverging.push_back(id + " want " + want + " have " + have);
    }
    return diverging;
  }

  mailtrail::testing::TestDatabase database_;
  TempDir dir_;
};

TEST_F(WorldE2eTest, DaemonRecordsEveryTrueTransitionExactlyOnce) {
  const std::uint16_t webhook_port = FreePort();
  const std::uint16_t metrics_port = FreePort();
  const std::string webhook_url =
      "http://127.0.0.1:" + std::to_string(webhook_port) + "/webhooks/postgrid";
  // Eight simulated hours every three seconds (an order's changes are then seconds apart, which
  // the webhook path must keep up with), every order created at the start (nothing happened
  // before mailtrail could see it), some orders with values PostGrid does not document.
  SimProcess sim({"--orders", "1000", "--seed", "20261127", "--speed", "9600", "--paused",
                  "--history-days", "0", "--unknown-enum-rate", "0.05", "--webhook-url",
                  webhook_url, "--webhook-secret", kSecret, "--webhook-format", "jwt"});
  const auto initial = SimOrders(sim);
  std::set<std::string> types;
  for (const auto& [id, order] : initial) types.insert(order["type"].get<std::string>());
  ASSERT_GE(initial.size(), 400u);
  ASSERT_EQ(types.size(), 7u) << "the world must hold every order type";

  const auto config = dir_.Write("mailtrail.yaml", R"(postgrid:
  base_url: )" + sim.api_url() + R"(
  api_key: )" + kLiveKey + R"(
  requests_per_second: 400
  max_concurrency: 8
  timeout: 5s
database:
  url: )" + database_.dsn() + R"(
poll:
  interval: 2s
  carrier_interval: 3s
  discovery_interval: 2s
  full_scan_interval: 15s
webhook:
  listen: 127.0.0.1:)" + std::to_string(webhook_port) + R"(
  secrets: [)" + kSecret + R"(]
metrics:
  listen: 127.0.0.1:)" + std::to_string(metrics_port) + R"(
log:
  level: info
)");
  DaemonProcess daemon({"run", "--config", config.string()}, dir_.path() / "daemon.log");

  // Everything is discovered before the clock starts, so every order is first seen as created.
  ASSERT_TRUE(WaitUntil(
      [&] {
        return Count(
                   "SELECT count(*) FROM pg_tables WHERE schemaname = 'mailtrail' AND "
                   "tablename = 'orders'") == 1 &&
               Count("SELECT count(*) FROM mailtrail.orders") == static_cast<long>(initial.size());
      },
      60s))
      << daemon.Log();
  ASSERT_EQ(sim.Post("/__sim/clock/resume").status, 200);

  // About nine simulated days: whole lifecycles, carrier tracking to delivery, late IMB scans.
  std::this_thread::sleep_for(80s);
  ASSERT_EQ(sim.Post("/__sim/clock/pause").status, 200);
  ASSERT_TRUE(daemon.running()) << daemon.Log();

  const auto final_state = SimOrders(sim);
  std::vector<std::string> diverging;
  EXPECT_TRUE(WaitUntil(
      [&] {
        diverging = Diverging(final_state);
        return diverging.empty();
      },
      60s))
      << diverging.size() << " orders differ, e.g. " << (diverging.empty() ? "" : diverging[0]);

  // The metrics saw the same world: webhooks turned into rows, unknown values were noticed.
  const auto scrape = sim::testing::HttpRequest("127.0.0.1", metrics_port, "GET", "/metrics");
  ASSERT_EQ(scrape.status, 200) << scrape.error;
  const auto series_total = [&scrape](const std::string& name) {
    double sum = 0;
    std::istringstream lines(scrape.body);
    for (std::string line; std::getline(lines, line);) {
      if (line.rfind(name, 0) == 0 && (line[name.size()] == ' ' || line[name.size()] == '{')) {
        sum += std::stod(line.substr(line.rfind(' ') + 1));
      }
    }
    return sum;
  };
  EXPECT_GT(series_total("mailtrail_unknown_enum_values_total"), 0) << scrape.body;
  EXPECT_GT(series_total("mailtrail_webhook_to_row_seconds_count"), 0) << scrape.body;
  EXPECT_GT(series_total("mailtrail_changes_total"), 0) << scrape.body;

  EXPECT_EQ(daemon.Terminate(10s), 0) << "SIGTERM must stop the daemon cleanly within 10 s";

  pqxx::connection connection(database_.dsn());
  pqxx::read_transaction tx(connection);
  std::size_t transitions = 0, events = 0, terminal_checked = 0, completed = 0;
  for (const auto& [id, order] : final_state) {
    const json truth = GetJson(sim, "/__sim/orders/" + id + "/truth");

    // Per field, the sequence of (old -> new) must be the truth's, each transition once.
    std::map<std::string, std::vector<std::string>> want, have;
    for (const auto& change : truth["changes"]) {
      // The simulator records more than contract.md tracks (e.g. cancelled_by_user).
      if (kTrackedFields.count(change["field"].get<std::string>()) == 0) continue;
      want[change["field"].get<std::string>()].push_back(Text(change["old"]) + " -> " +
                                                         Text(change["new"]));
      ++transitions;
    }
    for (const auto& row :
         tx.exec_params("SELECT field, old_value, new_value FROM mailtrail.order_changes "
                        "WHERE order_id = $1 ORDER BY id",
                        id)) {
      have[row[0].c_str()].push_back(Text(row[1]) + " -> " + Text(row[2]));
    }
    EXPECT_EQ(have, want) << "order_changes of " << id;

    std::multiset<std::string> want_events, have_events;
    for (const auto& update : truth["trackingUpdates"]) {
      want_events.insert(update["createdAt"].get<std::string>() + "|" +
                         update["status"].get<std::string>() + "|" +
                         update["message"].get<std::string>());
      ++events;
    }
    for (const auto& row :
         tx.exec_params("SELECT to_char(occurred_at AT TIME ZONE 'UTC', "
                        "'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'), status, message "
                        "FROM mailtrail.carrier_tracking_events WHERE order_id = $1",
                        id)) {
      have_events.insert(std::string(row[0].c_str()) + "|" + row[1].c_str() + "|" + row[2].c_str());
    }
    EXPECT_EQ(have_events, want_events) << "carrier_tracking_events of " << id;

    // Terminal: cancelled, filled, or completed with a terminal carrier status. Completed orders
    // without a tracking number stay watched for poll.completed_grace (14 d of wall time).
    const std::string status = Text(order["status"]);
    const std::string carrier = Text(order["carrierStatus"]);
    const bool terminal_carrier = carrier == "delivered" || carrier == "return_to_sender" ||
                                  carrier == "failure" || carrier == "cancelled" ||
                                  carrier == "error";
    const bool expected_terminal =
        status == "cancelled" || status == "filled" || (status == "completed" && terminal_carrier);
    const auto flag = tx.exec_params("SELECT terminal FROM mailtrail.orders WHERE id = $1", id);
    ASSERT_EQ(flag.size(), 1u) << id;
    EXPECT_EQ(flag[0][0].as<bool>(), expected_terminal) << id << " " << status << "/" << carrier;
    ++terminal_checked;
    completed += status == "completed" ? 1 : 0;
  }
  // The world really went through lifecycles, and unknown fields and values were kept.
  EXPECT_GT(completed, final_state.size() / 3) << "too few orders completed: the test saw little";
  EXPECT_GT(events, 100u);
  EXPECT_GT(transitions, 3 * final_state.size());
  EXPECT_GT(tx.exec("SELECT count(*) FROM mailtrail.orders WHERE raw ? 'mergeVariables'")[0][0]
                .as<long>(),
            0)
      << "raw must keep fields mailtrail does not know";
  EXPECT_GT(tx.exec("SELECT count(*) FROM mailtrail.order_changes WHERE new_value IN "
                    "('held_for_review', 'customs_review', 'in_process')")[0][0]
                .as<long>(),
            0)
      << "undocumented enum values must be kept verbatim";
  EXPECT_EQ(terminal_checked, final_state.size());
  const auto sources = tx.exec(
      "SELECT count(*) FILTER (WHERE source = 'webhook'), count(*) FILTER (WHERE source = "
      "'discovery') FROM mailtrail.order_changes")[0];
  EXPECT_GT(sources[0].as<long>(), 0) << "webhooks must have triggered refreshes";
  EXPECT_GT(sources[1].as<long>(), 0);
}

}  // namespace
}  // namespace mailtrail::e2e
