#include "net/async_semaphore.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <vector>

namespace mailtrail::netio {
namespace {

using namespace std::chrono_literals;

struct Tracker {
  int in_use = 0;
  int peak = 0;
  int done = 0;
  std::vector<int> order;
};

net::awaitable<void> UseOnePermit(AsyncSemaphore* semaphore, Tracker* tracker, int id) {
  auto permit = co_await semaphore->Acquire();
  tracker->order.push_back(id);
  tracker->peak = std::max(tracker->peak, ++tracker->in_use);
  net::steady_timer timer(co_await net::this_coro::executor);
  timer.expires_after(2ms);
  co_await timer.async_wait(net::use_awaitable);
  --tracker->in_use;
  ++tracker->done;
}

void RunFor(net::io_context& ioc, const Tracker& tracker, int expected) {
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  while (tracker.done < expected && std::chrono::steady_clock::now() < deadline) {
    ioc.run_one_until(deadline);
  }
}

TEST(AsyncSemaphore, NeverHandsOutMoreThanItsCountAndServesFifo) {
  for (const std::size_t count : {1u, 2u, 5u}) {
    net::io_context ioc;
    AsyncSemaphore semaphore(ioc.get_executor(), count);
    Tracker tracker;
    for (int i = 0; i < 20; ++i) {
      net::co_spawn(ioc, UseOnePermit(&semaphore, &tracker, i), net::detached);
    }
    RunFor(ioc, tracker, 20);
    ASSERT_EQ(tracker.done, 20) << "count " << count;
    EXPECT_LE(tracker.peak, static_cast<int>(count));
    EXPECT_EQ(tracker.peak, static_cast<int>(count)) << "permits were not all used";
    std::vector<int> expected(20);
    for (int i = 0; i < 20; ++i) expected[static_cast<std::size_t>(i)] = i;
    EXPECT_EQ(tracker.order, expected) << "waiters must be served in arrival order";
    EXPECT_EQ(semaphore.in_use(), 0u);
    EXPECT_EQ(semaphore.waiting(), 0u);
  }
}

TEST(AsyncSemaphore, PermitReleasesOnDestructionAndMove) {
  net::io_context ioc;
  AsyncSemaphore semaphore(ioc.get_executor(), 1);
  AsyncSemaphore::Permit outer;
  net::co_spawn(
      ioc,
      [](AsyncSemaphore* s, AsyncSemaphore::Permit* out) -> net::awaitable<void> {
        *out = co_await s->Acquire();
      }(&semaphore, &outer),
      net::detached);
  ioc.run_for(1s);
  EXPECT_EQ(semaphore.in_use(), 1u);
  AsyncSemaphore::Permit moved = std::move(outer);
  EXPECT_EQ(semaphore.in_use(), 1u);
  moved.Reset();
  EXPECT_EQ(semaphore.in_use(), 0u);
}

net::awaitable<void> HoldForever(AsyncSemaphore* semaphore) {
  auto permit = co_await semaphore->Acquire();
  net::steady_timer timer(co_await net::this_coro::executor);
  timer.expires_at(net::steady_timer::time_point::max());
  co_await timer.async_wait(net::use_awaitable);
}

TEST(AsyncSemaphore, PermitInAFrameDestroyedAfterTheSemaphoreIsSafe) {
  // The daemon's shape: the io_context outlives the client that owns the semaphore, and
  // destroys suspended calls (and their permits) only when it goes.
  auto ioc = std::make_unique<net::io_context>();
  {
    AsyncSemaphore semaphore(ioc->get_executor(), 1);
    net::co_spawn(*ioc, HoldForever(&semaphore), net::detached);
    net::co_spawn(*ioc, HoldForever(&semaphore), net::detached);  // waits for a permit
    ioc->run_for(50ms);
    EXPECT_EQ(semaphore.in_use(), 1u);
    EXPECT_EQ(semaphore.waiting(), 1u);
  }
  ioc.reset();  // destroys both frames; must not touch the destroyed semaphore object
  SUCCEED();
}

}  // namespace
}  // namespace mailtrail::netio
