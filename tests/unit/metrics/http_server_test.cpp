#include "metrics/http_server.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <optional>
#include <string>

#include "net/http_connection.hpp"
#include "net/url.hpp"
#include "promtool.hpp"

// g++ 12 reports -Wmismatched-new-delete for Asio's awaitable frames (a sized operator delete
// paired with Asio's operator new); it is a false positive of the coroutine lowering.
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"

namespace mailtrail::metrics {
namespace {

using namespace std::chrono_literals;
using tcp = net::ip::tcp;
using Request = http::request<http::string_body>;
using Response = http::response<http::string_body>;

template <class T>
T RunFor(net::io_context& io, net::awaitable<T> task) {
  std::optional<T> result;
  std::exception_ptr error;
  bool done = false;
  if (io.stopped()) io.restart();  // a previous step may have run out of work
  net::co_spawn(io, std::move(task), [&](std::exception_ptr e, T value) {
    error = e;
    if (!e) result = std::move(value);
    done = true;
  });
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  while (!done && std::chrono::steady_clock::now() < deadline) io.run_one_for(50ms);
  if (!done) throw std::runtime_error("test step timed out");
  if (error) std::rethrow_exception(error);
  return std::move(*result);
}

/// GETs (or `verb`s) each target in turn on one keep-alive connection.
net::awaitable<std::vector<Response>> Fetch(std::uint16_t port, std::vector<std::string> targets,
                                            http::verb verb) {
  auto connection = co_await netio::HttpConnection::Connect(
      netio::ParseUrl("http://127.0.0.1:" + std::to_string(port)), nullptr, 5s);
  std::vector<Response> responses;
  for (const std::string& target : targets) {
    responses.push_back(co_await connection->Send(Request{verb, target, 11}, 5s, 1 << 20));
  }
  if (connection->RequestsSent() != targets.size()) throw std::runtime_error("not one connection");
  co_return responses;
}

struct RawResult {
  std::string received;
  bool closed = false;
};
net::awaitable<RawResult> SendRaw(std::uint16_t port, std::string raw) {
  auto executor = co_await net::this_coro::executor;
  tcp::socket socket(executor);
  co_await socket.async_connect({net::ip::make_address("127.0.0.1"), port}, net::use_awaitable);
  co_await net::async_write(socket, net::buffer(raw), net::use_awaitable);
  RawResult result;
  char chunk[4096];
  for (;;) {
    beast::error_code ec;
    const std::size_t n = co_await socket.async_read_some(
        net::buffer(chunk), net::redirect_error(net::use_awaitable, ec));
    result.received.append(chunk, n);
    if (ec) {
      result.closed = ec == net::error::eof || ec == net::error::connection_reset;
      break;
    }
  }
  co_return result;
}

class MetricsServerTest : public ::testing::Test {
 protected:
  void Start(HttpServerOptions options = {}) {
    options.host = "127.0.0.1";
    options.port = 0;
    server_ = std::make_unique<HttpServer>(io_.get_executor(), options, registry_,
                                           [this] { return not_ready_; });
    server_->Start();
    ASSERT_NE(server_->Port(), 0);
  }
  void TearDown() override {
    if (server_) server_->Stop();
    io_.poll();
  }
  std::vector<Response> Get(std::vector<std::string> targets, http::verb verb = http::verb::get) {
    return RunFor(io_, Fetch(server_->Port(), std::move(targets), verb));
  }

  net::io_context io_;
  Registry registry_;
  std::optional<std::string> not_ready_;
  std::unique_ptr<HttpServer> server_;
};

TEST_F(MetricsServerTest, ServesTheRegistryInTextFormat) {
  registry_.GetCounter("mailtrail_webhook_deliveries_total", "Deliveries.", {{"result", "ok"}})
      .Increment(4);
  Start();
  const auto responses = Get({"/metrics"});
  ASSERT_EQ(responses.size(), 1u);
  EXPECT_EQ(responses[0].result_int(), 200);
  EXPECT_EQ(responses[0][http::field::content_type], "text/plain; version=0.0.4; charset=utf-8");
  EXPECT_EQ(responses[0].body(), registry_.Render());
  EXPECT_NE(responses[0].body().find("mailtrail_webhook_deliveries_total{result=\"ok\"} 4\n"),
            std::string::npos);
}

TEST_F(MetricsServerTest, LiveScrapePassesPromtool) {
  registry_
      .GetCounter("mailtrail_api_requests_total", "API requests.",
                  {{"endpoint", "retrieve"}, {"status", "429"}})
      .Increment();
  registry_
      .GetHistogram("mailtrail_webhook_to_row_seconds", "Webhook to row latency.",
                    DefaultLatencyBuckets())
      .Observe(0.12);
  registry_.AddCallback("mailtrail_due_orders", "Orders due.", MetricType::kGauge, [] {
    return std::vector<Sample>{{{{"tier", "hourly"}}, 7}};
  });
  Start();
  const auto responses = Get({"/metrics"});
  EXPECT_TRUE(testing::PromtoolAccepts(responses.at(0).body()));
}

TEST_F(MetricsServerTest, HealthAndReadinessFlipWithTheInjectedState) {
  Start();
  not_ready_ = "database unreachable";
  auto responses = Get({"/healthz", "/readyz"});
  EXPECT_EQ(responses[0].result_int(), 200);
  EXPECT_EQ(responses[1].result_int(), 503);
  EXPECT_EQ(responses[1].body(), "database unreachable\n");

  not_ready_.reset();
  responses = Get({"/readyz", "/healthz"});
  EXPECT_EQ(responses[0].result_int(), 200);
  EXPECT_EQ(responses[0].body(), "ready\n");
  EXPECT_EQ(responses[1].result_int(), 200);
}

TEST_F(MetricsServerTest, UnknownPathIs404AndOtherMethodsAre405) {
  Start();
  EXPECT_EQ(Get({"/nope"}).at(0).result_int(), 404);
  const auto posted = Get({"/metrics"}, http::verb::post);
  EXPECT_EQ(posted.at(0).result_int(), 405);
  EXPECT_EQ(posted.at(0)[http::field::allow], "GET");
}

TEST_F(MetricsServerTest, SlowClientIsCutOff) {
  HttpServerOptions options;
  options.read_timeout = 200ms;
  Start(options);
  const RawResult result = RunFor(io_, SendRaw(server_->Port(), "GET /metrics HTTP/1.1\r\n"));
  EXPECT_TRUE(result.closed);
  EXPECT_TRUE(result.received.empty());
}

TEST_F(MetricsServerTest, ConnectionCloseIsHonoured) {
  Start();
  const RawResult result = RunFor(
      io_,
      SendRaw(server_->Port(), "GET /healthz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"));
  EXPECT_EQ(result.received.rfind("HTTP/1.1 200", 0), 0u) << result.received;
  EXPECT_TRUE(result.closed);
}

}  // namespace
}  // namespace mailtrail::metrics
