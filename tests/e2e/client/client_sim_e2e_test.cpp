// postgrid::Client against the project's simulator process (postgrid-sim): every order type
// retrieved and listed, a 1,000+ order list paged with each order exactly once, injected faults
// retried without mis-parsing, and a wrong key reported as an auth error without the key.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <map>
#include <set>

#include "postgrid/client.hpp"
#include "sim_process.hpp"

namespace mailtrail::postgrid {
namespace {

using namespace std::chrono_literals;
using domain::OrderRef;
using domain::OrderType;
using sim::testing::SimProcess;

constexpr const char* kTestKey = "test_sk_sim";

ClientOptions SimOptions(const SimProcess& sim) {
  ClientOptions options;
  options.base_url = sim.api_url();
  options.api_key = kTestKey;
  options.requests_per_second = 0;
  options.max_concurrency = 8;
  options.timeout = 10s;
  options.max_attempts = 8;
  options.backoff_initial = 5ms;
  options.backoff_max = 100ms;
  return options;
}

/// Runs one coroutine on `ioc` with a deadline; rethrows its exception.
template <class T>
T CallSim(net::io_context& ioc, net::awaitable<T> task, std::chrono::seconds timeout = 120s) {
  std::optional<T> result;
  std::exception_ptr failure;
  bool done = false;
  net::co_spawn(ioc, std::move(task), [&](std::exception_ptr error, T value) {
    failure = error;
    if (!error) result = std::move(value);
    done = true;
  });
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  ioc.restart();
  while (!done && std::chrono::steady_clock::now() < deadline) ioc.run_one_until(deadline);
  if (!done) throw std::runtime_error("client call did not finish before the test deadline");
  if (failure) std::rethrow_exception(failure);
  return std::move(*result);
}

net::awaitable<std::vector<nlohmann::json>> WalkAll(Client* client, ListQuery query,
                                                    std::size_t* items_seen_raw) {
  ListPager pager(*client, std::move(query), Purpose::kFullScan);
  std::vector<nlohmann::json> items;
  while (auto page = co_await pager.Next()) {
    for (auto& item : *page) items.push_back(std::move(item));
  }
  // The pager drops repeats; compare its output with totalCount to see that there were none.
  *items_seen_raw = static_cast<std::size_t>(std::max<long long>(0, pager.total_count()));
  co_return items;
}

TEST(ClientAgainstSimulator, RetrievesAndListsEveryOrderType) {
  SimProcess sim({"--orders", "400", "--seed", "11", "--speed", "0", "--live-fraction", "0"});
  net::io_context ioc;
  Client client(ioc.get_executor(), SimOptions(sim));

  for (const OrderType type : domain::kAllOrderTypes) {
    if (type == OrderType::kReturnEnvelopeOrder) continue;
    SCOPED_TRACE(std::string(domain::EndpointName(type)));
    const auto page = CallSim(ioc, client.List(type, 0, 10, "", Purpose::kDiscovery));
    ASSERT_TRUE(page.at("data").is_array());
    ASSERT_FALSE(page.at("data").empty()) << page.dump();
    EXPECT_EQ(page.at("object"), "list");
    for (const auto& item : page.at("data")) {
      EXPECT_EQ(item.at("object"), domain::ObjectName(type));
    }
    const std::string id = page.at("data")[0].at("id").get<std::string>();
    const auto order = CallSim(ioc, client.Retrieve({type, id, ""}, Purpose::kPoll));
    EXPECT_EQ(order.at("id"), id);
    EXPECT_EQ(order.at("object"), domain::ObjectName(type));
  }

  // Return envelope orders live under their envelopes.
  const auto envelopes = CallSim(ioc, client.ListReturnEnvelopes(0, 100, Purpose::kDiscovery));
  ASSERT_FALSE(envelopes.at("data").empty()) << envelopes.dump();
  bool retrieved_one = false;
  for (const auto& envelope : envelopes.at("data")) {
    const std::string envelope_id = envelope.at("id").get<std::string>();
    const auto orders =
        CallSim(ioc, client.ListEnvelopeOrders(envelope_id, 0, 100, Purpose::kDiscovery));
    if (orders.at("data").empty()) continue;
    const std::string id = orders.at("data")[0].at("id").get<std::string>();
    const auto order = CallSim(
        ioc, client.Retrieve({OrderType::kReturnEnvelopeOrder, id, envelope_id}, Purpose::kPoll));
    EXPECT_EQ(order.at("id"), id);
    EXPECT_EQ(order.at("object"), "return_envelope_order");
    retrieved_one = true;
    break;
  }
  EXPECT_TRUE(retrieved_one) << "no return envelope order found under any envelope";
}

TEST(ClientAgainstSimulator, PagesOverMoreThanAThousandOrdersEachExactlyOnce) {
  // About 1/7 of the seeded orders are letters: 8,000 gives well over 1,000 of them.
  SimProcess sim({"--orders", "8000", "--seed", "5", "--speed", "0", "--live-fraction", "0"});
  net::io_context ioc;
  Client client(ioc.get_executor(), SimOptions(sim));
  ListQuery query;
  query.type = OrderType::kLetter;
  std::size_t total = 0;
  const auto items = CallSim(ioc, WalkAll(&client, query, &total));
  ASSERT_GE(total, 1000u);
  EXPECT_EQ(items.size(), total);
  std::set<std::string> ids;
  for (const auto& item : items) {
    EXPECT_EQ(item.at("object"), "letter");
    ids.insert(item.at("id").get<std::string>());
  }
  EXPECT_EQ(ids.size(), total) << "an order was returned twice or not at all";
}

TEST(ClientAgainstSimulator, InjectedFaultsAreRetriedAndNeverMisParsed) {
  SimProcess sim(
      {"--orders", "300", "--seed", "3", "--speed", "0", "--live-fraction", "0", "--fault",
       "500:rate=0.1,endpoint=/letters/", "--fault", "503:rate=0.05,endpoint=/letters/", "--fault",
       "reset:rate=0.1,endpoint=/letters/", "--fault", "truncate:rate=0.1,endpoint=/letters/",
       "--fault", "429:rate=0.05,retry_after_ms=50,endpoint=/letters/"});
  net::io_context ioc;
  Client client(ioc.get_executor(), SimOptions(sim));
  // Lists are not faulted (the endpoint filter names /letters/): collect ids cleanly first.
  const auto page = CallSim(ioc, client.List(OrderType::kLetter, 0, 100, "", Purpose::kDiscovery));
  std::vector<std::string> ids;
  for (const auto& item : page.at("data")) ids.push_back(item.at("id").get<std::string>());
  ASSERT_GE(ids.size(), 20u);

  for (const auto& id : ids) {
    const auto order = CallSim(ioc, client.Retrieve({OrderType::kLetter, id, ""}, Purpose::kPoll));
    EXPECT_EQ(order.at("id"), id);
    EXPECT_EQ(order.at("object"), "letter");
    EXPECT_TRUE(order.contains("status"));
  }
  // Faults did fire and were retried.
  int failed_attempts = 0;
  for (const auto& cell : client.RequestCounts()) {
    if (cell.endpoint == EndpointKind::kRetrieve && cell.status != 200) {
      failed_attempts += static_cast<int>(cell.count);
    }
  }
  EXPECT_GT(failed_attempts, 0);
}

/// Retrieves one letter through 429s injected by the simulator and returns (elapsed, counts).
std::pair<std::chrono::steady_clock::duration, std::map<int, std::uint64_t>> RetrieveThrough429s(
    const std::string& fault) {
  SimProcess sim(
      {"--orders", "50", "--seed", "4", "--speed", "0", "--live-fraction", "0", "--fault", fault});
  net::io_context ioc;
  Client client(ioc.get_executor(), SimOptions(sim));
  const auto page = CallSim(ioc, client.List(OrderType::kLetter, 0, 1, "", Purpose::kDiscovery));
  const std::string id = page.at("data").at(0).at("id").get<std::string>();
  const auto started = std::chrono::steady_clock::now();
  const auto order = CallSim(ioc, client.Retrieve({OrderType::kLetter, id, ""}, Purpose::kPoll));
  const auto elapsed = std::chrono::steady_clock::now() - started;
  EXPECT_EQ(order.at("id"), id);
  std::map<int, std::uint64_t> by_status;
  for (const auto& cell : client.RequestCounts()) {
    if (cell.endpoint == EndpointKind::kRetrieve) by_status[cell.status] += cell.count;
  }
  return {elapsed, by_status};
}

TEST(ClientAgainstSimulator, WaitsAtLeastTheRetryTimeTheSimulatorAsksFor) {
  // Lower bounds only: three 429s asking for 300 ms each cannot be got through faster than 900 ms.
  {
    const auto [elapsed, by_status] =
        RetrieveThrough429s("429:count=3,retry_after_ms=300,endpoint=/letters/");
    EXPECT_EQ(by_status.at(429), 3u);
    EXPECT_EQ(by_status.at(200), 1u);
    EXPECT_GE(elapsed, 900ms);
  }
  {
    const auto [elapsed, by_status] =
        RetrieveThrough429s("429:count=1,retry_after=1,endpoint=/letters/");
    EXPECT_EQ(by_status.at(429), 1u);
    EXPECT_EQ(by_status.at(200), 1u);
    EXPECT_GE(elapsed, 1000ms);
  }
}

TEST(ClientAgainstSimulator, WrongKeyIsAnAuthErrorWithoutTheKey) {
  SimProcess sim({"--orders", "10", "--speed", "0"});
  net::io_context ioc;
  auto options = SimOptions(sim);
  options.api_key = "test_sk_not_the_right_one_42";
  Client client(ioc.get_executor(), options);
  try {
    CallSim(ioc, client.List(OrderType::kLetter, 0, 1, "", Purpose::kCheck));
    FAIL() << "expected ApiError";
  } catch (const ApiError& error) {
    EXPECT_EQ(error.kind(), ApiErrorKind::kAuth);
    EXPECT_EQ(error.status(), 401);
    EXPECT_THAT(std::string(error.what()), ::testing::Not(::testing::HasSubstr(options.api_key)));
  }
  // A Retrieve of an order that does not exist is not found.
  Client good(ioc.get_executor(), SimOptions(sim));
  try {
    CallSim(ioc, good.Retrieve({OrderType::kLetter, "letter_doesnotexist", ""}, Purpose::kPoll));
    FAIL() << "expected ApiError";
  } catch (const ApiError& error) {
    EXPECT_EQ(error.kind(), ApiErrorKind::kNotFound);
  }
}

}  // namespace
}  // namespace mailtrail::postgrid
