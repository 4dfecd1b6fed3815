// Benchmarks (CTest label `bench`, not in the default run): Verify() cost per format and the
// in-process listener's throughput and latency over keep-alive connections with an instant
// recorder. Prints figures; asserts only that every delivery was accepted.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <vector>

#include "net/http_connection.hpp"
#include "net/url.hpp"
#include "webhook/server.hpp"
#include "webhook/verify.hpp"
#include "webhook_vectors.hpp"

#pragma GCC diagnostic ignored "-Wmismatched-new-delete"  // Asio 1.74 frames under g++ 12

namespace mailtrail::webhook {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

using vectors::kBody;
using vectors::kJwtOk;
using vectors::kNow;
using vectors::kSecret;
constexpr std::string_view kSignature = vectors::kGoodSignature;

double MicrosPerCall(const Headers& headers, std::string_view body,
                     const std::vector<std::string>& secrets, int calls) {
  const auto start = Clock::now();
  int ok = 0;
  for (int i = 0; i < calls; ++i) ok += Verify(headers, body, secrets, kNow, 10min).ok ? 1 : 0;
  const double micros = std::chrono::duration<double, std::micro>(Clock::now() - start).count();
  EXPECT_EQ(ok, calls);
  return micros / calls;
}

TEST(WebhookBenchmark, VerifyCostPerFormat) {
  const std::vector<std::string> one = {std::string(kSecret)};
  const std::vector<std::string> two = {"whsec_old_secret_abcdefghij", std::string(kSecret)};
  const Headers json = {Header{"PostGrid-Signature", std::string(kSignature)}};
  std::printf("verify json, 1 secret: %.2f us/call\n", MicrosPerCall(json, kBody, one, 20000));
  std::printf("verify json, 2 secrets: %.2f us/call\n", MicrosPerCall(json, kBody, two, 20000));
  std::printf("verify jwt, 1 secret: %.2f us/call\n", MicrosPerCall({}, kJwtOk, one, 20000));
}

net::awaitable<std::vector<RecordOutcome>> InstantRecord(
    std::int64_t* next_id, std::vector<domain::WebhookDelivery> deliveries) {
  std::vector<RecordOutcome> outcomes;
  for (std::size_t i = 0; i < deliveries.size(); ++i) {
    outcomes.push_back({RecordStatus::kRecorded, ++*next_id});
  }
  co_return outcomes;
}

/// Sends `count` JWT deliveries on one connection, recording each round trip.
net::awaitable<void> Client(std::uint16_t port, int count, std::vector<double>* latencies_ms,
                            int* ok) {
  auto connection = co_await netio::HttpConnection::Connect(
      netio::ParseUrl("http://127.0.0.1:" + std::to_string(port)), nullptr, 5s);
  for (int i = 0; i < count; ++i) {
    http::request<http::string_body> request{http::verb::post, "/webhooks/postgrid", 11};
    request.body() = std::string(kJwtOk);
    const auto start = Clock::now();
    auto response = co_await connection->Send(std::move(request), 5s, 1 << 20);
    latencies_ms->push_back(
        std::chrono::duration<double, std::milli>(Clock::now() - start).count());
    if (response.result_int() == 200) ++*ok;
  }
}

TEST(WebhookBenchmark, ListenerThroughputOverKeepAlive) {
  net::io_context io;
  std::int64_t next_id = 0;
  std::size_t triggers = 0;
  ServerOptions options;
  options.host = "127.0.0.1";
  options.port = 0;
  options.secrets = {std::string(kSecret)};
  options.clock = [] { return kNow; };
  Server server(io.get_executor(), options,
                GroupCommit{[&next_id](std::vector<domain::WebhookDelivery> deliveries) {
                  return InstantRecord(&next_id, std::move(deliveries));
                }},
                [&triggers](domain::OrderRef, std::int64_t) { ++triggers; });
  server.Start();

  constexpr int kConnections = 4;
  constexpr int kPerConnection = 1000;
  std::vector<std::vector<double>> latencies(kConnections);
  int ok = 0;
  int finished = 0;
  const auto start = Clock::now();
  for (int c = 0; c < kConnections; ++c) {
    net::co_spawn(io, Client(server.Port(), kPerConnection, &latencies[c], &ok),
                  [&finished](std::exception_ptr e) {
                    ++finished;
                    if (e) ADD_FAILURE() << "client failed";
                  });
  }
  const auto deadline = Clock::now() + 120s;
  while (finished < kConnections && Clock::now() < deadline) io.run_one_for(100ms);
  const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
  server.Stop();
  io.poll();

  std::vector<double> all;
  for (const auto& l : latencies) all.insert(all.end(), l.begin(), l.end());
  std::sort(all.begin(), all.end());
  ASSERT_EQ(ok, kConnections * kPerConnection);
  EXPECT_EQ(triggers, static_cast<std::size_t>(ok));
  std::printf(
      "listener: %d deliveries on %d connections in %.2f s = %.0f/s; "
      "round trip p50 %.3f ms, p99 %.3f ms, max %.3f ms\n",
      ok, kConnections, seconds, ok / seconds, all[all.size() / 2], all[all.size() * 99 / 100],
      all.back());
}

}  // namespace
}  // namespace mailtrail::webhook
