#include "webhook/server.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <functional>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

#include "net/http_connection.hpp"
#include "net/url.hpp"
#include "webhook_vectors.hpp"

// g++ 12 reports -Wmismatched-new-delete for Asio's awaitable frames (a sized operator delete
// paired with Asio's operator new); it is a false positive of the coroutine lowering.
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"

namespace mailtrail::webhook {
namespace {

using namespace std::chrono_literals;
using tcp = net::ip::tcp;
using Request = http::request<http::string_body>;
using Response = http::response<http::string_body>;

using vectors::kBody;
using vectors::kBodySha256;
using vectors::kGoodSignature;
using vectors::kJwtOk;
using vectors::kJwtTracker;
using vectors::kNow;
using vectors::kSecret;
using vectors::kWrongSecretSignature;

constexpr auto kTestTimeout = 10s;

/// A RecordBatchFn double with the database's duplicate rule (verified body digests are unique).
struct FakeStore {
  std::vector<domain::WebhookDelivery> rows;
  bool unavailable = false;
  bool throws = false;
};

RecordOutcome FakeRecordOne(FakeStore* store, domain::WebhookDelivery delivery) {
  if (store->unavailable) return RecordOutcome{RecordStatus::kUnavailable, 0};
  if (delivery.verified) {
    for (std::size_t i = 0; i < store->rows.size(); ++i) {
      if (store->rows[i].verified && store->rows[i].body_sha256 == delivery.body_sha256) {
        return RecordOutcome{RecordStatus::kDuplicate, static_cast<std::int64_t>(i + 1)};
      }
    }
  }
  store->rows.push_back(std::move(delivery));
  return RecordOutcome{RecordStatus::kRecorded, static_cast<std::int64_t>(store->rows.size())};
}

net::awaitable<std::vector<RecordOutcome>> FakeRecord(
    FakeStore* store, std::vector<domain::WebhookDelivery> deliveries) {
  if (store->throws) throw std::runtime_error("connection to server lost");
  std::vector<RecordOutcome> outcomes;
  for (auto& delivery : deliveries) outcomes.push_back(FakeRecordOne(store, std::move(delivery)));
  co_return outcomes;
}

struct Triggered {
  domain::OrderRef order;
  std::int64_t delivery_id;
};

/// Runs `task` on `io` until it finishes, at most kTestTimeout; rethrows its exception.
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
  const auto deadline = std::chrono::steady_clock::now() + kTestTimeout;
  while (!done && std::chrono::steady_clock::now() < deadline) io.run_one_for(50ms);
  if (!done) throw std::runtime_error("test step timed out");
  if (error) std::rethrow_exception(error);
  return std::move(*result);
}

Request MakeRequest(http::verb verb, std::string target, std::string body,
                    std::vector<std::pair<std::string, std::string>> headers = {}) {
  Request request{verb, target, 11};
  for (auto& [name, value] : headers) request.set(name, value);
  request.body() = std::move(body);
  return request;
}

/// One request on a fresh connection.
net::awaitable<Response> SendOne(std::uint16_t port, Request request) {
  auto connection = co_await netio::HttpConnection::Connect(
      netio::ParseUrl("http://127.0.0.1:" + std::to_string(port)), nullptr, 5s);
  co_return co_await connection->Send(std::move(request), 5s, 1 << 20);
}

/// Two requests on one connection; also reports whether the connection stayed usable.
struct TwoResponses {
  Response first;
  Response second;
  std::size_t requests_sent = 0;
  bool reusable = false;
};
net::awaitable<TwoResponses> SendTwo(std::uint16_t port, Request first, Request second) {
  auto connection = co_await netio::HttpConnection::Connect(
      netio::ParseUrl("http://127.0.0.1:" + std::to_string(port)), nullptr, 5s);
  TwoResponses out;
  out.first = co_await connection->Send(std::move(first), 5s, 1 << 20);
  out.second = co_await connection->Send(std::move(second), 5s, 1 << 20);
  out.requests_sent = connection->RequestsSent();
  out.reusable = connection->Reusable();
  co_return out;
}

/// Writes `raw` and then reads until the server closes; returns everything read and whether the
/// connection ended (EOF or reset) rather than erroring otherwise.
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

/// Sends a header with `Expect: 100-continue`, waits for the interim response, then the body.
struct ContinueResult {
  std::string interim;
  std::string final_response;
};
net::awaitable<ContinueResult> SendExpectingContinue(std::uint16_t port, std::string header,
                                                     std::string body) {
  auto executor = co_await net::this_coro::executor;
  tcp::socket socket(executor);
  co_await socket.async_connect({net::ip::make_address("127.0.0.1"), port}, net::use_awaitable);
  co_await net::async_write(socket, net::buffer(header), net::use_awaitable);
  ContinueResult result;
  co_await net::async_read_until(socket, net::dynamic_buffer(result.interim), "\r\n\r\n",
                                 net::use_awaitable);
  co_await net::async_write(socket, net::buffer(body), net::use_awaitable);
  char chunk[4096];
  while (result.final_response.find("\r\n\r\n") == std::string::npos) {
    const std::size_t n = co_await socket.async_read_some(net::buffer(chunk), net::use_awaitable);
    result.final_response.append(chunk, n);
  }
  co_return result;
}

class WebhookServerTest : public ::testing::Test {
 protected:
  void Start(ServerOptions options = {}) {
    options.host = "127.0.0.1";
    options.port = 0;
    options.secrets = {std::string(kSecret)};
    options.clock = [] { return kNow; };
    server_ = std::make_unique<Server>(
        io_.get_executor(), std::move(options),
        GroupCommit{[this](std::vector<domain::WebhookDelivery> deliveries) {
          return FakeRecord(&store_, std::move(deliveries));
        }},
        [this](domain::OrderRef order, std::int64_t id) {
          triggered_.push_back({std::move(order), id});
        });
    server_->Start();
    ASSERT_NE(server_->Port(), 0);
  }

  void TearDown() override {
    if (server_) server_->Stop();
    io_.poll();
  }

  Response Post(std::string body, std::vector<std::pair<std::string, std::string>> headers = {}) {
    return RunFor(io_, SendOne(server_->Port(), MakeRequest(http::verb::post, "/webhooks/postgrid",
                                                            std::move(body), std::move(headers))));
  }
  Response PostJson(std::string_view signature = kGoodSignature) {
    return Post(std::string(kBody), {{"PostGrid-Signature", std::string(signature)}});
  }

  net::io_context io_;
  FakeStore store_;
  std::vector<Triggered> triggered_;
  std::unique_ptr<Server> server_;
};

TEST_F(WebhookServerTest, GenuineJsonDeliveryIsRecordedAnsweredAndTriggers) {
  Start();
  const Response response = PostJson();
  EXPECT_EQ(response.result_int(), 200);
  ASSERT_EQ(store_.rows.size(), 1u);
  const domain::WebhookDelivery& row = store_.rows[0];
  EXPECT_TRUE(row.verified);
  EXPECT_EQ(row.received_at, kNow);
  EXPECT_EQ(row.body_sha256, kBodySha256);
  EXPECT_EQ(row.payload_format, "json");
  EXPECT_EQ(row.rejection_reason, std::nullopt);
  EXPECT_EQ(row.event_id, "event_123");
  EXPECT_EQ(row.event_type, "letter.updated");
  EXPECT_EQ(row.order_id, "letter_abc");
  EXPECT_EQ(row.payload, std::string(kBody));
  ASSERT_EQ(triggered_.size(), 1u);
  EXPECT_EQ(triggered_[0].order, (domain::OrderRef{domain::OrderType::kLetter, "letter_abc", ""}));
  EXPECT_EQ(triggered_[0].delivery_id, 1);
  EXPECT_EQ(server_->Counts().at("accepted"), 1u);
}

TEST_F(WebhookServerTest, GenuineJwtDeliveryTriggersItsOrder) {
  Start();
  const Response response = Post(std::string(kJwtOk));
  EXPECT_EQ(response.result_int(), 200);
  ASSERT_EQ(store_.rows.size(), 1u);
  EXPECT_EQ(store_.rows[0].payload_format, "jwt");
  EXPECT_EQ(store_.rows[0].event_id, std::nullopt);
  ASSERT_TRUE(store_.rows[0].payload.has_value());
  EXPECT_EQ(nlohmann::json::parse(*store_.rows[0].payload).at("type"), "postcard.updated");
  ASSERT_EQ(triggered_.size(), 1u);
  EXPECT_EQ(triggered_[0].order.type, domain::OrderType::kPostcard);
  EXPECT_EQ(triggered_[0].order.id, "postcard_xyz");
}

TEST_F(WebhookServerTest, ForgedDeliveryIsRecordedAsRefusedAnd401) {
  Start();
  const Response response = PostJson(kWrongSecretSignature);
  EXPECT_EQ(response.result_int(), 401);
  EXPECT_EQ(response.body(), "bad_signature\n");
  ASSERT_EQ(store_.rows.size(), 1u);
  EXPECT_FALSE(store_.rows[0].verified);
  EXPECT_EQ(store_.rows[0].rejection_reason, "bad_signature");
  EXPECT_EQ(store_.rows[0].event_type, std::nullopt);
  EXPECT_EQ(store_.rows[0].payload, std::string(kBody));  // kept for audits
  EXPECT_TRUE(triggered_.empty());
  EXPECT_EQ(server_->Counts().at("refused_401"), 1u);
  EXPECT_EQ(server_->RefusalCounts().at("bad_signature"), 1u);
}

TEST_F(WebhookServerTest, MissingSignatureIs400AndRecorded) {
  Start();
  EXPECT_EQ(Post(std::string(kBody)).result_int(), 400);
  ASSERT_EQ(store_.rows.size(), 1u);
  EXPECT_EQ(store_.rows[0].rejection_reason, "missing_signature");
  EXPECT_EQ(store_.rows[0].payload_format, std::nullopt);
  EXPECT_TRUE(triggered_.empty());
}

TEST_F(WebhookServerTest, RefusedNonJsonBodyIsKeptAsAJsonString) {
  Start();
  EXPECT_EQ(Post("not json at all \xff").result_int(), 400);
  ASSERT_EQ(store_.rows.size(), 1u);
  ASSERT_TRUE(store_.rows[0].payload.has_value());
  const auto kept = nlohmann::json::parse(*store_.rows[0].payload);
  ASSERT_TRUE(kept.is_string());
  EXPECT_EQ(kept.get<std::string>().rfind("not json at all ", 0), 0u);
}

TEST_F(WebhookServerTest, IgnoredEventTypeIs200WithoutTrigger) {
  Start();
  const Response response = Post(std::string(kJwtTracker));
  EXPECT_EQ(response.result_int(), 200);
  EXPECT_EQ(response.body(), "ignored\n");
  ASSERT_EQ(store_.rows.size(), 1u);
  EXPECT_TRUE(store_.rows[0].verified);
  EXPECT_EQ(store_.rows[0].event_type, "tracker.visited");
  EXPECT_TRUE(triggered_.empty());
}

TEST_F(WebhookServerTest, ReplayIsAnswered200AndTriggersNothing) {
  Start();
  EXPECT_EQ(PostJson().result_int(), 200);
  const Response replay = PostJson();
  EXPECT_EQ(replay.result_int(), 200);
  EXPECT_EQ(replay.body(), "duplicate\n");
  EXPECT_EQ(store_.rows.size(), 1u);
  EXPECT_EQ(triggered_.size(), 1u);
  EXPECT_EQ(server_->Counts().at("duplicate"), 1u);
}

TEST_F(WebhookServerTest, DatabaseDownIs503AndTriggersNothing) {
  Start();
  store_.unavailable = true;
  EXPECT_EQ(PostJson().result_int(), 503);
  EXPECT_EQ(PostJson(kWrongSecretSignature).result_int(), 503);  // not stored: retry later
  EXPECT_TRUE(triggered_.empty());
  EXPECT_EQ(server_->Counts().at("unavailable"), 2u);

  store_.unavailable = false;  // PostGrid's retry after the database is back
  EXPECT_EQ(PostJson().result_int(), 200);
  EXPECT_EQ(triggered_.size(), 1u);
}

TEST_F(WebhookServerTest, RecordingThrowingIs503) {
  Start();
  store_.throws = true;
  EXPECT_EQ(PostJson().result_int(), 503);
  EXPECT_TRUE(triggered_.empty());
}

TEST_F(WebhookServerTest, OtherPathIs404AndOtherMethodIs405) {
  Start();
  const Response wrong_path =
      RunFor(io_, SendOne(server_->Port(), MakeRequest(http::verb::post, "/other", "{}")));
  EXPECT_EQ(wrong_path.result_int(), 404);
  const Response get =
      RunFor(io_, SendOne(server_->Port(), MakeRequest(http::verb::get, "/webhooks/postgrid", "")));
  EXPECT_EQ(get.result_int(), 405);
  EXPECT_EQ(get[http::field::allow], "POST");
  EXPECT_TRUE(store_.rows.empty());
  EXPECT_EQ(server_->Counts().at("not_found"), 1u);
  EXPECT_EQ(server_->Counts().at("method_not_allowed"), 1u);
}

TEST_F(WebhookServerTest, QueryStringOnThePathIsAccepted) {
  Start();
  const Response response = RunFor(
      io_, SendOne(server_->Port(),
                   MakeRequest(http::verb::post, "/webhooks/postgrid?source=pg", std::string(kBody),
                               {{"PostGrid-Signature", std::string(kGoodSignature)}})));
  EXPECT_EQ(response.result_int(), 200);
}

TEST_F(WebhookServerTest, BodyOverTheLimitIs413AndClosesTheConnection) {
  ServerOptions options;
  options.max_body = 64;
  Start(options);
  const std::string big(65, 'x');
  const RawResult result = RunFor(io_, SendRaw(server_->Port(),
                                               "POST /webhooks/postgrid HTTP/1.1\r\nHost: t\r\n"
                                               "Content-Length: 65\r\n\r\n" +
                                                   big));
  EXPECT_EQ(result.received.rfind("HTTP/1.1 413", 0), 0u) << result.received;
  EXPECT_TRUE(result.closed);
  EXPECT_TRUE(store_.rows.empty());
  EXPECT_EQ(server_->Counts().at("too_large"), 1u);
}

TEST_F(WebhookServerTest, ChunkedBodyOverTheLimitIs413) {
  ServerOptions options;
  options.max_body = 64;
  Start(options);
  const RawResult result = RunFor(io_, SendRaw(server_->Port(),
                                               "POST /webhooks/postgrid HTTP/1.1\r\nHost: t\r\n"
                                               "Transfer-Encoding: chunked\r\n\r\n"
                                               "40\r\n" +
                                                   std::string(64, 'a') +
                                                   "\r\n"
                                                   "1\r\nb\r\n0\r\n\r\n"));
  EXPECT_EQ(result.received.rfind("HTTP/1.1 413", 0), 0u) << result.received;
  EXPECT_TRUE(result.closed);
  EXPECT_TRUE(store_.rows.empty());
}

TEST_F(WebhookServerTest, GarbageRequestIs400AndClosed) {
  Start();
  const RawResult result = RunFor(io_, SendRaw(server_->Port(), "HELLO\x01 there\r\n\r\n"));
  EXPECT_EQ(result.received.rfind("HTTP/1.1 400", 0), 0u) << result.received;
  EXPECT_TRUE(result.closed);
}

TEST_F(WebhookServerTest, SlowHeaderClientIsCutOff) {
  ServerOptions options;
  options.header_timeout = 200ms;
  Start(options);
  // Half a header and then nothing: the server must close, not wait for the rest.
  const RawResult result =
      RunFor(io_, SendRaw(server_->Port(), "POST /webhooks/postgrid HTTP/1.1\r\nHost: t\r\n"));
  EXPECT_TRUE(result.closed);
  EXPECT_TRUE(result.received.empty());
  EXPECT_TRUE(store_.rows.empty());
}

TEST_F(WebhookServerTest, KeepAliveCarriesTwoDeliveriesOnOneConnection) {
  Start();
  const auto headers = std::vector<std::pair<std::string, std::string>>{
      {"PostGrid-Signature", std::string(kGoodSignature)}};
  const TwoResponses responses = RunFor(
      io_, SendTwo(server_->Port(),
                   MakeRequest(http::verb::post, "/webhooks/postgrid", std::string(kBody), headers),
                   MakeRequest(http::verb::post, "/webhooks/postgrid", std::string(kJwtOk))));
  EXPECT_EQ(responses.first.result_int(), 200);
  EXPECT_EQ(responses.second.result_int(), 200);
  EXPECT_EQ(responses.requests_sent, 2u);
  EXPECT_TRUE(responses.reusable);
  EXPECT_EQ(store_.rows.size(), 2u);
  EXPECT_EQ(triggered_.size(), 2u);
}

TEST_F(WebhookServerTest, ExpectContinueGetsAnInterimResponse) {
  Start();
  const std::string header =
      "POST /webhooks/postgrid HTTP/1.1\r\nHost: t\r\n"
      "Expect: 100-continue\r\nContent-Length: " +
      std::to_string(kJwtOk.size()) + "\r\n\r\n";
  const ContinueResult result =
      RunFor(io_, SendExpectingContinue(server_->Port(), header, std::string(kJwtOk)));
  EXPECT_EQ(result.interim.rfind("HTTP/1.1 100 Continue\r\n", 0), 0u) << result.interim;
  EXPECT_EQ(result.final_response.rfind("HTTP/1.1 200", 0), 0u) << result.final_response;
  EXPECT_EQ(triggered_.size(), 1u);
}

TEST_F(WebhookServerTest, DeeplyNestedRefusedBodyIsStoredWithoutRecursion) {
  Start();
  // Unverified input is never parsed recursively: 500k nested arrays are refused and kept.
  const std::string nested(500000, '[');
  EXPECT_EQ(Post(nested, {{"PostGrid-Signature", std::string(kWrongSecretSignature)}}).result_int(),
            401);
  ASSERT_EQ(store_.rows.size(), 1u);
  ASSERT_TRUE(store_.rows[0].payload.has_value());
  EXPECT_EQ(store_.rows[0].payload->size(), nested.size() + 2);  // a JSON string of the body
}

TEST_F(WebhookServerTest, StopRefusesNewConnections) {
  Start();
  const auto port = server_->Port();
  server_->Stop();
  io_.poll();
  const auto refused = [&] {
    try {
      RunFor(io_, SendOne(port, MakeRequest(http::verb::post, "/webhooks/postgrid", "x")));
      return false;
    } catch (const boost::system::system_error&) {
      return true;
    }
  }();
  EXPECT_TRUE(refused);
}

}  // namespace
}  // namespace mailtrail::webhook
