// The postgrid-sim binary through SimProcess: CLI, startup line, flags, signals.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cstdio>
#include <nlohmann/json.hpp>
#include <thread>

#include "sim_process.hpp"

namespace mailtrail::sim::testing {
namespace {

using Json = nlohmann::json;

std::pair<int, std::string> RunBinary(const std::string& args) {
  const std::string command = SimProcess::BinaryPath() + " " + args + " 2>&1";
  FILE* pipe = popen(command.c_str(), "r");
  if (pipe == nullptr) return {-1, ""};
  std::string out;
  char buf[4096];
  size_t n = 0;
  while ((n = fread(buf, 1, sizeof buf, pipe)) > 0) out.append(buf, n);
  const int status = pclose(pipe);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, out};
}

TEST(SimBinary, HelpDocumentsEveryFlag) {
  const auto [code, out] = RunBinary("--help");
  EXPECT_EQ(code, 0);
  for (const char* flag :
       {"--listen", "--orders", "--seed", "--speed", "--test-key", "--live-key", "--paused",
        "--start", "--history-days", "--live-fraction", "--unknown-enum-rate", "--body-limit",
        "--webhook-url", "--webhook-secret", "--webhook-format", "--webhook-events",
        "--webhook-timestamp", "--webhook-retry-delays", "--fault"}) {
    EXPECT_NE(out.find(flag), std::string::npos) << flag;
  }
}

TEST(SimBinary, BadFlagExitsTwo) {
  EXPECT_EQ(RunBinary("--no-such-flag 1").first, 2);
  EXPECT_EQ(RunBinary("--fault teapot").first, 2);
}

TEST(SimBinary, ReportsItsPortAndServesTheApiWithCustomKeys) {
  SimProcess sim({"--listen", "127.0.0.1:0", "--orders", "200", "--seed", "3", "--test-key",
                  "test_sk_custom", "--paused"});
  EXPECT_EQ(sim.host(), "127.0.0.1");
  EXPECT_GT(sim.port(), 0);
  const auto r = sim.Api("GET", "/letters", "test_sk_custom");
  ASSERT_EQ(r.status, 200) << r.error;
  EXPECT_EQ(Json::parse(r.body)["object"], "list");
  EXPECT_EQ(sim.Api("GET", "/letters", "test_sk_sim").status, 401);
}

TEST(SimBinary, SameSeedSameIds) {
  SimProcess a(
      {"--orders", "100", "--seed", "5", "--paused", "--start", "2026-01-05T00:00:00.000Z"});
  SimProcess b(
      {"--orders", "100", "--seed", "5", "--paused", "--start", "2026-01-05T00:00:00.000Z"});
  const Json ja = Json::parse(a.Api("GET", "/letters?limit=100", "test_sk_sim").body);
  const Json jb = Json::parse(b.Api("GET", "/letters?limit=100", "test_sk_sim").body);
  ASSERT_EQ(ja["data"].size(), jb["data"].size());
  for (size_t i = 0; i < ja["data"].size(); ++i) {
    EXPECT_EQ(ja["data"][i]["id"], jb["data"][i]["id"]);
    EXPECT_EQ(ja["data"][i]["status"], jb["data"][i]["status"]);
  }
}

TEST(SimBinary, SigtermStopsCleanly) {
  SimProcess sim({"--orders", "10"});
  const int status = sim.Stop();
  ASSERT_TRUE(WIFEXITED(status)) << status;
  EXPECT_EQ(WEXITSTATUS(status), 0);
}

TEST(SimBinary, WebhookFlagsDeliverSignedJson) {
  WebhookReceiver receiver;
  SimProcess sim({"--paused", "--webhook-url", receiver.url("/pg"), "--webhook-secret",
                  "whsec_flag_secret_0123456789", "--webhook-format", "json", "--webhook-events",
                  "letter.created"});
  ASSERT_EQ(sim.Post("/__sim/orders", R"({"type":"letters"})").status, 201);
  ASSERT_TRUE(receiver.WaitForCount(1, 10s));
  const auto req = receiver.requests()[0];
  EXPECT_EQ(req.target, "/pg");
  EXPECT_EQ(req.headers.count("postgrid-signature"), 1u);
  EXPECT_EQ(Json::parse(req.body)["type"], "letter.created");
}

TEST(SimBinary, FaultFlagApplies) {
  SimProcess sim({"--paused", "--fault", "503:count=1,endpoint=/postcards"});
  EXPECT_EQ(sim.Api("GET", "/postcards", "test_sk_sim").status, 503);
  EXPECT_EQ(sim.Api("GET", "/postcards", "test_sk_sim").status, 200);
}

// With --speed the world moves on its own (a wait with a timeout, not a timing assertion).
TEST(SimBinary, SpeedMovesTheWorld) {
  SimProcess sim({"--orders", "1000", "--speed", "3600"});
  const auto steps = [&] {
    return Json::parse(sim.Get("/__sim/stats").body)["world"]["stepsApplied"].get<int64_t>();
  };
  const int64_t first = steps();
  const auto deadline = std::chrono::steady_clock::now() + 20s;
  int64_t now = first;
  while (now == first && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(50ms);
    now = steps();
  }
  EXPECT_GT(now, first);
}

}  // namespace
}  // namespace mailtrail::sim::testing
