// Benchmark (label bench): retrieves per second through postgrid::Client at concurrency 8 with the
// rate limit off, against the in-process fake server on loopback, plus JSON parse cost per order.
// Prints figures; the parse + map cost is checked against its target (label bench only: never in
// the default run, where machines are shared and noisy).
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <ctime>
#include <utility>
#include <vector>
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

// CPU time of this thread, so time spent preempted by other processes on a shared machine is not
// charged to the parser.
double ThreadCpuMicros() {
  timespec now{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &now);
  return static_cast<double>(now.tv_sec) * 1e6 + static_cast<double>(now.tv_nsec) / 1e3;
}

// Best and median per-item CPU cost of `work` over `batches` batches of `per_batch` calls: the best
// batch is the cost when nothing else disturbed the caches, the median what a busy machine gives.
template <typename Work>
std::pair<double, double> CpuMicrosPerCall(int batches, int per_batch, Work&& work) {
  std::vector<double> costs;
  for (int b = 0; b < batches; ++b) {
    const double start = ThreadCpuMicros();
    for (int i = 0; i < per_batch; ++i) work();
    costs.push_back((ThreadCpuMicros() - start) / per_batch);
  }
  std::sort(costs.begin(), costs.end());
  return {costs.front(), costs[costs.size() / 2]};
}

TEST(ClientBenchmark, ParseAndMapCostPerOrder) {
  // A carrier-tracked letter from the fixtures: the largest order shape mailtrail maps.
  std::ifstream file(std::string(MAILTRAIL_SOURCE_DIR) +
                     "/tests/data/letter_certified_delivered.json");
  ASSERT_TRUE(file) << "fixture missing";
  std::stringstream text;
  text << file.rdbuf();
  const std::string body = text.str();
  constexpr int kBatches = 20;
  constexpr int kPerBatch = 1000;
  std::size_t checksum = 0;
  const auto [parse_best, parse_median] = CpuMicrosPerCall(kBatches, kPerBatch, [&] {
    checksum += ParseJsonText(body, "order").size();
  });
  const auto [best, median] = CpuMicrosPerCall(kBatches, kPerBatch, [&] {
    checksum += MapOrder(ParseJsonText(body, "order")).ref.id.size();
  });
  ASSERT_GT(checksum, 0u);
  constexpr double kTargetMicros = 30;
  std::printf("[bench] parse alone of a %zu-byte order: %.2f us CPU (median %.2f)\n", body.size(),
              parse_best, parse_median);
  std::printf("[bench] parse + MapOrder: %.2f us CPU per order (median %.2f), target <= %.0f us\n",
              best, median, kTargetMicros);
  RecordProperty("parse_and_map_cpu_ns", static_cast<int>(best * 1000));
  if (const char* results = std::getenv("MAILTRAIL_BENCH_RESULTS")) {
    if (FILE* out = std::fopen(results, "a")) {
      std::fprintf(out, "| client parse + map per order (%zu B, CPU, best batch) | %.1f us | <= %.0f us | %s |\n",
                   body.size(), best, kTargetMicros, best <= kTargetMicros ? "PASS" : "FAIL");
      std::fclose(out);
    }
  }
  EXPECT_LE(best, kTargetMicros) << "parse + map CPU per order above the issue's target";
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
