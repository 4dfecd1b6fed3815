// Secrets never leak (issue 9, Security): the API key, both webhook secrets and the database
// password are distinctive strings; mailtrail is run through everything that prints (the daemon
// at trace level doing a full scan, genuine and forged webhooks, an oversize body, a /metrics,
// /healthz and /readyz scrape; sync --once, status, history, check-config; a wrong API key; an
// unreachable database; a bad config next to the secrets; secrets from the environment), and
// everything it printed is searched for each secret and for a fragment of it.
#include <gtest/gtest.h>

#include <cstdlib>
#include <nlohmann/json.hpp>
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

// Each has a unique core ("Qx7...") that is searched for too, so a cut or re-quoted echo of the
// secret is caught, not only a verbatim one.
constexpr const char* kApiKey = "live_sk_Qx7apiKEYzz41secret";
constexpr const char* kWrongKey = "live_sk_Qx7wrongKEYzz52secret";
constexpr const char* kJwtSecret = "whsec_Qx7jwtSECRETzz63abcdef";
constexpr const char* kJsonSecret = "whsec_Qx7jsonSECRETzz74abcdef";
constexpr const char* kDbPassword = "pw_Qx7dbPASSWORDzz85";
constexpr const char* kPath = "/webhooks/postgrid";

/// The secrets and, for each, its distinctive fragments.
std::vector<std::string> Needles() {
  return {kApiKey,      kWrongKey,     kJwtSecret,     kJsonSecret,     kDbPassword,
          "Qx7apiKEY",  "Qx7wrongKEY", "Qx7jwtSECRET", "Qx7jsonSECRET", "Qx7dbPASSWORD",
          "zz41secret", "zz52secret",  "zz63abcdef",   "zz74abcdef",    "zz85"};
}

/// What was printed, labelled by where it came from.
struct Transcript {
  std::vector<std::pair<std::string, std::string>> parts;  // source, text
  void Add(const std::string& source, const std::string& text) { parts.emplace_back(source, text); }
  std::size_t bytes() const {
    std::size_t n = 0;
    for (const auto& [source, text] : parts) n += text.size();
    return n;
  }
};

/// Every place a needle occurs: "source: ...context...".
std::vector<std::string> FindLeaks(const Transcript& transcript,
                                   const std::vector<std::string>& needles) {
  std::vector<std::string> leaks;
  for (const auto& [source, text] : transcript.parts) {
    for (const auto& needle : needles) {
      for (auto at = text.find(needle); at != std::string::npos; at = text.find(needle, at + 1)) {
        const auto from = at < 60 ? 0 : at - 60;
        leaks.push_back(source + ": \"" + needle + "\" in ..." + text.substr(from, 160) + "...");
      }
    }
  }
  return leaks;
}

// The checker itself: a secret planted in one part is found with its source, a clean transcript
// gives nothing. (Without this the test below could pass by searching nothing.)
TEST(SecretLeakFinder, FindsAPlantedSecretAndItsFragments) {
  Transcript transcript;
  transcript.Add("clean", "mailtrail: postgrid.api_key: must not be empty\nwebhook: refused");
  EXPECT_TRUE(FindLeaks(transcript, Needles()).empty());
  transcript.Add("planted", std::string("GET /letters X-API-Key: ") + kApiKey + "\n");
  transcript.Add("cut", "url postgresql://postgres:***Qx7dbPASSWORD@127.0.0.1/x");
  const auto leaks = FindLeaks(transcript, Needles());
  ASSERT_FALSE(leaks.empty());
  EXPECT_NE(leaks.front().find("planted"), std::string::npos) << leaks.front();
  bool cut_found = false;
  for (const auto& leak : leaks) cut_found = cut_found || leak.rfind("cut:", 0) == 0;
  EXPECT_TRUE(cut_found) << "a fragment of the password must be found too";
}

class SecretsE2eTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ::unsetenv("MAILTRAIL_POSTGRID_API_KEY");
    ::unsetenv("MAILTRAIL_DATABASE_URL");
    ::unsetenv("MAILTRAIL_WEBHOOK_SECRETS");
  }
  void TearDown() override {
    ::unsetenv("MAILTRAIL_POSTGRID_API_KEY");
    ::unsetenv("MAILTRAIL_DATABASE_URL");
    ::unsetenv("MAILTRAIL_WEBHOOK_SECRETS");
  }

  /// Runs `mailtrail args... --config path` and keeps what it printed.
  CommandResult Run(const std::string& label, std::vector<std::string> args,
                    const std::string& config_path) {
    args.push_back("--config");
    args.push_back(config_path);
    CommandResult result = RunMailtrail(args, 120s);
    transcript_.Add(label + " (exit " + std::to_string(result.exit_code) + ")", result.output);
    return result;
  }

  std::string webhook_url() const {
    return "http://127.0.0.1:" + std::to_string(webhook_port_) + kPath;
  }

  std::uint16_t webhook_port_ = FreePort();
  std::uint16_t metrics_port_ = FreePort();
  TempDir dir_;
  Transcript transcript_;
};

TEST_F(SecretsE2eTest, NoSecretAppearsInAnythingMailtrailPrints) {
  mailtrail::testing::TestDatabase database;
  const std::string dsn = WithPassword(database.dsn(), kDbPassword);
  ASSERT_NE(dsn.find(kDbPassword), std::string::npos) << dsn;
  SimProcess sim({"--orders",
                  "40",
                  "--seed",
                  "4242",
                  "--paused",
                  "--history-days",
                  "3",
                  "--live-fraction",
                  "1",
                  "--start",
                  "2026-03-10T15:00:00.000Z",
                  "--live-key",
                  kApiKey,
                  "--unknown-enum-rate",
                  "0.2",
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
  ASSERT_FALSE(world.empty());

  MailtrailConfig config;
  config.api_url = sim.api_url();
  config.api_key = kApiKey;
  config.database_url = dsn;
  config.interval = "1h";
  config.carrier_interval = "1h";
  config.discovery_interval = "1h";
  config.full_scan_interval = "1h";
  config.webhook_port = webhook_port_;
  config.metrics_port = metrics_port_;
  config.secrets = {kJwtSecret, kJsonSecret};
  config.log_level = "trace";
  const std::string good = dir_.Write("good.yaml", config.Yaml()).string();

  // ---- commands with a good config --------------------------------------------------------
  EXPECT_EQ(Run("check-config", {"check-config"}, good).exit_code, 0);
  EXPECT_EQ(Run("migrate", {"migrate"}, good).exit_code, 0);
  EXPECT_EQ(Run("sync --once", {"sync", "--once"}, good).exit_code, 0);

  // ---- the daemon: full scan, genuine deliveries in both formats, forgeries, scrapes -------
  {
    DaemonProcess daemon({"run", "--config", good}, dir_.path() / "daemon.log");
    ASSERT_TRUE(WaitUntil([&] { return LocalGet(metrics_port_, "/readyz").status == 200; }, 60s))
        << daemon.Log();
    ASSERT_TRUE(WaitForApiQuiet(sim, 1500ms, 30s));
    int stepped = 0;
    for (const auto& [id, order] : world) {
      if (stepped == 10) break;
      if (sim.Post("/__sim/orders/" + id + "/step").status == 200) ++stepped;
    }
    ASSERT_GT(stepped, 0);
    const std::string id = world.begin()->first;
    for (const std::string kind : {"wrong_secret", "alg_none", "alg_hs512", "expired", "future",
                                   "modified_body", "truncated_token", "missing_header"}) {
      for (const std::string format : {"jwt", "json"}) {
        const json sent = PostJson(sim, "/__sim/webhooks/forge",
                                   {{"url", webhook_url()},
                                    {"secret", kJwtSecret},
                                    {"kind", kind},
                                    {"format", format},
                                    {"orderId", id},
                                    {"age", "1h"}});
        // Their codes are proved in tests/e2e/webhook; here only what is printed matters.
        transcript_.Add("webhook answer to " + kind + "/" + format, sent.value("responseBody", ""));
      }
    }
    PostJson(sim, "/__sim/webhooks/forge",
             {{"url", webhook_url()}, {"secret", kJwtSecret}, {"kind", "oversize"}});
    const json valid = PostJson(sim, "/__sim/webhooks/forge",
                                {{"url", webhook_url()},
                                 {"secret", kJsonSecret},
                                 {"kind", "valid"},
                                 {"format", "json"},
                                 {"orderId", id}});
    EXPECT_EQ(valid["statusCode"], 200) << valid.dump();
    transcript_.Add("webhook answer to valid", valid.value("responseBody", ""));
    ASSERT_TRUE(WaitUntil(
        [&] {
          return Count(dsn,
                       "SELECT count(*) FROM mailtrail.webhook_deliveries WHERE verified AND "
                       "processed_at IS NOT NULL") >= stepped;
        },
        30s))
        << daemon.Log();
    ASSERT_GT(Count(dsn, "SELECT count(*) FROM mailtrail.webhook_deliveries WHERE NOT verified"),
              10);
    for (const std::string target : {"/metrics", "/healthz", "/readyz", "/nope"}) {
      const auto scrape = LocalGet(metrics_port_, target);
      transcript_.Add("GET " + target, scrape.body);
    }
    const auto stray = sim::testing::HttpRequest("127.0.0.1", webhook_port_, "GET", kPath);
    transcript_.Add("GET on the webhook path", stray.body);
    EXPECT_EQ(daemon.Terminate(15s), 0);
    transcript_.Add("daemon log", daemon.Log());
  }

  EXPECT_EQ(Run("status", {"status"}, good).exit_code, 0);
  EXPECT_EQ(Run("history", {"history", world.begin()->first}, good).exit_code, 0);
  Run("history of an unknown order", {"history", "letter_doesnotexist"}, good);
  Run("backfill", {"backfill", "--types", "letters"}, good);

  // ---- a wrong API key ----------------------------------------------------------------------
  MailtrailConfig wrong = config;
  wrong.api_key = kWrongKey;
  const std::string wrong_key = dir_.Write("wrong_key.yaml", wrong.Yaml()).string();
  EXPECT_NE(Run("check-config, wrong key", {"check-config"}, wrong_key).exit_code, 0);
  EXPECT_NE(Run("sync --once, wrong key", {"sync", "--once"}, wrong_key).exit_code, 0);
  EXPECT_NE(Run("progress, wrong key", {"progress", world.begin()->first}, wrong_key).exit_code, 0);
  {
    DaemonProcess daemon({"run", "--config", wrong_key}, dir_.path() / "daemon_wrong_key.log");
    std::this_thread::sleep_for(4s);
    transcript_.Add("GET /metrics, wrong key", LocalGet(metrics_port_, "/metrics").body);
    daemon.Terminate(15s);
    transcript_.Add("daemon log, wrong key", daemon.Log());
  }

  // ---- an unreachable database (password in the URL) ----------------------------------------
  MailtrailConfig unreachable = config;
  unreachable.database_url = "postgresql://mailtrail:" + std::string(kDbPassword) +
                             "@127.0.0.1:" + std::to_string(FreePort()) + "/mailtrail";
  const std::string no_db = dir_.Write("no_db.yaml", unreachable.Yaml()).string();
  EXPECT_NE(Run("check-config, no database", {"check-config"}, no_db).exit_code, 0);
  EXPECT_NE(Run("status, no database", {"status"}, no_db).exit_code, 0);
  EXPECT_NE(Run("sync --once, no database", {"sync", "--once"}, no_db).exit_code, 0);
  EXPECT_NE(Run("migrate, no database", {"migrate"}, no_db).exit_code, 0);
  EXPECT_NE(Run("history, no database", {"history", "letter_x"}, no_db).exit_code, 0);
  {
    DaemonProcess daemon({"run", "--config", no_db}, dir_.path() / "daemon_no_db.log");
    std::this_thread::sleep_for(4s);
    transcript_.Add("GET /readyz, no database", LocalGet(metrics_port_, "/readyz").body);
    transcript_.Add("GET /metrics, no database", LocalGet(metrics_port_, "/metrics").body);
    daemon.Terminate(15s);
    transcript_.Add("daemon log, no database", daemon.Log());
  }
  // Key-value DSN form too.
  unreachable.database_url = "'host=127.0.0.1 port=" + std::to_string(FreePort()) +
                             " user=mailtrail password=" + kDbPassword + " dbname=mailtrail'";
  const std::string no_db_kv = dir_.Write("no_db_kv.yaml", unreachable.Yaml()).string();
  EXPECT_NE(Run("check-config, no database (key=value)", {"check-config"}, no_db_kv).exit_code, 0);
  EXPECT_NE(Run("status, no database (key=value)", {"status"}, no_db_kv).exit_code, 0);

  // ---- a bad config next to the secrets ------------------------------------------------------
  const std::string typo = dir_.Write("typo.yaml", config.Yaml() + "polling: {}\n").string();
  EXPECT_EQ(Run("check-config, unknown key", {"check-config"}, typo).exit_code, 2);
  EXPECT_EQ(Run("run, unknown key", {"run"}, typo).exit_code, 2);
  const std::string scalar_secrets =
      dir_.Write("scalar_secrets.yaml",
                 "postgrid:\n  base_url: " + sim.api_url() + "\n  api_key: [" + kApiKey +
                     "]\ndatabase:\n  url: " + dsn + "\nwebhook:\n  secrets: " + kJwtSecret + "\n")
          .string();
  EXPECT_EQ(
      Run("check-config, secrets of the wrong type", {"check-config"}, scalar_secrets).exit_code,
      2);

  // ---- secrets from the environment only ----------------------------------------------------
  MailtrailConfig bare = config;
  bare.api_key.clear();
  bare.secrets.clear();
  bare.database_url = "postgresql://placeholder@127.0.0.1:1/none";
  const std::string env_config = dir_.Write("env.yaml", bare.Yaml()).string();
  ::setenv("MAILTRAIL_POSTGRID_API_KEY", kApiKey, 1);
  ::setenv("MAILTRAIL_DATABASE_URL", dsn.c_str(), 1);
  ::setenv("MAILTRAIL_WEBHOOK_SECRETS", (std::string(kJwtSecret) + "," + kJsonSecret).c_str(), 1);
  EXPECT_EQ(
      Run("check-config, secrets from the environment", {"check-config"}, env_config).exit_code, 0);
  EXPECT_EQ(Run("status, secrets from the environment", {"status"}, env_config).exit_code, 0);
  ::setenv("MAILTRAIL_WEBHOOK_SECRETS", (std::string(kJwtSecret) + ",,").c_str(), 1);
  EXPECT_EQ(Run("check-config, an empty secret in the environment", {"check-config"}, env_config)
                .exit_code,
            2);

  // ---- the search ----------------------------------------------------------------------------
  // The secrets really were in use: the API saw the key, the database holds verified rows.
  EXPECT_GT(GetJson(sim, "/__sim/stats")["total"].get<long>(), 0);
  EXPECT_GT(Count(dsn, "SELECT count(*) FROM mailtrail.webhook_deliveries WHERE verified"), 0);
  std::cout << "[ measured ] searched " << transcript_.parts.size() << " outputs, "
            << transcript_.bytes() << " bytes, for " << Needles().size()
            << " secrets and fragments\n";
  EXPECT_GT(transcript_.bytes(), 10000u) << "the daemon at trace level prints far more than this";
  const auto leaks = FindLeaks(transcript_, Needles());
  EXPECT_TRUE(leaks.empty()) << leaks.size() << " leaks, e.g.\n"
                             << (leaks.empty() ? "" : leaks.front())
                             << (leaks.size() > 1 ? "\n" + leaks[1] : "");
}

}  // namespace
}  // namespace mailtrail::e2e
