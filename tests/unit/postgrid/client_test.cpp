// postgrid::Client against the in-process fake server: endpoints and headers, keep-alive reuse,
// retries (5xx, resets, truncated bodies, timeouts), final 4xx errors, the API key kept out of
// logs and errors, request counters, and the list pager.
#include "postgrid/client.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <map>
#include <optional>
#include <set>
#include <sstream>

#include "support/fake_postgrid.hpp"
#include "support/run_client.hpp"

namespace mailtrail::postgrid {
namespace {

using namespace std::chrono_literals;
using domain::OrderRef;
using domain::OrderType;
using testing::FakeAction;
using testing::FakePostGrid;
using testing::FakeRequest;
using testing::FakeResponse;
using testing::RunOne;

constexpr const char* kKey = "test_sk_Zq8secretKEY0123456789";

ClientOptions FastOptions(const FakePostGrid& fake) {
  ClientOptions options;
  options.base_url = fake.base_url();
  options.api_key = kKey;
  options.requests_per_second = 0;
  options.max_concurrency = 4;
  options.timeout = 5s;
  options.max_attempts = 4;
  options.backoff_initial = 5ms;
  options.backoff_max = 20ms;
  return options;
}

FakeResponse Ok(std::string body) {
  FakeResponse response;
  response.body = std::move(body);
  return response;
}

FakeResponse Status(int status, std::string body = "") {
  FakeResponse response;
  response.status = status;
  response.body = body.empty() ? R"({"object":"error","error":{"type":"x","message":"y"}})" : body;
  return response;
}

/// Expects `task` to throw ApiError and returns it.
ApiError ExpectApiError(net::io_context& ioc, net::awaitable<nlohmann::json> task) {
  try {
    auto value = RunOne(ioc, std::move(task));
    ADD_FAILURE() << "expected ApiError, got " << value.dump();
  } catch (const ApiError& error) {
    return error;
  }
  return ApiError(ApiErrorKind::kTransient, -1, "none", "", "no error thrown");
}

/// Echoes the order id of the path back, like a retrieve would.
FakeResponse EchoOrder(const FakeRequest& request) {
  const std::string path = testing::PathOf(request.target);
  const std::string id = path.substr(path.rfind('/') + 1);
  return Ok(testing::OrderJson(id));
}

TEST(Client, RetrievesEveryOrderTypeAtItsPathWithTheApiKey) {
  FakePostGrid fake(EchoOrder);
  net::io_context ioc;
  Client client(ioc.get_executor(), FastOptions(fake));

  const std::map<OrderType, std::string> expected = {
      {OrderType::kLetter, "/letters/letter_1"},
      {OrderType::kPostcard, "/postcards/postcard_1"},
      {OrderType::kCheque, "/cheques/cheque_1"},
      {OrderType::kSelfMailer, "/self_mailers/self_mailer_1"},
      {OrderType::kBox, "/boxes/box_1"},
      {OrderType::kSnapPack, "/snap_packs/snap_pack_1"},
      {OrderType::kReturnEnvelopeOrder,
       "/return_envelopes/return_envelope_9/orders/"
       "return_envelope_order_1"},
  };
  for (const auto& [type, path] : expected) {
    OrderRef ref{type, std::string(domain::ObjectName(type)) + "_1", ""};
    if (type == OrderType::kReturnEnvelopeOrder) ref.envelope_id = "return_envelope_9";
    const auto order = RunOne(ioc, client.Retrieve(ref, Purpose::kPoll));
    EXPECT_EQ(order.at("id"), ref.id);
  }
  const auto requests = fake.requests();
  ASSERT_EQ(requests.size(), expected.size());
  std::set<std::string> paths;
  for (const auto& request : requests) {
    EXPECT_EQ(request.method, "GET");
    EXPECT_EQ(request.api_key, kKey);
    paths.insert(request.target);
  }
  for (const auto& [type, path] : expected) {
    EXPECT_TRUE(paths.count(std::string(FakePostGrid::kPrefix) + path)) << path;
  }
}

TEST(Client, RetrieveDocumentKeepsTheBodyAsSentBesideTheParsedObject) {
  const std::string body = "{ \"id\": \"letter_1\",\n  \"object\": \"letter\", \"price\": 1.10 }";
  FakePostGrid fake([&body](const FakeRequest&) {
    FakeResponse response;
    response.body = body;
    return response;
  });
  net::io_context ioc;
  Client client(ioc.get_executor(), FastOptions(fake));
  const Document document =
      RunOne(ioc, client.RetrieveDocument({OrderType::kLetter, "letter_1", ""}, Purpose::kPoll));
  EXPECT_EQ(document.text, body);
  EXPECT_EQ(document.json.at("id"), "letter_1");
  EXPECT_EQ(document.json.at("price"), 1.1);
}

TEST(Client, ProgressListsAndEventsHitTheDocumentedEndpoints) {
  FakePostGrid fake([](const FakeRequest& request) {
    if (request.target.find("/letters?") != std::string::npos ||
        request.target.find("orders?") != std::string::npos ||
        request.target.find("/return_envelopes?") != std::string::npos ||
        request.target.find("/events?") != std::string::npos) {
      return Ok(testing::ListJson({}, 0, 10));
    }
    return Ok(testing::OrderJson("letter_1"));
  });
  net::io_context ioc;
  Client client(ioc.get_executor(), FastOptions(fake));

  RunOne(ioc, client.Progress({OrderType::kLetter, "letter_1", ""}, Purpose::kManual));
  RunOne(ioc, client.Progress(
                  {OrderType::kReturnEnvelopeOrder, "return_envelope_order_2", "return_envelope_3"},
                  Purpose::kManual));
  RunOne(ioc, client.List(OrderType::kLetter, 200, 100, R"({"metadata.campaignID":"a b"})",
                          Purpose::kDiscovery));
  RunOne(ioc, client.ListReturnEnvelopes(0, 50, Purpose::kFullScan));
  RunOne(ioc, client.ListEnvelopeOrders("return_envelope_3", 10, 20, Purpose::kFullScan));
  RunOne(ioc, client.Events({"letter.updated", "postcard.updated"}, 0, 100, Purpose::kBackfill));

  const auto requests = fake.requests();
  ASSERT_EQ(requests.size(), 6u);
  const std::string p = FakePostGrid::kPrefix;
  EXPECT_EQ(requests[0].method, "POST");
  EXPECT_EQ(requests[0].target, p + "/letters/letter_1/progressions");
  EXPECT_EQ(requests[1].method, "POST");
  EXPECT_EQ(requests[1].target,
            p + "/return_envelopes/return_envelope_3/orders/return_envelope_order_2/fills");
  EXPECT_EQ(requests[2].target,
            p + "/letters?skip=200&limit=100&search=%7B%22metadata.campaignID%22%3A%22a%20b%22%7D");
  EXPECT_EQ(requests[3].target, p + "/return_envelopes?skip=0&limit=50");
  EXPECT_EQ(requests[4].target, p + "/return_envelopes/return_envelope_3/orders?skip=10&limit=20");
  EXPECT_EQ(requests[5].target,
            p + "/events?type=letter.updated,postcard.updated&skip=0&limit=100");
  for (const auto& request : requests) EXPECT_EQ(request.api_key, kKey);
}

TEST(Client, RejectsBadPagingArgumentsBeforeSending) {
  FakePostGrid fake(EchoOrder);
  net::io_context ioc;
  Client client(ioc.get_executor(), FastOptions(fake));
  EXPECT_THROW(RunOne(ioc, client.List(OrderType::kLetter, 0, 101, "", Purpose::kPoll)),
               std::invalid_argument);
  EXPECT_THROW(RunOne(ioc, client.List(OrderType::kLetter, -1, 10, "", Purpose::kPoll)),
               std::invalid_argument);
  EXPECT_THROW(RunOne(ioc, client.List(OrderType::kReturnEnvelopeOrder, 0, 10, "", Purpose::kPoll)),
               std::invalid_argument);
  EXPECT_EQ(fake.request_count(), 0u);
}

TEST(Client, ReusesOneKeptAliveConnectionForSequentialRequests) {
  FakePostGrid fake(EchoOrder);
  net::io_context ioc;
  Client client(ioc.get_executor(), FastOptions(fake));
  for (int i = 0; i < 20; ++i) {
    RunOne(ioc, client.Retrieve({OrderType::kLetter, "letter_" + std::to_string(i), ""},
                                Purpose::kPoll));
  }
  EXPECT_EQ(fake.request_count(), 20u);
  EXPECT_EQ(fake.connections_accepted(), 1u);
}

TEST(Client, ReconnectsWhenTheServerClosedAnIdleConnection) {
  FakePostGrid fake([](const FakeRequest& request) {
    FakeResponse response = EchoOrder(request);
    response.silent_close = true;  // promises keep-alive, then hangs up
    return response;
  });
  net::io_context ioc;
  auto options = FastOptions(fake);
  options.max_attempts = 1;  // a stale pooled connection must not cost an attempt
  Client client(ioc.get_executor(), options);
  for (int i = 0; i < 5; ++i) {
    const auto order = RunOne(
        ioc,
        client.Retrieve({OrderType::kLetter, "letter_" + std::to_string(i), ""}, Purpose::kPoll));
    EXPECT_EQ(order.at("id"), "letter_" + std::to_string(i));
  }
  EXPECT_EQ(fake.request_count(), 5u);
  EXPECT_EQ(fake.connections_accepted(), 5u);
}

TEST(Client, RetriesServerErrorsThenReturnsTheGoodBody) {
  int calls = 0;
  FakePostGrid fake([&calls](const FakeRequest& request) {
    ++calls;
    if (calls == 1) return Status(500);
    if (calls == 2) return Status(502, "<html>bad gateway</html>");
    if (calls == 3) return Status(503);
    return EchoOrder(request);
  });
  net::io_context ioc;
  Client client(ioc.get_executor(), FastOptions(fake));
  const auto order = RunOne(ioc, client.Retrieve({OrderType::kBox, "box_7", ""}, Purpose::kPoll));
  EXPECT_EQ(order.at("id"), "box_7");
  EXPECT_EQ(fake.request_count(), 4u);
}

TEST(Client, RetriesOtherRetryableStatuses) {
  for (const int status : {408, 409, 504}) {
    int calls = 0;
    FakePostGrid fake([&calls, status](const FakeRequest& request) {
      return ++calls == 1 ? Status(status) : EchoOrder(request);
    });
    net::io_context ioc;
    Client client(ioc.get_executor(), FastOptions(fake));
    const auto order =
        RunOne(ioc, client.Retrieve({OrderType::kLetter, "letter_1", ""}, Purpose::kPoll));
    EXPECT_EQ(order.at("id"), "letter_1") << status;
    EXPECT_EQ(fake.request_count(), 2u) << status;
  }
}

TEST(Client, GivesUpAfterMaxAttemptsWithATransientError) {
  FakePostGrid fake([](const FakeRequest&) {
    return Status(503, R"({"object":"error","error":{"type":"service_unavailable_error",)"
                       R"("message":"down"}})");
  });
  net::io_context ioc;
  Client client(ioc.get_executor(), FastOptions(fake));
  const ApiError error =
      ExpectApiError(ioc, client.Retrieve({OrderType::kCheque, "cheque_42", ""}, Purpose::kPoll));
  EXPECT_EQ(error.kind(), ApiErrorKind::kTransient);
  EXPECT_EQ(error.status(), 503);
  EXPECT_EQ(fake.request_count(), 4u);
  const std::string message = error.what();
  EXPECT_THAT(message, ::testing::HasSubstr("GET /cheques/cheque_42"));
  EXPECT_THAT(message, ::testing::HasSubstr("order cheque_42"));
  EXPECT_THAT(message, ::testing::HasSubstr("service_unavailable_error"));
}

TEST(Client, FinalClientErrorsAreClassifiedAndNotRetried) {
  const std::pair<int, ApiErrorKind> cases[] = {
      {400, ApiErrorKind::kRejected}, {401, ApiErrorKind::kAuth},     {403, ApiErrorKind::kAuth},
      {404, ApiErrorKind::kNotFound}, {422, ApiErrorKind::kRejected},
  };
  for (const auto& [status, kind] : cases) {
    FakePostGrid fake([status = status](const FakeRequest&) { return Status(status); });
    net::io_context ioc;
    Client client(ioc.get_executor(), FastOptions(fake));
    const ApiError error = ExpectApiError(
        ioc, client.Progress({OrderType::kLetter, "letter_5", ""}, Purpose::kManual));
    EXPECT_EQ(error.kind(), kind) << status;
    EXPECT_EQ(error.status(), status);
    EXPECT_EQ(fake.request_count(), 1u) << status;
    EXPECT_THAT(std::string(error.what()), ::testing::HasSubstr("letter_5"));
  }
}

TEST(Client, ResetMidResponseIsRetriedAndNeverParsed) {
  int calls = 0;
  FakePostGrid fake([&calls](const FakeRequest& request) {
    FakeResponse response = EchoOrder(request);
    if (++calls <= 2) response.action = FakeAction::kResetMidResponse;
    return response;
  });
  net::io_context ioc;
  Client client(ioc.get_executor(), FastOptions(fake));
  const auto order =
      RunOne(ioc, client.Retrieve({OrderType::kPostcard, "postcard_3", ""}, Purpose::kPoll));
  EXPECT_EQ(order, nlohmann::json::parse(testing::OrderJson("postcard_3")));
  EXPECT_EQ(fake.request_count(), 3u);
}

TEST(Client, PersistentResetsAndClosesEndAsTransientWithoutStatus) {
  for (const auto action : {FakeAction::kResetMidResponse, FakeAction::kCloseWithoutResponse}) {
    FakePostGrid fake([action](const FakeRequest& request) {
      FakeResponse response = EchoOrder(request);
      response.action = action;
      return response;
    });
    net::io_context ioc;
    Client client(ioc.get_executor(), FastOptions(fake));
    const ApiError error = ExpectApiError(
        ioc, client.Retrieve({OrderType::kPostcard, "postcard_3", ""}, Purpose::kPoll));
    EXPECT_EQ(error.kind(), ApiErrorKind::kTransient);
    EXPECT_EQ(error.status(), 0);
    EXPECT_THAT(std::string(error.what()), ::testing::HasSubstr("connection error"));
    EXPECT_EQ(fake.request_count(), 4u);
  }
}

TEST(Client, TruncatedJsonIsRetriedThenReportedAsBadResponse) {
  const std::string full = testing::OrderJson("self_mailer_8");
  int calls = 0;
  FakePostGrid fake([&calls, full](const FakeRequest&) {
    // A complete HTTP message whose JSON is cut off (Content-Length matches the cut body).
    return ++calls == 1 ? Ok(full.substr(0, full.size() - 9)) : Ok(full);
  });
  net::io_context ioc;
  Client client(ioc.get_executor(), FastOptions(fake));
  const auto order =
      RunOne(ioc, client.Retrieve({OrderType::kSelfMailer, "self_mailer_8", ""}, Purpose::kPoll));
  EXPECT_EQ(order, nlohmann::json::parse(full));
  EXPECT_EQ(fake.request_count(), 2u);

  fake.SetHandler([full](const FakeRequest&) { return Ok(full.substr(0, 20)); });
  const ApiError error = ExpectApiError(
      ioc, client.Retrieve({OrderType::kSelfMailer, "self_mailer_8", ""}, Purpose::kPoll));
  EXPECT_EQ(error.kind(), ApiErrorKind::kBadResponse);
  EXPECT_EQ(error.status(), 200);
  EXPECT_THAT(std::string(error.what()), ::testing::HasSubstr("not valid JSON"));
  EXPECT_EQ(fake.request_count(), 2u + 4u);
}

TEST(Client, ReadTimeoutFiresAndIsRetried) {
  int calls = 0;
  FakePostGrid fake([&calls](const FakeRequest& request) {
    FakeResponse response = EchoOrder(request);
    if (++calls == 1) response.delay = 10s;  // far past the client's deadline
    return response;
  });
  net::io_context ioc;
  auto options = FastOptions(fake);
  options.timeout = 500ms;
  Client client(ioc.get_executor(), options);
  const auto order =
      RunOne(ioc, client.Retrieve({OrderType::kLetter, "letter_9", ""}, Purpose::kPoll));
  EXPECT_EQ(order.at("id"), "letter_9");
  // The first attempt cannot have been answered in time; a loaded machine may add more.
  EXPECT_GE(fake.request_count(), 2u);
  // A timed-out connection is dropped, never reused for the retry.
  EXPECT_GE(fake.connections_accepted(), 2u);
  const auto requests = fake.requests();
  EXPECT_NE(requests[0].connection, requests[1].connection);
}

TEST(Client, PersistentTimeoutsEndAsTransient) {
  FakePostGrid fake([](const FakeRequest& request) {
    FakeResponse response = EchoOrder(request);
    response.delay = 3s;
    return response;
  });
  net::io_context ioc;
  auto options = FastOptions(fake);
  options.timeout = 100ms;
  options.max_attempts = 2;
  Client client(ioc.get_executor(), options);
  const ApiError error =
      ExpectApiError(ioc, client.Retrieve({OrderType::kLetter, "letter_9", ""}, Purpose::kPoll));
  EXPECT_EQ(error.kind(), ApiErrorKind::kTransient);
  EXPECT_THAT(std::string(error.what()), ::testing::HasSubstr("timed out"));
  EXPECT_EQ(fake.request_count(), 2u);
}

TEST(Client, ConnectFailureIsTransient) {
  std::string dead_url;
  {
    FakePostGrid fake(EchoOrder);  // bind a port, then close it again
    dead_url = fake.base_url();
  }
  net::io_context ioc;
  ClientOptions options;
  options.base_url = dead_url;
  options.api_key = kKey;
  options.requests_per_second = 0;
  options.max_attempts = 2;
  options.backoff_initial = 1ms;
  options.timeout = 2s;
  Client client(ioc.get_executor(), options);
  const ApiError error =
      ExpectApiError(ioc, client.Retrieve({OrderType::kLetter, "letter_1", ""}, Purpose::kPoll));
  EXPECT_EQ(error.kind(), ApiErrorKind::kTransient);
  EXPECT_EQ(error.status(), 0);
}

TEST(Client, ApiKeyNeverAppearsInLogsOrErrors) {
  // Every failure path, with a server that echoes the key back in its error bodies.
  const std::string echo =
      std::string(R"({"object":"error","error":{"type":"missing_auth_error",)") +
      R"("message":"bad key )" + kKey + R"("}})";
  int calls = 0;
  FakePostGrid fake([&calls, echo](const FakeRequest& request) {
    switch (++calls % 6) {
      case 0:
        return Status(401, echo);
      case 1:
        return Status(500, echo);
      case 2:
        return Status(422, std::string("plain text ") + kKey);
      case 3: {
        FakeResponse response = Status(429, echo);
        response.headers.push_back({"retry-after-ms", "5"});
        return response;
      }
      case 4:
        return Ok(std::string("{\"key\":\"") + kKey);  // truncated JSON containing the key
      default: {
        FakeResponse response = EchoOrder(request);
        response.action = FakeAction::kResetMidResponse;
        return response;
      }
    }
  });

  std::ostringstream log;
  auto sink = std::make_shared<spdlog::sinks::ostream_sink_mt>(log);
  auto previous = spdlog::default_logger();
  auto logger = std::make_shared<spdlog::logger>("capture", sink);
  logger->set_level(spdlog::level::trace);
  spdlog::set_default_logger(logger);

  std::string errors;
  {
    net::io_context ioc;
    auto options = FastOptions(fake);
    options.max_attempts = 3;
    Client client(ioc.get_executor(), options);
    for (int i = 0; i < 12; ++i) {
      try {
        RunOne(ioc, client.Retrieve({OrderType::kLetter, "letter_" + std::to_string(i), ""},
                                    Purpose::kPoll));
      } catch (const ApiError& error) {
        errors += error.what();
        errors += "\n";
      }
    }
  }
  spdlog::set_default_logger(previous);

  // The key did travel (so the check below can fail) and failures were logged and thrown.
  ASSERT_GT(fake.request_count(), 12u);
  for (const auto& request : fake.requests()) ASSERT_EQ(request.api_key, kKey);
  ASSERT_THAT(log.str(), ::testing::HasSubstr("retrying"));
  ASSERT_THAT(errors, ::testing::HasSubstr("missing_auth_error"));
  ASSERT_THAT(errors, ::testing::HasSubstr("[redacted]"));
  EXPECT_EQ(log.str().find(kKey), std::string::npos) << log.str();
  EXPECT_EQ(errors.find(kKey), std::string::npos) << errors;
  EXPECT_EQ(log.str().find("Zq8secret"), std::string::npos);
  EXPECT_EQ(errors.find("Zq8secret"), std::string::npos);
}

TEST(Client, CountsEveryAttemptByEndpointPurposeAndStatus) {
  int calls = 0;
  FakePostGrid fake([&calls](const FakeRequest& request) {
    if (++calls == 1) return Status(500);
    if (testing::PathOf(request.target).find("letter_404") != std::string::npos) {
      return Status(404);
    }
    if (request.target.find('?') != std::string::npos) return Ok(testing::ListJson({}, 0, 10));
    return EchoOrder(request);
  });
  net::io_context ioc;
  Client client(ioc.get_executor(), FastOptions(fake));
  RunOne(ioc, client.Retrieve({OrderType::kLetter, "letter_1", ""}, Purpose::kPoll));
  RunOne(ioc, client.Retrieve({OrderType::kLetter, "letter_2", ""}, Purpose::kWebhook));
  EXPECT_THROW(RunOne(ioc, client.Retrieve({OrderType::kLetter, "letter_404", ""}, Purpose::kPoll)),
               ApiError);
  RunOne(ioc, client.List(OrderType::kBox, 0, 10, "", Purpose::kDiscovery));

  const std::vector<RequestCount> expected = {
      {EndpointKind::kRetrieve, Purpose::kPoll, 200, 1},
      {EndpointKind::kRetrieve, Purpose::kPoll, 404, 1},
      {EndpointKind::kRetrieve, Purpose::kPoll, 500, 1},
      {EndpointKind::kRetrieve, Purpose::kWebhook, 200, 1},
      {EndpointKind::kList, Purpose::kDiscovery, 200, 1},
  };
  EXPECT_EQ(client.RequestCounts(), expected);
  EXPECT_EQ(PurposeName(Purpose::kFullScan), "full_scan");
  EXPECT_EQ(EndpointKindName(EndpointKind::kListEnvelopeOrders), "list_envelope_orders");
}

std::vector<std::string> Ids(const std::string& prefix, int count) {
  std::vector<std::string> ids;
  for (int i = 0; i < count; ++i) ids.push_back(prefix + std::to_string(i));
  return ids;
}

net::awaitable<std::vector<std::string>> Walk(ListPager* pager) {
  std::vector<std::string> seen;
  while (auto page = co_await pager->Next()) {
    for (const auto& item : *page) seen.push_back(item.at("id").get<std::string>());
  }
  co_return seen;
}

TEST(ListPager, WalksEveryPageOnceAndStopsAtTheEnd) {
  const auto ids = Ids("letter_", 250);
  FakePostGrid fake([&ids](const FakeRequest& request) {
    return Ok(testing::ListJson(ids, std::stoi(testing::QueryParam(request.target, "skip")),
                                std::stoi(testing::QueryParam(request.target, "limit"))));
  });
  net::io_context ioc;
  Client client(ioc.get_executor(), FastOptions(fake));
  ListQuery query;
  query.type = OrderType::kLetter;
  ListPager pager(client, query, Purpose::kFullScan);
  const auto seen = RunOne(ioc, Walk(&pager));
  EXPECT_EQ(seen, ids);
  EXPECT_EQ(pager.pages(), 3);
  EXPECT_EQ(pager.total_count(), 250);
  EXPECT_EQ(fake.request_count(), 3u);
}

TEST(ListPager, DropsItemsShiftedOntoTheNextPageByNewOrders) {
  // Newest first: each time a page is served, 7 new orders appear at the front, shifting the
  // old ones back, so offset paging sees some of them twice.
  std::vector<std::string> ids = Ids("postcard_old_", 230);
  int served = 0;
  FakePostGrid fake([&ids, &served](const FakeRequest& request) {
    auto response =
        Ok(testing::ListJson(ids, std::stoi(testing::QueryParam(request.target, "skip")),
                             std::stoi(testing::QueryParam(request.target, "limit"))));
    for (int i = 0; i < 7; ++i) {
      ids.insert(ids.begin(), "postcard_new_" + std::to_string(served) + "_" + std::to_string(i));
    }
    ++served;
    return response;
  });
  net::io_context ioc;
  Client client(ioc.get_executor(), FastOptions(fake));
  ListQuery query;
  query.type = OrderType::kPostcard;
  query.page_size = 50;
  ListPager pager(client, query, Purpose::kDiscovery);
  const auto seen = RunOne(ioc, Walk(&pager));
  const std::set<std::string> unique(seen.begin(), seen.end());
  EXPECT_EQ(unique.size(), seen.size()) << "duplicates returned";
  for (int i = 0; i < 230; ++i) {
    EXPECT_TRUE(unique.count("postcard_old_" + std::to_string(i))) << i;
  }
}

TEST(ListPager, PageWithoutDataIsABadResponse) {
  FakePostGrid fake([](const FakeRequest&) { return Ok(R"({"object":"list","data:":[]})"); });
  net::io_context ioc;
  Client client(ioc.get_executor(), FastOptions(fake));
  ListQuery query;
  query.source = ListQuery::Source::kReturnEnvelopes;
  ListPager pager(client, query, Purpose::kFullScan);
  try {
    RunOne(ioc, Walk(&pager));
    ADD_FAILURE() << "expected ApiError";
  } catch (const ApiError& error) {
    EXPECT_EQ(error.kind(), ApiErrorKind::kBadResponse);
  }
}

/// Walks to the end or to the first error, keeping what was returned before it.
net::awaitable<bool> WalkUntilError(ListPager* pager, std::vector<std::string>* seen,
                                    std::optional<ApiError>* error) {
  try {
    while (auto page = co_await pager->Next()) {
      for (const auto& item : *page) seen->push_back(item.at("id").get<std::string>());
    }
  } catch (const ApiError& e) {
    *error = e;
  }
  co_return error->has_value();
}

TEST(ListPager, AnUnreadableOrderCostsOnlyThatOrder) {
  // Position 137's order holds invalid UTF-8, so every list answer that includes it is not JSON.
  const auto ids = Ids("letter_", 250);
  FakePostGrid fake([&ids](const FakeRequest& request) {
    const int skip = std::stoi(testing::QueryParam(request.target, "skip"));
    const int limit = std::stoi(testing::QueryParam(request.target, "limit"));
    std::string body = testing::ListJson(ids, skip, limit);
    if (skip <= 137 && 137 < skip + limit) {
      body.replace(body.find("\"letter_137\""), 12,
                   "\"letter_\xff\xfe"
                   "7\"");
    }
    return Ok(body);
  });
  net::io_context ioc;
  Client client(ioc.get_executor(), FastOptions(fake));
  ListQuery query;
  query.type = OrderType::kLetter;
  ListPager pager(client, query, Purpose::kFullScan);
  std::vector<std::string> seen;
  std::optional<ApiError> error;
  RunOne(ioc, WalkUntilError(&pager, &seen, &error));

  std::vector<std::string> expected = ids;
  expected.erase(expected.begin() + 137);
  EXPECT_EQ(seen, expected) << "every readable order, once, in order";
  EXPECT_EQ(pager.unreadable(), std::vector<int>{137});
  ASSERT_TRUE(error.has_value()) << "a pass that missed an order must fail at its end";
  EXPECT_EQ(error->kind(), ApiErrorKind::kBadResponse);
  EXPECT_THAT(error->what(), ::testing::HasSubstr("positions 137"));
  // Pages 0 and 2 once; page 1 (attempts), its part 130-139 (attempts), that part's ten orders
  // (attempts for the bad one), and the page's other nine parts once each.
  EXPECT_EQ(fake.request_count(), 2u + 4u + 9u + 4u + 9u + 4u);
}

TEST(ListPager, AnEndpointAnsweringGarbageFailsAsBeforeAfterAFewTries) {
  FakePostGrid fake([](const FakeRequest&) { return Ok("<html><body>Bad gateway</body></html>"); });
  net::io_context ioc;
  Client client(ioc.get_executor(), FastOptions(fake));
  ListQuery query;
  query.type = OrderType::kLetter;
  ListPager pager(client, query, Purpose::kDiscovery);
  std::vector<std::string> seen;
  std::optional<ApiError> error;
  RunOne(ioc, WalkUntilError(&pager, &seen, &error));
  EXPECT_TRUE(seen.empty());
  ASSERT_TRUE(error.has_value());
  EXPECT_EQ(error->kind(), ApiErrorKind::kBadResponse);
  EXPECT_THAT(error->what(), ::testing::HasSubstr("skip=0&limit=100"));
  EXPECT_TRUE(pager.unreadable().empty()) << "the endpoint's fault, not an order's";
  // The page, then its first two parts, each split into its first two orders, all with retries.
  EXPECT_LE(fake.request_count(), 4u * 7u);
}

}  // namespace
}  // namespace mailtrail::postgrid
