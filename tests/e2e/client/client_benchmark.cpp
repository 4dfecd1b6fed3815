// Benchmark (label bench): retrieves per second through postgrid::Client at concurrency 8 with the
// rate limit off, against the in-process fake server on loopback, plus JSON parse cost per order.
// Prints figures; asserts only that every retrieve succeeded.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>

#include "postgrid/client.hpp"
#include "support/fake_postgrid.hpp"
#include "support/run_client.hpp"

namespace mailtrail::postgrid {
namespace {

using namespace std::chrono_literals;
using testing::FakePostGrid;
using testing::FakeRequest;
using testing::FakeResponse;

net::awaitable<int> Worker(Client* client, int first, int count) {
  int ok = 0;
  for (int i = first; i < first + count; ++i) {
    domain::OrderRef ref{domain::OrderType::kLetter, "letter_" + std::to_string(i), ""};
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
  for (int w = 0; w < kWorkers; ++w) workers.push_back(Worker(&client, w * kPerWorker, kPerWorker));
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

  // Client-side CPU share of one retrieve: parse of the body (mapping is measured elsewhere).
  constexpr int kParses = 20000;
  const auto parse_start = std::chrono::steady_clock::now();
  std::size_t fields = 0;
  for (int i = 0; i < kParses; ++i) fields += nlohmann::json::parse(body).size();
  const double parse_us =
      std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - parse_start)
          .count() /
      kParses;
  std::printf("[bench] JSON parse of a %zu-byte order: %.2f us (%zu fields)\n", body.size(),
              parse_us, fields / kParses);
}

}  // namespace
}  // namespace mailtrail::postgrid
