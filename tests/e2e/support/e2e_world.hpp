#pragma once

// Header-only helpers shared by the cli, replicas and webhook e2e suites: a config writer, the
// simulator's truth in the shape of mailtrail's tables, and small database/HTTP probes.

#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <pqxx/pqxx>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

#include "mailtrail_process.hpp"
#include "sim_process.hpp"

namespace mailtrail::e2e {

/// The `order_changes` fields of contract.md (the simulator's truth records a few more).
inline const std::set<std::string>& TrackedFields() {
  static const std::set<std::string> kFields = {"status",
                                                "imb_status",
                                                "imb_zip_code",
                                                "tracking_number",
                                                "carrier_status",
                                                "carrier_status_detail",
                                                "est_delivery_date",
                                                "signed_by",
                                                "cancellation_reason"};
  return kFields;
}

/// A mailtrail YAML config; empty optional strings leave the key out (mailtrail's default).
struct MailtrailConfig {
  std::string api_url;
  std::string api_key;
  std::string database_url;
  std::optional<std::string> order_types;  ///< YAML flow list, e.g. "[letters, postcards]"
  double requests_per_second = 400;
  int max_concurrency = 8;
  std::string timeout = "5s";
  std::string interval = "1h";
  std::string carrier_interval = "6h";
  std::string discovery_interval = "5m";
  std::string full_scan_interval = "24h";
  std::uint16_t webhook_port = 0;  ///< 0: the webhook section is left out
  std::vector<std::string> secrets;
  std::optional<std::string> max_age;
  std::uint16_t metrics_port = 0;  ///< 0: the metrics section is left out
  std::string log_level = "info";

  std::string Yaml() const {
    std::string yaml = "postgrid:\n  base_url: " + api_url + "\n";
    if (!api_key.empty()) yaml += "  api_key: " + api_key + "\n";
    if (order_types) yaml += "  order_types: " + *order_types + "\n";
    yaml += "  requests_per_second: " + std::to_string(requests_per_second) +
            "\n  max_concurrency: " + std::to_string(max_concurrency) + "\n  timeout: " + timeout +
            "\ndatabase:\n  url: " + database_url + "\npoll:\n  interval: " + interval +
            "\n  carrier_interval: " + carrier_interval +
            "\n  discovery_interval: " + discovery_interval +
            "\n  full_scan_interval: " + full_scan_interval + "\n";
    if (webhook_port != 0) {
      yaml += "webhook:\n  listen: 127.0.0.1:" + std::to_string(webhook_port) + "\n";
      if (!secrets.empty()) {
        yaml += "  secrets: [";
        for (std::size_t i = 0; i < secrets.size(); ++i) {
          yaml += (i == 0 ? "" : ", ") + secrets[i];
        }
        yaml += "]\n";
      }
      if (max_age) yaml += "  max_age: " + *max_age + "\n";
    }
    if (metrics_port != 0) {
      yaml += "metrics:\n  listen: 127.0.0.1:" + std::to_string(metrics_port) + "\n";
    }
    yaml += "log:\n  level: " + log_level + "\n";
    return yaml;
  }
};

inline nlohmann::json GetJson(const sim::testing::SimProcess& sim, const std::string& target) {
  const auto result = sim.Get(target);
  if (result.status != 200) {
    throw std::runtime_error("GET " + target + ": " + std::to_string(result.status) + " " +
                             result.error + " " + result.body);
  }
  return nlohmann::json::parse(result.body);
}

/// POST to the simulator's control API; throws unless the answer is 200 or 201.
inline nlohmann::json PostJson(const sim::testing::SimProcess& sim, const std::string& target,
                               const nlohmann::json& body = nlohmann::json::object()) {
  const auto result = sim.Post(target, body.dump());
  if (result.status != 200 && result.status != 201) {
    throw std::runtime_error("POST " + target + ": " + std::to_string(result.status) + " " +
                             result.error + " " + result.body);
  }
  return nlohmann::json::parse(result.body);
}

/// The simulator's current orders of one mode: id -> summary (type, status, imbStatus, ...).
inline std::map<std::string, nlohmann::json> SimOrders(const sim::testing::SimProcess& sim,
                                                       bool live, const std::string& type = "") {
  std::map<std::string, nlohmann::json> orders;
  for (int skip = 0;; skip += 10000) {
    const auto page = GetJson(sim, "/__sim/orders?live=" + std::string(live ? "true" : "false") +
                                       (type.empty() ? "" : "&type=" + type) +
                                       "&limit=10000&skip=" + std::to_string(skip));
    for (const auto& order : page["data"]) orders[order["id"].get<std::string>()] = order;
    if (page["data"].size() < 10000) break;
  }
  return orders;
}

inline std::string Text(const nlohmann::json& value) {
  return value.is_null() ? "NULL" : value.get<std::string>();
}
inline std::string Text(const pqxx::field& field) {
  return field.is_null() ? "NULL" : field.c_str();
}

/// Per tracked field, the truth's transitions "old -> new" in order.
using Transitions = std::map<std::string, std::vector<std::string>>;

inline Transitions TruthTransitions(const nlohmann::json& truth) {
  Transitions want;
  for (const auto& change : truth["changes"]) {
    const auto field = change["field"].get<std::string>();
    if (TrackedFields().count(field) == 0) continue;
    want[field].push_back(Text(change["old"]) + " -> " + Text(change["new"]));
  }
  return want;
}

/// What a first observation of the order as it is now must write: NULL -> current value for
/// every tracked field that has one.
inline Transitions FirstObservation(const nlohmann::json& truth) {
  std::map<std::string, std::string> last;
  for (const auto& change : truth["changes"]) {
    const auto field = change["field"].get<std::string>();
    if (TrackedFields().count(field) == 0) continue;
    last[field] = Text(change["new"]);
  }
  Transitions want;
  for (const auto& [field, value] : last) {
    if (value != "NULL") want[field].push_back("NULL -> " + value);
  }
  return want;
}

/// The order_changes rows of one order, per field, in id order.
inline Transitions StoredTransitions(pqxx::transaction_base& tx, const std::string& id) {
  Transitions have;
  for (const auto& row :
       tx.exec_params("SELECT field, old_value, new_value FROM mailtrail.order_changes "
                      "WHERE order_id = $1 ORDER BY id",
                      id)) {
    have[row[0].c_str()].push_back(Text(row[1]) + " -> " + Text(row[2]));
  }
  return have;
}

/// The truth's carrier tracking updates and the stored events, as "time|status|message" sets.
inline std::multiset<std::string> TruthEvents(const nlohmann::json& truth) {
  std::multiset<std::string> events;
  for (const auto& update : truth["trackingUpdates"]) {
    events.insert(update["createdAt"].get<std::string>() + "|" +
                  update["status"].get<std::string>() + "|" + update["message"].get<std::string>());
  }
  return events;
}
inline std::multiset<std::string> StoredEvents(pqxx::transaction_base& tx, const std::string& id) {
  std::multiset<std::string> events;
  for (const auto& row :
       tx.exec_params("SELECT to_char(occurred_at AT TIME ZONE 'UTC', "
                      "'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'), status, message "
                      "FROM mailtrail.carrier_tracking_events WHERE order_id = $1",
                      id)) {
    events.insert(std::string(row[0].c_str()) + "|" + row[1].c_str() + "|" + row[2].c_str());
  }
  return events;
}

/// One number from SQL; -1 when the query fails (e.g. before migrations created the table).
inline long Count(const std::string& dsn, const std::string& sql) {
  try {
    pqxx::connection connection(dsn);
    pqxx::read_transaction tx(connection);
    return tx.exec(sql)[0][0].as<long>();
  } catch (const std::exception&) {
    return -1;
  }
}

/// Waits until `dsn` holds exactly `expected` orders (a first scan done), up to `timeout`.
inline bool WaitForOrderCount(const std::string& dsn, std::size_t expected,
                              std::chrono::milliseconds timeout) {
  return WaitUntil(
      [&] {
        return Count(dsn, "SELECT count(*) FROM mailtrail.orders") == static_cast<long>(expected);
      },
      timeout);
}

/// Orders whose stored status/imb/tracking/carrier/updatedAt differ from the simulator's summary
/// (missing ones included); each entry names the order and both states.
inline std::vector<std::string> Diverging(const std::string& dsn,
                                          const std::map<std::string, nlohmann::json>& truth) {
  pqxx::connection connection(dsn);
  pqxx::read_transaction tx(connection);
  std::map<std::string, std::string> rows;
  for (const auto& row :
       tx.exec("SELECT id, status, imb_status, tracking_number, carrier_status, "
               "to_char(updated_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"') "
               "FROM mailtrail.orders")) {
    rows[row[0].c_str()] = Text(row[1]) + "|" + Text(row[2]) + "|" + Text(row[3]) + "|" +
                           Text(row[4]) + "|" + Text(row[5]);
  }
  std::vector<std::string> diverging;
  for (const auto& [id, order] : truth) {
    const std::string want = Text(order["status"]) + "|" + Text(order["imbStatus"]) + "|" +
                             Text(order["trackingNumber"]) + "|" + Text(order["carrierStatus"]) +
                             "|" + Text(order["updatedAt"]);
    const auto it = rows.find(id);
    if (it == rows.end()) {
      diverging.push_back(id + " missing");
    } else if (it->second != want) {
      diverging.push_back(id + " want " + want + " have " + it->second);
    }
  }
  return diverging;
}

/// Waits until the simulator has served no API request for `quiet` (start-up scans and polls
/// done), up to `timeout`; returns whether it got quiet.
inline bool WaitForApiQuiet(const sim::testing::SimProcess& sim, std::chrono::milliseconds quiet,
                            std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  long last = -1;
  auto since = std::chrono::steady_clock::now();
  while (std::chrono::steady_clock::now() < deadline) {
    const long total = GetJson(sim, "/__sim/stats")["total"].get<long>();
    const auto now = std::chrono::steady_clock::now();
    if (total != last) {
      last = total;
      since = now;
    } else if (now - since >= quiet) {
      return true;
    }
    std::this_thread::sleep_for(100ms);
  }
  return false;
}

/// `dsn` (postgresql://user@host...) with a password added: the throwaway server trusts every
/// local login, so any password works, and tests can check that it is never printed.
inline std::string WithPassword(const std::string& dsn, const std::string& password) {
  const auto scheme = dsn.find("://");
  const auto at = dsn.find('@', scheme);
  if (scheme == std::string::npos || at == std::string::npos) {
    throw std::runtime_error("expected a postgresql://user@host/... DSN, got " + dsn);
  }
  const auto user_end = dsn.find(':', scheme + 3);
  if (user_end != std::string::npos && user_end < at) return dsn;  // has one already
  return dsn.substr(0, at) + ":" + password + dsn.substr(at);
}

/// GET http://127.0.0.1:port/target (status 0 when nothing answers).
inline sim::testing::HttpResult LocalGet(std::uint16_t port, const std::string& target) {
  return sim::testing::HttpRequest("127.0.0.1", port, "GET", target, "", {}, 5s);
}

/// The sum of the samples of `metric` whose label text contains every string of `labels` in
/// a Prometheus text exposition.
inline double MetricSum(const std::string& exposition, const std::string& metric,
                        const std::vector<std::string>& labels = {}) {
  double sum = 0;
  std::size_t start = 0;
  while (start < exposition.size()) {
    std::size_t end = exposition.find('\n', start);
    if (end == std::string::npos) end = exposition.size();
    const std::string line = exposition.substr(start, end - start);
    start = end + 1;
    if (line.empty() || line[0] == '#') continue;
    if (line.rfind(metric, 0) != 0) continue;
    const char next = line.size() > metric.size() ? line[metric.size()] : '\0';
    if (next != '{' && next != ' ') continue;
    bool match = true;
    for (const auto& label : labels) match = match && line.find(label) != std::string::npos;
    if (!match) continue;
    sum += std::stod(line.substr(line.rfind(' ') + 1));
  }
  return sum;
}

}  // namespace mailtrail::e2e
