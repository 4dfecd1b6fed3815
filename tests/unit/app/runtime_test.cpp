#include "app/runtime.hpp"

#include <gtest/gtest.h>

#include <chrono>

namespace mailtrail::app {
namespace {

using std::chrono::milliseconds;
using std::chrono::minutes;
using std::chrono::seconds;

TEST(ClaimBatchTest, SixteenPerWorkerWithinBoundsOfRateAndLease) {
  struct Case {
    const char* name;
    std::size_t workers;
    double requests_per_second;
    milliseconds lease;
    std::size_t expected;
  };
  const Case cases[] = {
      {"defaults: 8 workers, 50/s, 5 min lease", 8, 50, minutes(5), 128},
      {"the cap of 512 for many workers", 256, 1e6, minutes(5), 512},
      {"one worker", 1, 50, minutes(5), 16},
      // 2 s lease at 20/s: a quarter of the lease fetches 10 orders.
      {"short lease and a low rate", 8, 20, seconds(2), 10},
      {"never fewer than one per worker", 8, 0.001, seconds(2), 8},
      {"a quarter lease exactly at the cap", 8, 128, seconds(4), 128},
  };
  for (const Case& c : cases) {
    EXPECT_EQ(ClaimBatch(c.workers, c.requests_per_second, c.lease), c.expected) << c.name;
  }
}

}  // namespace
}  // namespace mailtrail::app
