// The database is not there when `mailtrail run` starts (issue 9): the daemon keeps running,
// says why in its log and on /readyz, retries with growing pauses, and starts working once the
// database appears; `check-config` names what is wrong and exits 1 (contract.md).
#include <gtest/gtest.h>

#include <cstdlib>
#include <ctime>
#include <iostream>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <vector>

#include "e2e_world.hpp"
#include "fault_support.hpp"
#include "mailtrail_process.hpp"
#include "private_postgres.hpp"
#include "sim_process.hpp"

namespace mailtrail::e2e::faults {
namespace {

using sim::testing::SimProcess;

constexpr const char* kLiveKey = "live_sk_sim";
constexpr const char* kSecret = "whsec_faults_startup_e2e_0123456789";
constexpr const char* kDbPassword = "pw-startup-e2e-9f3c1d";

/// One "database not reachable" line of the daemon's log.
struct Attempt {
  double at = 0;              ///< seconds (UTC, from the line's timestamp)
  long announced_delay = -1;  ///< the "retrying in N ms" it announced
  std::string reason;
};

/// The daemon's start-up retries, from its text log ("2026-11-27T07:30:00.123Z warning ...").
/// libpq's messages span lines, so each attempt is read from its marker to "); retrying in ".
std::vector<Attempt> StartupAttempts(const std::string& log) {
  const std::string marker = "database not reachable (";
  const std::string retrying = "); retrying in ";
  std::vector<Attempt> attempts;
  for (auto at = log.find(marker); at != std::string::npos; at = log.find(marker, at + 1)) {
    const auto line_start = log.rfind('\n', at);
    const std::string stamp = log.substr(line_start == std::string::npos ? 0 : line_start + 1, 24);
    std::tm tm{};
    int millis = 0;
    if (std::sscanf(stamp.c_str(), "%4d-%2d-%2dT%2d:%2d:%2d.%3dZ", &tm.tm_year, &tm.tm_mon,
                    &tm.tm_mday, &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &millis) != 7) {
      continue;
    }
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    Attempt attempt;
    attempt.at = static_cast<double>(::timegm(&tm)) + millis / 1000.0;
    const auto end = log.find(retrying, at);
    if (end != std::string::npos) {
      attempt.reason = log.substr(at + marker.size(), end - at - marker.size());
      attempt.announced_delay = std::atol(log.c_str() + end + retrying.size());
    }
    attempts.push_back(attempt);
  }
  return attempts;
}

class StartupFaultsE2eTest : public ::testing::Test {
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

TEST_F(StartupFaultsE2eTest, RunWaitsWithBackoffAndStartsWhenTheDatabaseAppears) {
  PrivatePostgres postgres;
  postgres.Stop();
  const std::string webhook_url =
      "http://127.0.0.1:" + std::to_string(webhook_port_) + "/webhooks/postgrid";
  SimProcess sim({"--orders", "30", "--seed", "3131", "--paused", "--history-days", "0",
                  "--live-fraction", "1", "--start", "2026-03-10T15:00:00.000Z", "--webhook-url",
                  webhook_url, "--webhook-secret", kSecret, "--webhook-format", "jwt"});
  const auto world = SimOrders(sim, true);
  ASSERT_FALSE(world.empty());

  MailtrailConfig config;
  config.api_url = sim.api_url();
  config.api_key = kLiveKey;
  config.database_url = WithPassword(postgres.dsn(), kDbPassword);
  config.interval = config.carrier_interval = config.discovery_interval =
      config.full_scan_interval = "1h";
  config.webhook_port = webhook_port_;
  config.metrics_port = metrics_port_;
  config.secrets = {kSecret};
  const auto path = dir_.Write("mailtrail.yaml", config.Yaml());

  // check-config reports each part: the config and the API are fine, the database is not.
  {
    const auto check = RunMailtrail({"check-config", "--config", path.string()}, 60s);
    EXPECT_EQ(check.exit_code, 1) << check.output;
    EXPECT_NE(check.output.find("unreachable"), std::string::npos) << check.output;
    EXPECT_NE(check.output.find("Connection refused"), std::string::npos) << check.output;
    EXPECT_NE(check.output.find(":" + std::to_string(postgres.port())), std::string::npos)
        << "check-config should name the database it tried\n"
        << check.output;
    EXPECT_NE(check.output.find("key accepted"), std::string::npos)
        << "the API is reachable and should be reported so\n"
        << check.output;
    EXPECT_EQ(check.output.find(kDbPassword), std::string::npos) << check.output;
  }

  DaemonProcess daemon({"run", "--config", path.string()}, dir_.path() / "daemon.log");
  CpuMeter cpu(daemon.pid());
  // Long enough for four or five attempts with doubling pauses (0.5, 1, 2, 4 s).
  const auto started = std::chrono::steady_clock::now();
  int readyz_checks = 0, readyz_503 = 0;
  std::string reason;
  while (std::chrono::steady_clock::now() - started < 9s) {
    ASSERT_TRUE(daemon.running()) << "run must wait for the database, not exit\n" << daemon.Log();
    const auto readyz = LocalGet(metrics_port_, "/readyz");
    if (readyz.status != 0) {  // the metrics listener may not be up in the first moments
      ++readyz_checks;
      readyz_503 += readyz.status == 503;
      reason = readyz.body;
    }
    EXPECT_NE(readyz.status, 200) << "ready without a database";
    std::this_thread::sleep_for(500ms);
  }
  const double waiting_cpu = cpu.Share();
  EXPECT_GT(readyz_checks, 5);
  EXPECT_EQ(readyz_503, readyz_checks);
  EXPECT_NE(reason.find("database unreachable"), std::string::npos) << reason;
  EXPECT_NE(reason.find("Connection refused"), std::string::npos) << reason;
  EXPECT_LT(waiting_cpu, 0.30);

  const std::string waiting_log = daemon.Log();
  const auto attempts = StartupAttempts(waiting_log);
  ASSERT_GE(attempts.size(), 3u) << waiting_log;
  ASSERT_LE(attempts.size(), 6u) << "more attempts than a backoff allows in 9 s\n" << waiting_log;
  std::string spacing;
  for (std::size_t i = 0; i < attempts.size(); ++i) {
    EXPECT_NE(attempts[i].reason.find("Connection refused"), std::string::npos)
        << "attempt " << i << " should say why: " << attempts[i].reason;
    ASSERT_GT(attempts[i].announced_delay, 0) << waiting_log;
    if (i == 0) continue;
    EXPECT_GE(attempts[i].announced_delay, 2 * attempts[i - 1].announced_delay)
        << "the pauses should double\n"
        << waiting_log;
    // Each attempt came after the pause the previous one announced (log stamps are ms).
    const double gap = attempts[i].at - attempts[i - 1].at;
    EXPECT_GE(gap * 1000 + 5, static_cast<double>(attempts[i - 1].announced_delay))
        << "attempt " << i << " came " << gap << " s after the one before\n"
        << waiting_log;
    if (i >= 2) {
      EXPECT_GT(gap, attempts[i - 1].at - attempts[i - 2].at) << "attempts must space out";
    }
    spacing += (spacing.empty() ? "" : ", ") + std::to_string(static_cast<int>(gap * 1000)) + " ms";
  }
  EXPECT_EQ(waiting_log.find(kDbPassword), std::string::npos) << waiting_log;

  // The database appears: the daemon migrates, records the world and takes webhooks.
  postgres.Start();
  const auto appeared = std::chrono::steady_clock::now();
  const std::string dsn = postgres.dsn();
  ASSERT_TRUE(WaitUntil([&] { return LocalGet(metrics_port_, "/readyz").status == 200; }, 45s))
      << daemon.Log();
  const auto ready_after = std::chrono::steady_clock::now() - appeared;
  ASSERT_TRUE(WaitForOrderCount(dsn, world.size(), 60s)) << daemon.Log();
  ASSERT_TRUE(WaitForApiQuiet(sim, 1500ms, 30s)) << daemon.Log();
  std::set<std::string> active;
  for (const auto& [id, order] : world) active.insert(id);
  for (int round = 0; round < 3; ++round) {
    ASSERT_GT(StepAll(sim, active), 0u);
    const auto diverging = WaitConverged(dsn, sim, 30s);
    ASSERT_TRUE(diverging.empty())
        << diverging.size() << " orders differ, e.g. " << diverging[0] << "\n"
        << daemon.Log();
  }

  // check-config now finds everything in order.
  {
    const auto check = RunMailtrail({"check-config", "--config", path.string()}, 60s);
    EXPECT_EQ(check.exit_code, 0) << check.output;
    EXPECT_NE(check.output.find("reachable (PostgreSQL"), std::string::npos) << check.output;
    EXPECT_NE(check.output.find(" 0 pending"), std::string::npos) << check.output;
  }
  EXPECT_EQ(daemon.Terminate(10s), 0) << daemon.Log();
  EXPECT_EQ(daemon.Log().find(kDbPassword), std::string::npos);
  const TruthTally tally = ExpectDatabaseEqualsTruth(dsn, sim);
  std::cout << "[ measured ] " << attempts.size() << " attempts while waiting, spaced " << spacing
            << "; daemon CPU while waiting " << static_cast<int>(waiting_cpu * 1000) / 10.0
            << " % of a core; /readyz 200 "
            << std::chrono::duration_cast<std::chrono::milliseconds>(ready_after).count()
            << " ms after the database appeared; " << tally.transitions
            << " transitions equal the truth\n";
}

// A server that answers but has no such database: check-config says which, and so does run
// (it keeps waiting: the database may be created later).
TEST_F(StartupFaultsE2eTest, MissingDatabaseIsNamedByCheckConfigAndRun) {
  PrivatePostgres postgres;
  SimProcess sim({"--orders", "5", "--seed", "3232", "--paused"});
  MailtrailConfig config;
  config.api_url = sim.api_url();
  config.api_key = kLiveKey;
  config.database_url = postgres.dsn("mailtrail_not_created");
  config.webhook_port = webhook_port_;
  config.metrics_port = metrics_port_;
  config.secrets = {kSecret};
  const auto path = dir_.Write("mailtrail.yaml", config.Yaml());
  const auto check = RunMailtrail({"check-config", "--config", path.string()}, 60s);
  EXPECT_EQ(check.exit_code, 1) << check.output;
  EXPECT_NE(check.output.find("database \"mailtrail_not_created\" does not exist"),
            std::string::npos)
      << check.output;

  DaemonProcess daemon({"run", "--config", path.string()}, dir_.path() / "daemon.log");
  std::string readyz;
  EXPECT_TRUE(WaitUntil(
      [&] {
        readyz = LocalGet(metrics_port_, "/readyz").body;
        return readyz.find("does not exist") != std::string::npos;
      },
      20s))
      << readyz << "\n"
      << daemon.Log();
  EXPECT_TRUE(daemon.running()) << daemon.Log();
  // Created: the daemon gets going on its next attempt.
  {
    pqxx::connection connection(postgres.dsn());
    pqxx::nontransaction tx(connection);
    tx.exec("CREATE DATABASE mailtrail_not_created");
  }
  EXPECT_TRUE(WaitUntil([&] { return LocalGet(metrics_port_, "/readyz").status == 200; }, 45s))
      << daemon.Log();
  EXPECT_EQ(daemon.Terminate(10s), 0) << daemon.Log();
}

}  // namespace
}  // namespace mailtrail::e2e::faults
