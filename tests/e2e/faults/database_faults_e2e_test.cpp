// PostgreSQL restart and outage (issue 9): while a world progresses and webhooks flow, the
// test's own PostgreSQL server is stopped in immediate mode (a crash) and started again, and
// later stays away for 30 s. The daemon must stay up without spinning, say so on /readyz, answer
// webhooks 503 (the simulator retries them an hour later, its clock driven forward), and end with
// exactly the simulator's ground truth.
#include <gtest/gtest.h>

#include <cstdlib>
#include <iostream>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <set>

#include "e2e_world.hpp"
#include "fault_support.hpp"
#include "mailtrail_process.hpp"
#include "private_postgres.hpp"
#include "sim_process.hpp"

namespace mailtrail::e2e::faults {
namespace {

using nlohmann::json;
using sim::testing::SimProcess;

constexpr const char* kLiveKey = "live_sk_sim";
constexpr const char* kSecret = "whsec_faults_db_e2e_0123456789";
constexpr auto kOutage = std::chrono::seconds(30);

class DatabaseFaultsE2eTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ::unsetenv("MAILTRAIL_POSTGRID_API_KEY");
    ::unsetenv("MAILTRAIL_DATABASE_URL");
    ::unsetenv("MAILTRAIL_WEBHOOK_SECRETS");
  }

  std::string webhook_url() const {
    return "http://127.0.0.1:" + std::to_string(webhook_port_) + "/webhooks/postgrid";
  }

  /// All webhook invocations the simulator made, oldest first per target.
  json Invocations(const SimProcess& sim) const {
    json all = json::array();
    const json targets = GetJson(sim, "/__sim/webhook-targets");
    for (const auto& target : targets["data"]) {
      const json list = GetJson(
          sim, "/__sim/webhook-targets/" + target["id"].get<std::string>() + "/invocations");
      for (const auto& invocation : list["data"]) all.push_back(invocation);
    }
    return all;
  }

  long CountStatus(const SimProcess& sim, int status) const {
    long count = 0;
    for (const auto& invocation : Invocations(sim)) count += invocation["statusCode"] == status;
    return count;
  }

  std::uint16_t webhook_port_ = FreePort();
  std::uint16_t metrics_port_ = FreePort();
  TempDir dir_;

  /// The world, the daemon on the test's own PostgreSQL, everything recorded and API traffic
  /// quiet. Webhooks are the trigger: polls, discovery and full scans are an hour apart, so a
  /// change only lands if its delivery (or the simulator's retry of it) is handled.
  /// The simulated clock starts at the wall clock, so completed orders stay watched for
  /// poll.completed_grace as in production (their late IMB scans are changes to record).
  void StartWorld(const std::string& seed) {
    sim_ = std::make_unique<SimProcess>(std::vector<std::string>{
        "--orders", "60", "--seed", seed, "--paused", "--history-days", "0", "--live-fraction", "1",
        "--webhook-url", webhook_url(), "--webhook-secret", kSecret, "--webhook-format", "jwt"});
    world_ = SimOrders(*sim_, true);
    ASSERT_GE(world_.size(), 40u);
    // The private server runs with synchronous_commit=off, under which a crash loses commits it
    // already acknowledged: the daemon would be blamed for writes PostgreSQL dropped. Sessions of
    // this database get the production default back (a database setting beats the command line).
    {
      pqxx::connection connection(postgres_.dsn());
      pqxx::nontransaction tx(connection);
      tx.exec("ALTER DATABASE postgres SET synchronous_commit = on");
    }
    {
      pqxx::connection connection(postgres_.dsn());
      pqxx::nontransaction tx(connection);
      ASSERT_EQ(tx.exec("SHOW synchronous_commit")[0][0].as<std::string>(), "on");
    }
    for (const auto& [id, order] : world_) active_.insert(id);
    MailtrailConfig config;
    config.api_url = sim_->api_url();
    config.api_key = kLiveKey;
    config.database_url = postgres_.dsn();
    config.interval = config.carrier_interval = config.discovery_interval =
        config.full_scan_interval = "1h";
    config.webhook_port = webhook_port_;
    config.metrics_port = metrics_port_;
    config.secrets = {kSecret};
    const auto path = dir_.Write("mailtrail.yaml", config.Yaml());
    daemon_ = std::make_unique<DaemonProcess>(
        std::vector<std::string>{"run", "--config", path.string()}, dir_.path() / "daemon.log");
    ASSERT_TRUE(WaitUntil(
        [&] {
          return Count(postgres_.dsn(), "SELECT count(*) FROM mailtrail.orders") ==
                     static_cast<long>(world_.size()) &&
                 LocalGet(metrics_port_, "/readyz").status == 200;
        },
        60s))
        << daemon_->Log();
    ASSERT_TRUE(WaitForApiQuiet(*sim_, 1500ms, 30s)) << daemon_->Log();
  }

  /// The database equals the simulator's current state within `timeout` (fatal otherwise).
  void ExpectConverged(const std::string& label, std::chrono::milliseconds timeout) {
    const auto diverging = WaitConverged(postgres_.dsn(), *sim_, timeout);
    ASSERT_TRUE(diverging.empty())
        << label << ": " << diverging.size() << " orders differ, e.g. " << diverging[0] << "\n"
        << daemon_->Log();
  }

  /// One planned step for every active order, then convergence.
  void NormalRound(const std::string& label) {
    steps_ += StepAll(*sim_, active_);
    ExpectConverged(label, 30s);
  }

  /// Waits until /readyz answers `status`; returns its last body.
  std::string WaitReady(int status, std::chrono::milliseconds timeout) {
    sim::testing::HttpResult readyz;
    const bool seen = WaitUntil(
        [&] {
          readyz = LocalGet(metrics_port_, "/readyz");
          return readyz.status == status;
        },
        timeout);
    EXPECT_TRUE(seen) << "/readyz stayed " << readyz.status << " " << readyz.body;
    return readyz.body;
  }

  /// The rest of the lifecycles, then: every event refused was retried and accepted, the
  /// daemon is up, stops cleanly, and the database equals the truth. Returns what was compared.
  TruthTally Finish() {
    for (int round = 0; round < 30 && !active_.empty(); ++round) {
      NormalRound("late round " + std::to_string(round));
      if (HasFatalFailure()) return {};
    }
    EXPECT_TRUE(active_.empty()) << "some lifecycles did not finish";
    std::map<std::string, std::vector<int>> attempts;  // event -> statuses in attempt order
    for (const auto& invocation : Invocations(*sim_)) {
      attempts[invocation["event"].get<std::string>()].push_back(
          invocation["statusCode"].get<int>());
    }
    for (const auto& [event, statuses] : attempts) {
      if (statuses.front() != 200) {
        ++retried_events_;
        EXPECT_EQ(statuses.back(), 200) << "event " << event << " never accepted";
      }
    }
    EXPECT_TRUE(daemon_->running()) << daemon_->Log();
    const std::string metrics = LocalGet(metrics_port_, "/metrics").body;
    EXPECT_GE(MetricSum(metrics, "mailtrail_database_reconnects_total"), 1) << metrics;
    EXPECT_EQ(daemon_->Terminate(10s), 0) << daemon_->Log();
    const TruthTally tally = ExpectDatabaseEqualsTruth(postgres_.dsn(), *sim_);
    EXPECT_GT(tally.transitions, 3 * world_.size());
    return tally;
  }

  PrivatePostgres postgres_;
  std::unique_ptr<SimProcess> sim_;
  std::map<std::string, json> world_;
  std::unique_ptr<DaemonProcess> daemon_;
  std::set<std::string> active_;
  std::size_t steps_ = 0;
  std::size_t retried_events_ = 0;
};

// PostgreSQL crashes (`pg_ctl stop -m immediate`) right after a round of steps, so deliveries
// are in flight: those that arrive after it are answered 503 and retried by the simulator an hour
// later; those accepted just before it must still have their change recorded.
TEST_F(DatabaseFaultsE2eTest, ImmediateRestartWithDeliveriesInFlightLosesNothing) {
  ASSERT_NO_FATAL_FAILURE(StartWorld("9009"));
  ASSERT_NO_FATAL_FAILURE(NormalRound("round 1"));
  const long refused_before = CountStatus(*sim_, 503);
  steps_ += StepAll(*sim_, active_);
  postgres_.Stop();
  const std::string reason = WaitReady(503, 30s);
  EXPECT_NE(reason.find("database"), std::string::npos) << reason;
  EXPECT_TRUE(daemon_->running()) << daemon_->Log();
  postgres_.Start();
  const auto restarted = std::chrono::steady_clock::now();
  WaitReady(200, 60s);
  const auto ready_after = std::chrono::steady_clock::now() - restarted;
  // Deliveries refused meanwhile are retried by the simulator an hour later.
  PostJson(*sim_, "/__sim/advance", {{"duration", "61m"}});
  ASSERT_NO_FATAL_FAILURE(ExpectConverged("after the restart", 60s));
  const long refused = CountStatus(*sim_, 503) - refused_before;
  const TruthTally tally = Finish();
  std::cout << "[ measured ] restart: " << refused << " deliveries refused with 503, /readyz 200 "
            << std::chrono::duration_cast<std::chrono::milliseconds>(ready_after).count()
            << " ms after the start; " << retried_events_ << " events retried by the simulator; "
            << steps_ << " steps; " << tally.transitions << " transitions and " << tally.events
            << " carrier events equal the truth\n";
}

// A 30 s outage while the world moves on: deliveries answered 503, /readyz 503 with a reason the
// whole time, /healthz 200, no busy loop; afterwards the simulator's retries land.
TEST_F(DatabaseFaultsE2eTest, ThirtySecondOutageAnswers503WithoutSpinningAndConverges) {
  ASSERT_NO_FATAL_FAILURE(StartWorld("9010"));
  ASSERT_NO_FATAL_FAILURE(NormalRound("round 1"));
  ASSERT_NO_FATAL_FAILURE(NormalRound("round 2"));
  const long refused_before = CountStatus(*sim_, 503);
  postgres_.Stop();
  const auto stopped = std::chrono::steady_clock::now();
  CpuMeter cpu(daemon_->pid());
  const std::string reason = WaitReady(503, 20s);
  EXPECT_NE(reason.find("database"), std::string::npos) << reason;
  const std::size_t outage_steps = StepAll(*sim_, active_);
  steps_ += outage_steps;
  ASSERT_GT(outage_steps, 0u);
  long refused = 0;
  EXPECT_TRUE(WaitUntil(
      [&] {
        refused = CountStatus(*sim_, 503) - refused_before;
        return refused >= static_cast<long>(outage_steps);
      },
      20s))
      << refused << " of " << outage_steps << " deliveries refused with 503";
  int readyz_checks = 0, readyz_503 = 0;
  while (std::chrono::steady_clock::now() - stopped < kOutage) {
    ++readyz_checks;
    readyz_503 += LocalGet(metrics_port_, "/readyz").status == 503;
    EXPECT_EQ(LocalGet(metrics_port_, "/healthz").status, 200);
    ASSERT_TRUE(daemon_->running()) << "the daemon exited during the outage\n" << daemon_->Log();
    std::this_thread::sleep_for(1s);
  }
  const double cpu_share = cpu.Share();
  EXPECT_EQ(readyz_503, readyz_checks) << "/readyz must say 503 for the whole outage";
  EXPECT_LT(cpu_share, 0.30) << "the daemon must wait for the database, not spin";
  postgres_.Start();
  const auto back = std::chrono::steady_clock::now();
  WaitReady(200, 60s);
  const auto ready_after = std::chrono::steady_clock::now() - back;
  PostJson(*sim_, "/__sim/advance", {{"duration", "61m"}});
  ASSERT_NO_FATAL_FAILURE(ExpectConverged("after the outage", 60s));
  const std::string metrics = LocalGet(metrics_port_, "/metrics").body;
  EXPECT_GT(MetricSum(metrics, "mailtrail_webhook_deliveries_total", {"result=\"unavailable\""}), 0)
      << metrics;
  const TruthTally tally = Finish();
  EXPECT_GE(retried_events_, static_cast<std::size_t>(refused));
  std::cout << "[ measured ] 30 s outage: " << refused
            << " deliveries refused with 503, daemon CPU "
            << static_cast<int>(cpu_share * 1000) / 10.0 << " % of a core, /readyz \""
            << reason.substr(0, reason.find('\n')) << "\", 200 again "
            << std::chrono::duration_cast<std::chrono::milliseconds>(ready_after).count()
            << " ms after the start; " << retried_events_ << " events retried by the simulator; "
            << steps_ << " steps; " << tally.transitions << " transitions and " << tally.events
            << " carrier events equal the truth\n";
}

}  // namespace
}  // namespace mailtrail::e2e::faults
