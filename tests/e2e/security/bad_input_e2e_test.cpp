// Bad input end to end (issue 9): what mailtrail does with odd PostGrid answers and odd webhook
// bodies, and proof that nothing already stored is lost. The rows here are the README's "Bad
// input" table entries that had no test elsewhere.
//
// PostGrid answers come from a scripted fake API (postgrid_test_support's FakePostGrid): the
// simulator only serves well-formed orders. Each row starts from a world of letters recorded by
// a first `sync --once`, then the API starts answering one order (or the whole list page) badly
// while a witness order on the same page has a genuine change, and a second `sync --once` runs.
// The row says what the second run must give (exit code, a clear message), whether the bad
// order is stored (and how) or refused, and whether the witness's change still lands (the rest of
// the page is not lost to one bad order). Every other stored order, change and carrier event
// must be exactly as before.
#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <functional>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <pqxx/pqxx>
#include <set>
#include <string>
#include <vector>

#include "e2e_world.hpp"
#include "mailtrail_process.hpp"
#include "pg_test_database.hpp"
#include "sim_process.hpp"
#include "support/fake_postgrid.hpp"

namespace mailtrail::e2e {
namespace {

using nlohmann::json;
using postgrid::testing::FakePostGrid;
using postgrid::testing::FakeRequest;
using postgrid::testing::FakeResponse;

constexpr int kOrders = 6;
constexpr int kTarget = 2;   // the order answered badly
constexpr int kWitness = 4;  // an order on the same page with a genuine change

std::string IdOf(int i) { return "letter_badinput" + std::to_string(1000 + i); }

/// A non-terminal certified letter with one carrier scan, created on day `i`.
json Letter(int i) {
  const std::string day = std::to_string(10 + i);
  return json{
      {"id", IdOf(i)},
      {"object", "letter"},
      {"live", true},
      {"status", "processed_for_delivery"},
      {"description", "bad input order " + std::to_string(i)},
      {"metadata", {{"batch", i}}},
      {"mailingClass", "first_class"},
      {"extraService", "certified"},
      {"from", "contact_badinputfrom"},
      {"to", "contact_badinputto"},
      {"pageCount", 1},
      {"sendDate", "2026-02-" + day + "T14:00:00.000Z"},
      {"createdAt", "2026-02-" + day + "T12:00:00.000Z"},
      {"updatedAt", "2026-02-" + day + "T18:00:00.000Z"},
      {"trackingNumber", "9407111899223033" + std::to_string(100000 + i)},
      {"carrierTracking",
       {{"carrier", "USPS"},
        {"status", "in_transit"},
        {"statusDetail", "arrived_at_facility"},
        {"estDeliveryDate", "2026-02-" + std::to_string(12 + i)},
        {"signedBy", nullptr},
        {"trackingUpdates", json::array({{{"message", "Arrived at USPS facility"},
                                          {"status", "in_transit"},
                                          {"createdAt", "2026-02-" + day + "T17:00:00.000Z"},
                                          {"source", "USPS"},
                                          {"trackingLocation", nullptr}}})}}}};
}

/// The same order a day later, out for delivery with one more scan (a genuine change).
json NextDay(json order) {
  const std::string updated = order["updatedAt"].get<std::string>();
  order["updatedAt"] = updated.substr(0, 8) + "28T09:00:00.000Z";
  order["carrierTracking"]["status"] = "out_for_delivery";
  order["carrierTracking"]["statusDetail"] = "out_for_delivery";
  order["carrierTracking"]["trackingUpdates"].push_back(
      {{"message", "Out for delivery"},
       {"status", "out_for_delivery"},
       {"createdAt", updated.substr(0, 8) + "28T08:00:00.000Z"},
       {"source", "USPS"},
       {"trackingLocation", nullptr}});
  return order;
}

/// What the fake API serves; thread-safe (its handler runs on the server's thread).
class ScriptedApi {
 public:
  ScriptedApi() { Reset(); }
  /// Every order well-formed and as first served; no page override.
  void Reset() {
    std::lock_guard lock(mutex_);
    page_.reset();
    for (int i = 0; i < kOrders; ++i) {
      list_[IdOf(i)] = get_[IdOf(i)] = Letter(i).dump();
    }
  }
  void SetOrder(const std::string& id, const std::string& in_list, const std::string& on_get) {
    std::lock_guard lock(mutex_);
    list_[id] = in_list;
    get_[id] = on_get;
  }
  void SetPage(std::string body) {
    std::lock_guard lock(mutex_);
    page_ = std::move(body);
  }
  FakeResponse Answer(const FakeRequest& request) {
    std::lock_guard lock(mutex_);
    const std::string path = postgrid::testing::PathOf(request.target);
    const std::string prefix = std::string(FakePostGrid::kPrefix) + "/letters";
    FakeResponse response;
    response.headers = {{"Content-Type", "application/json"}};
    if (request.method == "GET" && path == prefix) {
      if (page_) {
        response.body = *page_;
        return response;
      }
      const std::string skip_text = postgrid::testing::QueryParam(request.target, "skip");
      const std::size_t skip = skip_text.empty() ? 0 : std::stoul(skip_text);
      const std::string limit_text = postgrid::testing::QueryParam(request.target, "limit");
      const std::size_t limit = limit_text.empty() ? 10 : std::stoul(limit_text);
      // Newest first, like PostGrid: ids sort by creation day here.
      std::vector<std::string> ids;
      for (auto it = list_.rbegin(); it != list_.rend(); ++it) ids.push_back(it->first);
      std::string body = "{\"object\":\"list\",\"limit\":" + std::to_string(limit) +
                         ",\"skip\":" + std::to_string(skip) +
                         ",\"totalCount\":" + std::to_string(ids.size()) + ",\"data\":[";
      for (std::size_t i = skip; i < ids.size() && i < skip + limit; ++i) {
        body += (i == skip ? "" : ",") + list_.at(ids[i]);
      }
      response.body = body + "]}";
      return response;
    }
    if (request.method == "GET" && path.rfind(prefix + "/", 0) == 0) {
      const auto it = get_.find(path.substr(prefix.size() + 1));
      if (it != get_.end()) {
        response.body = it->second;
        return response;
      }
    }
    response.status = 404;
    response.body =
        R"({"object":"error","error":{"type":"not_found_error","message":"no such thing"}})";
    return response;
  }

 private:
  std::mutex mutex_;
  std::map<std::string, std::string> list_;  // id -> the text in list pages
  std::map<std::string, std::string> get_;   // id -> the text GET /letters/{id} answers
  std::optional<std::string> page_;          // replaces the whole list answer
};

/// Everything stored about the orders, as comparable text.
struct Stored {
  std::map<std::string, std::string> orders;  // id -> the tracked columns
  std::map<long, std::string> changes;        // order_changes id -> the row
  std::multiset<std::string> events;          // carrier_tracking_events rows
};

Stored ReadStored(const std::string& dsn) {
  pqxx::connection connection(dsn);
  pqxx::read_transaction tx(connection);
  Stored stored;
  for (const auto& row :
       tx.exec("SELECT id, concat_ws('|', status, imb_status, tracking_number, carrier, "
               "carrier_status, carrier_status_detail, est_delivery_date, signed_by, updated_at, "
               "md5(description), md5(raw::text), terminal) FROM mailtrail.orders")) {
    stored.orders[row[0].c_str()] = row[1].c_str();
  }
  for (const auto& row :
       tx.exec("SELECT id, concat_ws('|', order_id, field, old_value, new_value, source) FROM "
               "mailtrail.order_changes")) {
    stored.changes[row[0].as<long>()] = row[1].c_str();
  }
  for (const auto& row : tx.exec("SELECT concat_ws('|', order_id, occurred_at, status, message) "
                                 "FROM mailtrail.carrier_tracking_events")) {
    stored.events.insert(row[0].c_str());
  }
  return stored;
}

enum class Where {
  kListed,     // the bad order is in the list page (and GET answers the same)
  kRetrieved,  // the list shows the stored order unchanged; GET answers badly (the order is due)
  kPage,       // the whole list answer is bad
};

/// One row of the README's table.
struct BadApiRow {
  std::string name;
  Where where;
  std::function<std::string(json order)> bad;  // the target order (or the page) as served
  int exit_code;
  std::string message;         // a substring of what `sync --once` prints
  bool stored;                 // the bad order is recorded (else its stored state is untouched)
  bool witness_lands;          // the witness's genuine change is recorded in the same pass
  std::string check_sql = "";  // when stored: a query that must answer true
};

std::ostream& operator<<(std::ostream& out, const BadApiRow& row) { return out << row.name; }

std::string WithInvalidUtf8(json order) {
  order["description"] = "@@BAD@@";
  order["updatedAt"] = "2026-02-27T10:00:00.000Z";
  std::string text = order.dump();
  text.replace(text.find("@@BAD@@"), 7, "caf\xc3 \xff\xfe end");
  return text;
}

std::string Bumped(json order) {
  order["updatedAt"] = "2026-02-27T10:00:00.000Z";
  return order.dump();
}

const BadApiRow kRows[] = {
    // The page is fetched again in parts: only the unreadable order is missed (and reported).
    {"InvalidUtf8InAListedOrder", Where::kListed, WithInvalidUtf8, 1,
     "1 order(s) could not be read (response body is not valid JSON) at positions", false, true},
    {"InvalidUtf8InARetrievedOrder", Where::kRetrieved, WithInvalidUtf8, 1, "not valid JSON", false,
     true},
    {"NulCharacterInAString", Where::kListed,
     [](json order) {
       order["description"] = std::string("nul\0inside", 10);
       return Bumped(order);
     },
     // jsonb refuses \u0000: that order is not recorded (the rest of the page is).
     1, "unsupported Unicode escape sequence", false, true},
    {"TenMegabyteDescription", Where::kListed,
     [](json order) {
       order["description"] = std::string(10 * 1024 * 1024, 'd');
       return Bumped(order);
     },
     0, "", true, true,
     "SELECT length(description) = 10485760 FROM mailtrail.orders WHERE id = '" + IdOf(kTarget) +
         "'"},
    {"HundredThousandTrackingUpdates", Where::kRetrieved,
     [](json order) {
       auto& updates = order["carrierTracking"]["trackingUpdates"];
       for (int i = 0; i < 100000; ++i) {
         updates.push_back({{"message", "scan " + std::to_string(i)},
                            {"status", "in_transit"},
                            {"createdAt", "2026-02-20T10:00:00.000Z"},
                            {"source", "USPS"},
                            {"trackingLocation", nullptr}});
       }
       return Bumped(order);
     },
     0, "", true, true,
     "SELECT count(*) = 100001 FROM mailtrail.carrier_tracking_events WHERE order_id = '" +
         IdOf(kTarget) + "'"},
    {"OrderOverTheResponseSizeCap", Where::kRetrieved,
     [](json order) {
       order["description"] = std::string(17 * 1024 * 1024, 'd');
       return Bumped(order);
     },
     1, "body", false, true},
    {"UnknownEnumValues", Where::kListed,
     [](json order) {
       order["status"] = "teleported";
       order["imbStatus"] = "in_process";
       order["carrierTracking"]["status"] = "held_for_review";
       order["carrierTracking"]["statusDetail"] = "customs_review";
       order["carrierTracking"]["trackingUpdates"][0]["status"] = "held_for_review";
       return Bumped(order);
     },
     0, "", true, true,
     "SELECT status = 'teleported' AND imb_status = 'in_process' AND carrier_status = "
     "'held_for_review' AND carrier_status_detail = 'customs_review' FROM mailtrail.orders "
     "WHERE id = '" +
         IdOf(kTarget) + "'"},
    {"StatusIsANumber", Where::kListed,
     [](json order) {
       order["status"] = 42;
       return Bumped(order);
     },
     1, "status", false, true},
    {"UpdatedAtIsABoolean", Where::kListed,
     [](json order) {
       order["updatedAt"] = true;
       return order.dump();
     },
     1, "updatedAt", false, true},
    {"TrackingUpdatesIsAString", Where::kListed,
     [](json order) {
       order["carrierTracking"]["trackingUpdates"] = "none";
       return Bumped(order);
     },
     1, "trackingUpdates", false, true},
    {"TimestampNotADate", Where::kRetrieved,
     [](json order) {
       order["carrierTracking"]["trackingUpdates"][0]["createdAt"] = "yesterday";
       return Bumped(order);
     },
     1, "createdAt", false, true},
    {"NumberBeyondADouble", Where::kListed,
     [](json order) {
       order["updatedAt"] = "2026-02-27T10:00:00.000Z";
       std::string text = order.dump();
       text.replace(text.find("\"pageCount\":1"), 13, "\"pageCount\":1e400");
       return text;
     },
     1, "could not be read", false, true},
    {"MetadataNestedTenThousandDeep", Where::kListed,
     [](json order) {
       order["metadata"] = "@@DEEP@@";
       order["updatedAt"] = "2026-02-27T10:00:00.000Z";
       std::string text = order.dump();
       std::string deep;
       for (int i = 0; i < 10000; ++i) deep += "{\"a\":";
       deep += "1" + std::string(10000, '}');
       text.replace(text.find("\"@@DEEP@@\""), 10, deep);
       return text;
     },
     0, "", true, true,
     "SELECT updated_at = '2026-02-27T10:00:00Z' FROM mailtrail.orders WHERE id = '" +
         IdOf(kTarget) + "'"},
    {"ListDataIsAnObject", Where::kPage,
     [](json) { return std::string(R"({"object":"list","totalCount":1,"data":{}})"); }, 1, "data",
     false, false},
    {"ListIsHtml", Where::kPage,
     [](json) { return std::string("<html><body>Bad gateway</body></html>"); }, 1, "JSON", false,
     false},
    {"ListIsTruncated", Where::kPage,
     [](json order) {
       const std::string text = "{\"object\":\"list\",\"data\":[" + order.dump() + "]}";
       return text.substr(0, text.size() / 2);
     },
     1, "", false, false},
};

class BadApiInputTest : public ::testing::TestWithParam<BadApiRow> {
 protected:
  void SetUp() override {
    ::unsetenv("MAILTRAIL_POSTGRID_API_KEY");
    ::unsetenv("MAILTRAIL_DATABASE_URL");
    ::unsetenv("MAILTRAIL_WEBHOOK_SECRETS");
    MailtrailConfig config;
    config.api_url = api_.base_url();
    config.api_key = "live_sk_badinput";
    config.database_url = database_.dsn();
    config.order_types = "[letters]";
    config.timeout = "10s";
    config_path_ = dir_.Write("mailtrail.yaml", config.Yaml()).string();
  }

  CommandResult SyncOnce() {
    return RunMailtrail({"sync", "--once", "--config", config_path_}, 300s);
  }

  mailtrail::testing::TestDatabase database_;
  ScriptedApi script_;
  FakePostGrid api_{[this](const FakeRequest& request) { return script_.Answer(request); }};
  TempDir dir_;
  std::string config_path_;
};

TEST_P(BadApiInputTest, GetsWhatTheTableSaysAndLosesNothing) {
  const BadApiRow& row = GetParam();
  const CommandResult first = SyncOnce();
  ASSERT_EQ(first.exit_code, 0) << first.output;
  const Stored before = ReadStored(database_.dsn());
  ASSERT_EQ(before.orders.size(), static_cast<std::size_t>(kOrders)) << first.output;
  ASSERT_EQ(before.events.size(), static_cast<std::size_t>(kOrders));

  // The witness changes genuinely; the target goes bad.
  const std::string witness = IdOf(kWitness);
  const std::string target = IdOf(kTarget);
  const std::string witness_next = NextDay(Letter(kWitness)).dump();
  script_.SetOrder(witness, witness_next, witness_next);
  const std::string bad = row.bad(Letter(kTarget));
  switch (row.where) {
    case Where::kListed:
      script_.SetOrder(target, bad, bad);
      break;
    case Where::kRetrieved: {
      script_.SetOrder(target, Letter(kTarget).dump(), bad);
      pqxx::connection connection(database_.dsn());
      pqxx::work tx(connection);
      tx.exec_params(
          "UPDATE mailtrail.orders SET next_check_at = now() - interval '1 minute' "
          "WHERE id = $1",
          target);
      tx.commit();
      break;
    }
    case Where::kPage:
      script_.SetPage(bad);
      break;
  }

  const CommandResult second = SyncOnce();
  EXPECT_EQ(second.exit_code, row.exit_code) << second.output;
  EXPECT_NE(second.output.find(row.message), std::string::npos)
      << "expected \"" << row.message << "\" in:\n"
      << second.output.substr(0, 4000);
  EXPECT_LT(second.output.size(), 64u * 1024) << "the error must not echo the absurd input";

  const Stored after = ReadStored(database_.dsn());
  // Nothing stored is lost: every earlier change row is still there, unchanged.
  for (const auto& [id, text] : before.changes) {
    const auto it = after.changes.find(id);
    ASSERT_NE(it, after.changes.end()) << "order_changes row " << id << " lost: " << text;
    EXPECT_EQ(it->second, text);
  }
  for (const auto& event : before.events) {
    EXPECT_EQ(after.events.count(event), before.events.count(event)) << "lost event " << event;
  }
  // Orders that were neither bad nor changed are exactly as before.
  for (const auto& [id, text] : before.orders) {
    if (id == target || id == witness) continue;
    EXPECT_EQ(after.orders.at(id), text) << id;
  }
  // The bad order: stored per the row's rule, or untouched.
  if (row.stored) {
    EXPECT_NE(after.orders.at(target), before.orders.at(target)) << "the order was not recorded";
    ASSERT_FALSE(row.check_sql.empty());
    pqxx::connection connection(database_.dsn());
    pqxx::read_transaction tx(connection);
    const auto result = tx.exec(row.check_sql);
    ASSERT_EQ(result.size(), 1u);
    EXPECT_TRUE(result[0][0].as<bool>()) << row.check_sql;
  } else {
    EXPECT_EQ(after.orders.at(target), before.orders.at(target)) << "a refused order changed";
    for (const auto& [id, text] : after.changes) {
      if (before.changes.count(id) == 0) {
        EXPECT_EQ(text.rfind(target + "|", 0), std::string::npos) << "refused order wrote " << text;
      }
    }
  }
  // The witness on the same page: its genuine change lands unless the whole page was refused.
  const bool witness_changed = after.orders.at(witness) != before.orders.at(witness);
  EXPECT_EQ(witness_changed, row.witness_lands);
  if (row.witness_lands) {
    EXPECT_EQ(Count(database_.dsn(),
                    "SELECT count(*) FROM mailtrail.order_changes WHERE "
                    "order_id = '" +
                        witness + "' AND new_value = 'out_for_delivery'"),
              2)
        << "carrier_status and carrier_status_detail";
  }

  // When the API is fixed, the next pass catches up with everything (nothing was skipped for
  // good) and writes no duplicate.
  script_.Reset();
  const std::string target_next = NextDay(Letter(kTarget)).dump();
  script_.SetOrder(target, target_next, target_next);
  script_.SetOrder(witness, witness_next, witness_next);
  const CommandResult third = SyncOnce();
  EXPECT_EQ(third.exit_code, 0) << third.output;
  EXPECT_EQ(Count(database_.dsn(),
                  "SELECT count(*) FROM (SELECT order_id, field, old_value, new_value FROM "
                  "mailtrail.order_changes GROUP BY 1, 2, 3, 4 HAVING count(*) > 1) AS d"),
            0);
  EXPECT_EQ(Count(database_.dsn(),
                  "SELECT count(*) FROM mailtrail.order_changes WHERE "
                  "order_id = '" +
                      witness + "' AND new_value = 'out_for_delivery'"),
            2);
}

INSTANTIATE_TEST_SUITE_P(BadApiInput, BadApiInputTest, ::testing::ValuesIn(kRows),
                         [](const auto& info) { return info.param.name; });

// ---- webhook bodies ------------------------------------------------------------------------

constexpr const char* kSecret = "whsec_bad_input_e2e_0123456789";
constexpr const char* kPath = "/webhooks/postgrid";

std::string HmacHex(const std::string& key, const std::string& message) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
       reinterpret_cast<const unsigned char*>(message.data()), message.size(), digest, &length);
  static const char* kHex = "0123456789abcdef";
  std::string hex;
  for (unsigned int i = 0; i < length; ++i) {
    hex += kHex[digest[i] >> 4];
    hex += kHex[digest[i] & 15];
  }
  return hex;
}

std::string Base64Url(const std::string& data) {
  static const char* kAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  std::string out;
  std::size_t i = 0;
  for (; i + 2 < data.size(); i += 3) {
    const unsigned v = (static_cast<unsigned char>(data[i]) << 16) |
                       (static_cast<unsigned char>(data[i + 1]) << 8) |
                       static_cast<unsigned char>(data[i + 2]);
    for (int s = 18; s >= 0; s -= 6) out += kAlphabet[(v >> s) & 63];
  }
  if (i + 1 == data.size()) {
    const unsigned v = static_cast<unsigned char>(data[i]) << 16;
    out += kAlphabet[(v >> 18) & 63];
    out += kAlphabet[(v >> 12) & 63];
  } else if (i + 2 == data.size()) {
    const unsigned v = (static_cast<unsigned char>(data[i]) << 16) |
                       (static_cast<unsigned char>(data[i + 1]) << 8);
    out += kAlphabet[(v >> 18) & 63];
    out += kAlphabet[(v >> 12) & 63];
    out += kAlphabet[(v >> 6) & 63];
  }
  return out;
}

std::string NowMs() {
  return std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(
                            std::chrono::system_clock::now().time_since_epoch())
                            .count());
}

/// One odd delivery and what it must get.
struct BadDelivery {
  std::string name;
  std::function<std::pair<std::string, sim::testing::Headers>(const std::string& order_id)> make;
  int status;
  std::string reason;  // the recorded rejection_reason ("" = verified)
};

class BadWebhookInputTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ::unsetenv("MAILTRAIL_POSTGRID_API_KEY");
    ::unsetenv("MAILTRAIL_DATABASE_URL");
    ::unsetenv("MAILTRAIL_WEBHOOK_SECRETS");
  }
  std::uint16_t webhook_port_ = FreePort();
  std::uint16_t metrics_port_ = FreePort();
  TempDir dir_;
};

// Signed and unsigned bodies with invalid UTF-8, a NUL escape, a lone surrogate, and a JWT whose
// claims are not UTF-8: each gets its code, is recorded (refused ones with verified = false and
// a readable payload), changes no order, and the listener goes on accepting genuine deliveries.
TEST_F(BadWebhookInputTest, InvalidUtf8AndOddEscapesGetTheirCodesAndChangeNothing) {
  mailtrail::testing::TestDatabase database;
  sim::testing::SimProcess sim({"--orders", "10", "--seed", "77", "--paused", "--history-days", "2",
                                "--live-fraction", "1", "--start", "2026-03-10T15:00:00.000Z"});
  const auto world = SimOrders(sim, true);
  ASSERT_FALSE(world.empty());
  const std::string id = world.begin()->first;
  MailtrailConfig config;
  config.api_url = sim.api_url();
  config.api_key = "live_sk_sim";
  config.database_url = database.dsn();
  config.interval = "1h";
  config.carrier_interval = "1h";
  config.discovery_interval = "1h";
  config.full_scan_interval = "1h";
  config.webhook_port = webhook_port_;
  config.metrics_port = metrics_port_;
  config.secrets = {kSecret};
  const auto config_path = dir_.Write("mailtrail.yaml", config.Yaml());
  DaemonProcess daemon({"run", "--config", config_path.string()}, dir_.path() / "daemon.log");
  ASSERT_TRUE(WaitUntil(
      [&] {
        return Count(database.dsn(), "SELECT count(*) FROM mailtrail.orders") ==
               static_cast<long>(world.size());
      },
      60s))
      << daemon.Log();
  ASSERT_TRUE(WaitForApiQuiet(sim, 1500ms, 30s));
  const Stored before = ReadStored(database.dsn());

  const auto signed_json = [](const std::string& body) {
    const std::string t = NowMs();
    return std::make_pair(
        body, sim::testing::Headers{
                  {"Content-Type", "application/json"},
                  {"PostGrid-Signature", "t=" + t + ",v1=" + HmacHex(kSecret, t + "." + body)}});
  };
  const auto event = [](const std::string& order_id, const std::string& description) {
    return "{\"id\":\"event_badinput\",\"object\":\"event\",\"type\":\"letter.updated\","
           "\"live\":true,\"data\":{\"id\":\"" +
           order_id + "\",\"object\":\"letter\",\"description\":\"" + description + "\"}}";
  };
  const std::vector<BadDelivery> deliveries = {
      {"signed JSON with invalid UTF-8",
       [&](const std::string& order_id) {
         return signed_json(event(order_id, "caf\xc3 \xff\xfe"));
       },
       400, "not_json"},
      {"signed JSON with a lone surrogate escape",
       [&](const std::string& order_id) { return signed_json(event(order_id, "\\ud800x")); }, 400,
       "not_json"},
      {"unsigned body with invalid UTF-8",
       [&](const std::string&) {
         return std::make_pair(std::string("\xff\xfe\x00garbage", 10),
                               sim::testing::Headers{{"Content-Type", "application/json"}});
       },
       400, "missing_signature"},
      {"forged signature over invalid UTF-8",
       [&](const std::string& order_id) {
         auto [body, headers] = signed_json(event(order_id, "\xff"));
         headers[1].second = "t=" + NowMs() + ",v1=" + std::string(64, 'a');
         return std::make_pair(body, headers);
       },
       401, "bad_signature"},
      {"signed JWT whose claims are not UTF-8",
       [&](const std::string& order_id) {
         const std::string head = Base64Url(R"({"alg":"HS256","typ":"JWT"})");
         const std::string claims =
             Base64Url("{\"type\":\"letter.updated\",\"iat\":" + NowMs().substr(0, 10) +
                       ",\"data\":{\"id\":\"" + order_id + "\",\"description\":\"\xff\xfe\"}}");
         const std::string signing_input = head + "." + claims;
         std::string hex = HmacHex(kSecret, signing_input);
         std::string raw;
         for (std::size_t i = 0; i < hex.size(); i += 2) {
           raw += static_cast<char>(std::stoi(hex.substr(i, 2), nullptr, 16));
         }
         return std::make_pair(signing_input + "." + Base64Url(raw),
                               sim::testing::Headers{{"Content-Type", "application/jwt"}});
       },
       400, ""},
      // Valid JSON that PostgreSQL's jsonb refuses (\u0000): verified, so it must be recorded
      // (200) and must not be a delivery PostGrid retries forever.
      {"signed JSON with a NUL escape",
       [&](const std::string& order_id) { return signed_json(event(order_id, "nul\\u0000x")); },
       200, ""},
  };
  long recorded = 0;
  for (const auto& delivery : deliveries) {
    SCOPED_TRACE(delivery.name);
    const auto [body, headers] = delivery.make(id);
    const auto answer =
        sim::testing::HttpRequest("127.0.0.1", webhook_port_, "POST", kPath, body, headers);
    EXPECT_EQ(answer.status, delivery.status) << answer.body << answer.error;
    if (!delivery.reason.empty()) {
      EXPECT_NE(answer.body.find(delivery.reason), std::string::npos) << answer.body;
    }
    ++recorded;
    EXPECT_TRUE(WaitUntil(
        [&] {
          return Count(database.dsn(), "SELECT count(*) FROM mailtrail.webhook_deliveries") ==
                 recorded;
        },
        10s))
        << "every delivery is recorded";
    if (!delivery.reason.empty()) {
      EXPECT_EQ(Count(database.dsn(),
                      "SELECT count(*) FROM mailtrail.webhook_deliveries WHERE id = (SELECT "
                      "max(id) FROM mailtrail.webhook_deliveries) AND NOT verified AND "
                      "processed_at IS NULL AND rejection_reason = '" +
                          delivery.reason + "'"),
                1)
          << "recorded refused, with its reason, never processed";
    }
  }
  // A header over the listener's 16 KiB limit: 400 before any body is read, nothing recorded.
  // (The sender may still be writing when the listener closes: a reset also means refused.)
  const auto big_header = sim::testing::HttpRequest("127.0.0.1", webhook_port_, "POST", kPath, "{}",
                                                    {{"X-Padding", std::string(20000, 'h')}});
  EXPECT_TRUE(
      big_header.status == 400 ||
      (big_header.status == 0 && (big_header.error.find("reset") != std::string::npos ||
                                  big_header.error.find("Broken pipe") != std::string::npos)))
      << big_header.status << " " << big_header.error << " " << big_header.body;
  EXPECT_EQ(Count(database.dsn(), "SELECT count(*) FROM mailtrail.webhook_deliveries"), recorded);

  // Nothing stored changed, and only the verified delivery made mailtrail ask the API.
  std::this_thread::sleep_for(1s);
  // (The verified NUL-escape delivery refreshes its order, which re-stores the same state.)
  const Stored after = ReadStored(database.dsn());
  EXPECT_EQ(after.changes, before.changes);
  EXPECT_EQ(after.events, before.events);
  EXPECT_EQ(Count(database.dsn(),
                  "SELECT count(*) FROM mailtrail.webhook_deliveries WHERE NOT "
                  "verified AND processed_at IS NOT NULL"),
            0)
      << "a refused delivery must trigger nothing";

  // Still serving: a genuine delivery is answered 200 and recorded verified.
  const json valid = PostJson(sim, "/__sim/webhooks/forge",
                              {{"url", "http://127.0.0.1:" + std::to_string(webhook_port_) + kPath},
                               {"secret", kSecret},
                               {"kind", "valid"},
                               {"format", "jwt"},
                               {"orderId", id}});
  EXPECT_EQ(valid["statusCode"], 200) << valid.dump();
  EXPECT_TRUE(daemon.running());
  EXPECT_EQ(daemon.Terminate(15s), 0) << daemon.Log();
}

}  // namespace
}  // namespace mailtrail::e2e
