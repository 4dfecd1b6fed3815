// Benchmark (label bench): retrieves per second through postgrid::Client at concurrency 8 with the
// rate limit off, against the in-process fake server on loopback, plus JSON parse cost per order.
// Prints figures; asserts only that every retrieve succeeded.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <sstream>

#include "postgrid/client.hpp"
#include "postgrid/json_mapping.hpp"
#include "support/fake_postgrid.hpp"
#include "support/run_client.hpp"
#ifdef MAILTRAIL_HAVE_SIM
#include "sim_process.hpp"
#endif

namespace mailtrail::postgrid {
namespace {

using namespace std::chrono_literals;
using testing::FakePostGrid;
using testing::FakeRequest;
using testing::FakeResponse;

net::awaitable<int> Worker(Client* client, std::vector<std::string> ids, int first, int count) {
  int ok = 0;
  for (int i = first; i < first + count; ++i) {
    domain::OrderRef ref{domain::OrderType::kLetter,
                         ids.empty() ? "letter_" + std::to_string(i) : ids[i % ids.size()], ""};
    const auto order = co_await client->Retrieve(std::move(ref), Purpose::kPoll);
    if (order.is_object()) ++ok;
  }
  co_return ok;
}

TEST(ClientBenchmark, RetrievesPerSecondAtConcurrency8WithoutRateLimit) {
  const std::string body = testing::OrderJson("letter_1");
  FakePostGrid fake([body](const FakeRequest&) {
    FakeResponse response;
    response.body = body;
    return response;
  });
  net::io_context ioc;
  ClientOptions options;
  options.base_url = fake.base_url();
  options.api_key = "test_sk_bench";
  options.requests_per_second = 0;
  options.max_concurrency = 8;
  constexpr int kWorkers = 8;
  constexpr int kPerWorker = 2500;

  Client client(ioc.get_executor(), options);
  std::vector<net::awaitable<int>> workers;
  for (int w = 0; w < kWorkers; ++w)
    workers.push_back(Worker(&client, {}, w * kPerWorker, kPerWorker));
  const auto start = std::chrono::steady_clock::now();
  const auto outcomes = testing::RunAll(ioc, std::move(workers), 300s);
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  int ok = 0;
  for (const auto& outcome : outcomes) {
    ASSERT_FALSE(outcome.error);
    ok += *outcome.value;
  }
  ASSERT_EQ(ok, kWorkers * kPerWorker);
  std::printf(
      "[bench] %d retrieves in %.2f s: %.0f retrieves/s at concurrency %d, rate limit off\n", ok,
      seconds, ok / seconds, kWorkers);
  RecordProperty("retrieves_per_second", static_cast<int>(ok / seconds));
}

TEST(ClientBenchmark, ParseAndMapCostPerOrder) {
  // A carrier-tracked letter from the fixtures: the largest order shape mailtrail maps.
  std::ifstream file(std::string(MAILTRAIL_SOURCE_DIR) +
                     "/tests/data/letter_certified_delivered.json");
  ASSERT_TRUE(file) << "fixture missing";
  std::stringstream text;
  text << file.rdbuf();
  const std::string body = text.str();
  constexpr int kOrders = 20000;
  std::size_t updates = 0;
  const auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < kOrders; ++i) {
    const auto snapshot = MapOrder(nlohmann::json::parse(body));
    updates += snapshot.ref.id.size();
  }
  const double us =
      std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - start).count() /
      kOrders;
  ASSERT_GT(updates, 0u);
  const auto parse_start = std::chrono::steady_clock::now();
  std::size_t fields = 0;
  for (int i = 0; i < kOrders; ++i) fields += nlohmann::json::parse(body).size();
  const double parse_us =
      std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - parse_start)
          .count() /
      kOrders;
  ASSERT_GT(fields, 0u);
  std::printf("[bench] nlohmann::json::parse alone of the same order: %.2f us\n", parse_us);
  std::printf("[bench] parse + MapOrder of a %zu-byte order: %.2f us per order\n", body.size(), us);
}

#ifdef MAILTRAIL_HAVE_SIM
TEST(ClientBenchmark, RetrievesPerSecondAgainstTheSimulator) {
  sim::testing::SimProcess sim(
      {"--orders", "700", "--seed", "9", "--speed", "0", "--live-fraction", "0"});
  net::io_context ioc;
  ClientOptions options;
  options.base_url = sim.api_url();
  options.api_key = "test_sk_sim";
  options.requests_per_second = 0;
  options.max_concurrency = 8;
  Client client(ioc.get_executor(), options);
  const auto page = testing::RunOne(
      ioc, client.List(domain::OrderType::kLetter, 0, 100, "", Purpose::kDiscovery));
  std::vector<std::string> ids;
  for (const auto& item : page.at("data")) ids.push_back(item.at("id").get<std::string>());
  ASSERT_FALSE(ids.empty());
  constexpr int kWorkers = 8;
  constexpr int kPerWorker = 1500;
  std::vector<net::awaitable<int>> workers;
  for (int w = 0; w < kWorkers; ++w)
    workers.push_back(Worker(&client, ids, w * kPerWorker, kPerWorker));
  const auto start = std::chrono::steady_clock::now();
  const auto outcomes = testing::RunAll(ioc, std::move(workers), 300s);
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  int ok = 0;
  for (const auto& outcome : outcomes) {
    ASSERT_FALSE(outcome.error);
    ok += *outcome.value;
  }
  ASSERT_EQ(ok, kWorkers * kPerWorker);
  std::printf("[bench] simulator: %d retrieves in %.2f s: %.0f retrieves/s at concurrency %d\n", ok,
              seconds, ok / seconds, kWorkers);
}
#endif

}  // namespace
}  // namespace mailtrail::postgrid
