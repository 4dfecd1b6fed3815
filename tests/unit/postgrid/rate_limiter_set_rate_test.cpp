// Changing the ceiling at run time (replicas share the account's rate): grants follow the new
// rate from the moment it is set, and tokens saved up never exceed the new depth.
#include <gtest/gtest.h>

#include "postgrid/rate_limiter.hpp"

namespace mailtrail::postgrid {
namespace {

using namespace std::chrono_literals;
using Clock = TokenBucket::Clock;

int GrantsWithin(TokenBucket& bucket, Clock::time_point start, Clock::duration span) {
  // A greedy client that retries exactly when the bucket says, as RateLimiter::Acquire does.
  int granted = 0;
  for (auto t = start; t < start + span;) {
    const auto wait = bucket.TryAcquire(t);
    if (wait == Clock::duration::zero()) {
      ++granted;
    } else {
      t += wait;
    }
  }
  return granted;
}

TEST(TokenBucketSetRate, HalvingTheRateHalvesTheGrants) {
  const auto start = Clock::time_point{} + 1h;
  TokenBucket bucket(100, 1, start);
  EXPECT_NEAR(GrantsWithin(bucket, start, 10s), 1000, 2);
  bucket.SetRate(50, 1, start + 10s);
  EXPECT_NEAR(GrantsWithin(bucket, start + 10s, 10s), 500, 2);
  EXPECT_EQ(bucket.rate(), 50);
}

TEST(TokenBucketSetRate, SavedTokensAreCutToTheNewDepth) {
  const auto start = Clock::time_point{} + 1h;
  TokenBucket bucket(100, 10, start);
  bucket.SetRate(100, 2, start + 5s);  // 10 tokens saved, depth now 2
  int immediate = 0;
  while (bucket.TryAcquire(start + 5s) == Clock::duration::zero()) ++immediate;
  EXPECT_EQ(immediate, 2);
}

TEST(RateLimiterSetRate, ReportsTheNewRate) {
  RateLimiter limiter(60, DefaultBurst(60));
  limiter.SetRate(20);
  EXPECT_EQ(limiter.rate(), 20);
}

}  // namespace
}  // namespace mailtrail::postgrid
