// DbExecutor against a real PostgreSQL: Run() keeps to the primary connection (the leader's
// advisory lock lives in its session), RunPooled() spreads self-contained work over the others.
#include <gtest/gtest.h>

#include <chrono>
#include <future>
#include <memory>
#include <pqxx/pqxx>
#include <set>

#include "pg_test_database.hpp"
#include "sync/db_executor.hpp"

namespace mailtrail::sync {
namespace {

int BackendPid(store::Database& database) {
  pqxx::nontransaction tx(database.Get());
  return tx.exec1("SELECT pg_backend_pid()")[0].as<int>();
}

// Runs `body` as a coroutine on a fresh io_context until it finishes.
template <typename Body>
void RunCoroutine(Body body) {
  net::io_context io;
  std::exception_ptr failure;
  net::co_spawn(io, std::move(body), [&failure](std::exception_ptr error) { failure = error; });
  io.run();
  if (failure) std::rethrow_exception(failure);
}

TEST(DbExecutorPgTest, RunAlwaysUsesThePrimaryConnection) {
  testing::TestDatabase database;
  DbExecutor db(database.dsn(), 2);
  ASSERT_EQ(db.connections(), 2U);
  std::set<int> pids;
  RunCoroutine([&]() -> net::awaitable<void> {
    for (int i = 0; i < 5; ++i) {
      auto pid = [](store::Database& connection) { return BackendPid(connection); };
      pids.insert(co_await db.Run(std::move(pid)));
    }
  });
  EXPECT_EQ(pids.size(), 1U);
  EXPECT_TRUE(db.reachable());
}

TEST(DbExecutorPgTest, PooledCallsRunAtOnceOnTwoConnections) {
  testing::TestDatabase database;
  DbExecutor db(database.dsn(), 2);
  // The first call waits (up to 10 s) for the second to start: on one connection they would run
  // one after the other and the wait would time out.
  auto second_started = std::make_shared<std::promise<void>>();
  std::shared_future<void> started = second_started->get_future().share();
  int first_pid = 0;
  int second_pid = 0;
  bool first_saw_second = false;
  int primary_pid = 0;
  RunCoroutine([&]() -> net::awaitable<void> {
    auto primary = [](store::Database& connection) { return BackendPid(connection); };
    primary_pid = co_await db.Run(std::move(primary));

    auto executor = co_await net::this_coro::executor;
    auto first = [started, &first_saw_second](store::Database& connection) {
      first_saw_second = started.wait_for(std::chrono::seconds(10)) == std::future_status::ready;
      return BackendPid(connection);
    };
    auto second = [second_started](store::Database& connection) {
      second_started->set_value();
      return BackendPid(connection);
    };
    int finished = 0;
    net::steady_timer both_done(executor, net::steady_timer::time_point::max());
    auto spawn = [&](auto call, int* pid) {
      net::co_spawn(executor, db.RunPooled(std::move(call)),
                    [pid, &finished, &both_done](std::exception_ptr error, int value) {
                      if (error) std::rethrow_exception(error);
                      *pid = value;
                      if (++finished == 2) both_done.cancel();
                    });
    };
    spawn(std::move(first), &first_pid);
    spawn(std::move(second), &second_pid);
    boost::system::error_code cancelled;
    co_await both_done.async_wait(net::redirect_error(net::use_awaitable, cancelled));
  });
  EXPECT_TRUE(first_saw_second);
  EXPECT_NE(first_pid, 0);
  EXPECT_NE(second_pid, 0);
  EXPECT_NE(first_pid, second_pid);
  // One of the two is the primary's connection: the pool adds one connection, not two.
  EXPECT_TRUE(first_pid == primary_pid || second_pid == primary_pid);
}

TEST(DbExecutorPgTest, OneConnectionRunsPooledCallsInOrderOnThePrimary) {
  testing::TestDatabase database;
  DbExecutor db(database.dsn(), 1);
  std::set<int> pids;
  RunCoroutine([&]() -> net::awaitable<void> {
    for (int i = 0; i < 3; ++i) {
      auto pid = [](store::Database& connection) { return BackendPid(connection); };
      auto pooled_pid = [](store::Database& connection) { return BackendPid(connection); };
      pids.insert(co_await db.Run(std::move(pid)));
      pids.insert(co_await db.RunPooled(std::move(pooled_pid)));
    }
  });
  EXPECT_EQ(pids.size(), 1U);
}

}  // namespace
}  // namespace mailtrail::sync
