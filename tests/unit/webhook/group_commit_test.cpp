// The listener's group-commit mode: deliveries that arrive while a batch is being stored go
// together in the next batch, each is answered by its own outcome, and a failed batch is 503 for
// every delivery in it.
#include <gtest/gtest.h>

#include <chrono>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "net/http_connection.hpp"
#include "net/url.hpp"
#include "webhook/server.hpp"
#include "webhook_vectors.hpp"

#pragma GCC diagnostic ignored "-Wmismatched-new-delete"  // Asio 1.74 frames under g++ 12

namespace mailtrail::webhook {
namespace {

using namespace std::chrono_literals;
using Request = http::request<http::string_body>;
using Response = http::response<http::string_body>;

using vectors::kBody;
using vectors::kGoodSignature;
using vectors::kJwtOk;
using vectors::kJwtTracker;
using vectors::kNow;
using vectors::kSecret;
using vectors::kWrongSecretSignature;

constexpr auto kTestTimeout = 10s;

/// A RecordBatchFn double with the database's duplicate rule. The first batch can be held at a
/// gate (a timer that never expires by itself) until the test opens it.
struct FakeBatchStore {
  explicit FakeBatchStore(net::io_context& io) : gate(io) {
    gate.expires_at(net::steady_timer::time_point::max());
  }
  std::vector<domain::WebhookDelivery> rows;
  std::vector<std::size_t> batches;  // sizes, in order
  bool hold_first = false;
  bool throws = false;
  bool short_answer = false;  // one outcome too few
  net::steady_timer gate;
};

net::awaitable<std::vector<RecordOutcome>> FakeRecordBatch(
    FakeBatchStore* store, std::vector<domain::WebhookDelivery> deliveries) {
  store->batches.push_back(deliveries.size());
  if (store->hold_first && store->batches.size() == 1) {
    beast::error_code ec;  // operation_aborted when the test opens the gate
    co_await store->gate.async_wait(net::redirect_error(net::use_awaitable, ec));
  }
  if (store->throws) throw std::runtime_error("connection to server lost");
  std::vector<RecordOutcome> outcomes;
  for (auto& delivery : deliveries) {
    std::optional<RecordOutcome> outcome;
    if (delivery.verified) {
      for (std::size_t i = 0; i < store->rows.size(); ++i) {
        if (store->rows[i].verified && store->rows[i].body_sha256 == delivery.body_sha256) {
          outcome = RecordOutcome{RecordStatus::kDuplicate, static_cast<std::int64_t>(i + 1)};
        }
      }
    }
    if (!outcome) {
      store->rows.push_back(std::move(delivery));
      outcome =
          RecordOutcome{RecordStatus::kRecorded, static_cast<std::int64_t>(store->rows.size())};
    }
    outcomes.push_back(*outcome);
  }
  if (store->short_answer) outcomes.pop_back();
  co_return outcomes;
}

Request Jwt(std::string_view token) {
  Request request{http::verb::post, "/webhooks/postgrid", 11};
  request.body() = std::string(token);
  return request;
}

Request Json(std::string_view signature) {
  Request request{http::verb::post, "/webhooks/postgrid", 11};
  request.set("PostGrid-Signature", std::string(signature));
  request.body() = std::string(kBody);
  return request;
}

net::awaitable<Response> SendOne(std::uint16_t port, Request request) {
  auto connection = co_await netio::HttpConnection::Connect(
      netio::ParseUrl("http://127.0.0.1:" + std::to_string(port)), nullptr, 5s);
  co_return co_await connection->Send(std::move(request), 5s, 1 << 20);
}

class GroupCommitTest : public ::testing::Test {
 protected:
  GroupCommitTest()
      : store_(io_),
        server_(io_.get_executor(), Options(),
                GroupCommit{[this](std::vector<domain::WebhookDelivery> deliveries) {
                              return FakeRecordBatch(&store_, std::move(deliveries));
                            },
                            64},
                [this](domain::OrderRef order, std::int64_t) { triggered_.push_back(order.id); }) {
    server_.Start();
  }
  ~GroupCommitTest() override {
    server_.Stop();
    io_.poll();
  }

  static ServerOptions Options() {
    ServerOptions options;
    options.host = "127.0.0.1";
    options.port = 0;
    options.secrets = {std::string(kSecret)};
    options.clock = [] { return kNow; };
    return options;
  }

  /// Sends `request` on its own connection; its response lands in responses_[index].
  void Spawn(std::size_t index, Request request) {
    if (responses_.size() <= index) responses_.resize(index + 1);
    net::co_spawn(io_, SendOne(server_.Port(), std::move(request)),
                  [this, index](std::exception_ptr error, Response response) {
                    if (error) {
                      ADD_FAILURE() << "request " << index << " failed";
                      response.result(http::status::unknown);
                    }
                    responses_[index] = std::move(response);
                  });
  }

  /// Runs the loop until `condition` holds; false after kTestTimeout.
  template <class Condition>
  bool RunUntil(Condition condition) {
    const auto deadline = std::chrono::steady_clock::now() + kTestTimeout;
    while (!condition()) {
      if (std::chrono::steady_clock::now() >= deadline) return false;
      io_.run_one_for(20ms);
    }
    return true;
  }

  bool AllAnswered() const {
    for (const auto& r : responses_) {
      if (!r) return false;
    }
    return true;
  }

  net::io_context io_;
  FakeBatchStore store_;
  std::vector<std::string> triggered_;
  std::vector<std::optional<Response>> responses_;
  Server server_;
};

TEST_F(GroupCommitTest, DeliveriesArrivingDuringABatchGoTogetherInTheNext) {
  store_.hold_first = true;
  Spawn(0, Jwt(kJwtOk));
  ASSERT_TRUE(RunUntil([&] { return store_.batches.size() == 1; }));
  Spawn(1, Jwt(kJwtOk));                  // a replay of delivery 0
  Spawn(2, Json(kGoodSignature));         // verified letter event
  Spawn(3, Json(kWrongSecretSignature));  // refused, still recorded
  Spawn(4, Jwt(kJwtTracker));             // verified, not an order event
  ASSERT_TRUE(RunUntil([&] { return server_.WaitingForRecording() == 4; }));
  EXPECT_FALSE(responses_[0].has_value()) << "answered before its batch was stored";
  store_.gate.cancel();
  ASSERT_TRUE(RunUntil([&] { return AllAnswered(); }));

  EXPECT_EQ(store_.batches, (std::vector<std::size_t>{1, 4}));
  EXPECT_EQ(server_.WaitingForRecording(), 0u);
  EXPECT_EQ(responses_[0]->result_int(), 200);
  EXPECT_EQ(responses_[0]->body(), "ok\n");
  EXPECT_EQ(responses_[1]->result_int(), 200);
  EXPECT_EQ(responses_[1]->body(), "duplicate\n");
  EXPECT_EQ(responses_[2]->result_int(), 200);
  EXPECT_EQ(responses_[2]->body(), "ok\n");
  EXPECT_EQ(responses_[3]->result_int(), 401);
  EXPECT_EQ(responses_[4]->result_int(), 200);
  EXPECT_EQ(responses_[4]->body(), "ignored\n");
  ASSERT_EQ(store_.rows.size(), 4u);
  EXPECT_FALSE(store_.rows[2].verified);
  EXPECT_EQ(triggered_, (std::vector<std::string>{"postcard_xyz", "letter_abc"}));
}

TEST_F(GroupCommitTest, AFailedBatchIs503ForEachOfItsDeliveries) {
  store_.hold_first = true;
  store_.throws = true;
  Spawn(0, Jwt(kJwtOk));
  ASSERT_TRUE(RunUntil([&] { return store_.batches.size() == 1; }));
  Spawn(1, Json(kGoodSignature));
  Spawn(2, Json(kWrongSecretSignature));
  ASSERT_TRUE(RunUntil([&] { return server_.WaitingForRecording() == 2; }));
  store_.gate.cancel();
  ASSERT_TRUE(RunUntil([&] { return AllAnswered(); }));
  for (const auto& response : responses_) EXPECT_EQ(response->result_int(), 503);
  EXPECT_TRUE(triggered_.empty());
  EXPECT_EQ(server_.Counts().at("unavailable"), 3u);
}

TEST_F(GroupCommitTest, AnAnswerOfTheWrongSizeIs503Too) {
  store_.short_answer = true;
  Spawn(0, Jwt(kJwtOk));
  ASSERT_TRUE(RunUntil([&] { return AllAnswered(); }));
  EXPECT_EQ(responses_[0]->result_int(), 503);
  EXPECT_TRUE(triggered_.empty());
}

}  // namespace
}  // namespace mailtrail::webhook
