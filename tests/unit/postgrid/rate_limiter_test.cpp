// The token bucket under a synthetic clock: the rate ceiling holds over every window, pauses
// (429) hold every acquisition back, and unlimited mode still honours pauses.
#include "postgrid/rate_limiter.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <vector>

namespace mailtrail::postgrid {
namespace {

using namespace std::chrono_literals;
using Clock = TokenBucket::Clock;
using TimePoint = TokenBucket::TimePoint;

/// Greedy clients that retry exactly when told: the worst case for the ceiling.
std::vector<TimePoint> Drive(TokenBucket& bucket, TimePoint start, Clock::duration span,
                             int clients) {
  std::vector<TimePoint> next(static_cast<std::size_t>(clients), start);
  std::vector<TimePoint> granted;
  const TimePoint end = start + span;
  for (;;) {
    auto it = std::min_element(next.begin(), next.end());
    if (*it >= end) break;
    const auto wait = bucket.TryAcquire(*it);
    if (wait == Clock::duration::zero()) {
      granted.push_back(*it);
      *it += 1ms;  // the client's next request follows quickly
    } else {
      EXPECT_GT(wait, Clock::duration::zero());
      *it += wait;
    }
  }
  return granted;
}

/// Largest number of grants in any window [t, t + window].
std::size_t MaxInWindow(const std::vector<TimePoint>& granted, Clock::duration window) {
  std::size_t best = 0;
  std::size_t lo = 0;
  for (std::size_t hi = 0; hi < granted.size(); ++hi) {
    while (granted[hi] - granted[lo] > window) ++lo;
    best = std::max(best, hi - lo + 1);
  }
  return best;
}

TEST(TokenBucket, NeverExceedsRatePlusBurstOverAnyWindow) {
  const TimePoint t0{};
  for (const double rps : {1.0, 10.0, 50.0, 333.0}) {
    const double burst = DefaultBurst(rps);
    TokenBucket bucket(rps, burst, t0);
    const auto granted = Drive(bucket, t0, 20s, 8);
    for (const auto window : {100ms, 1000ms, 2500ms, 10000ms}) {
      const double seconds = std::chrono::duration<double>(window).count();
      EXPECT_LE(static_cast<double>(MaxInWindow(granted, window)), burst + rps * seconds + 1e-9)
          << "rps " << rps << " window " << seconds;
    }
    // Over 10 s windows the ceiling is within 5 % of the rate (the bound).
    EXPECT_LE(static_cast<double>(MaxInWindow(granted, 10s)), rps * 10 * 1.05) << rps;
    // And the bucket does let the rate through (greedy clients get close to it).
    EXPECT_GE(static_cast<double>(granted.size()), rps * 20 * 0.95) << rps;
  }
}

TEST(TokenBucket, StartsWithBurstThenPacesAtTheRate) {
  const TimePoint t0{};
  TokenBucket bucket(10, 3, t0);
  EXPECT_EQ(bucket.TryAcquire(t0), Clock::duration::zero());
  EXPECT_EQ(bucket.TryAcquire(t0), Clock::duration::zero());
  EXPECT_EQ(bucket.TryAcquire(t0), Clock::duration::zero());
  const auto wait = bucket.TryAcquire(t0);
  EXPECT_GE(wait, 100ms);
  EXPECT_LE(wait, 101ms);
  EXPECT_GT(bucket.TryAcquire(t0 + 99ms), Clock::duration::zero());
  EXPECT_EQ(bucket.TryAcquire(t0 + 101ms), Clock::duration::zero());
}

TEST(TokenBucket, PauseHoldsEveryAcquisitionUntilItEnds) {
  const TimePoint t0{};
  TokenBucket bucket(50, 5, t0);
  bucket.PauseUntil(t0 + 2s);
  EXPECT_EQ(bucket.TryAcquire(t0), 2s);
  EXPECT_EQ(bucket.TryAcquire(t0 + 1500ms), 500ms);
  // A shorter pause does not shorten the current one.
  bucket.PauseUntil(t0 + 1s);
  EXPECT_EQ(bucket.TryAcquire(t0 + 1900ms), 100ms);
  // At the end one request goes, the rest trickle at the rate instead of a burst of 5.
  EXPECT_EQ(bucket.TryAcquire(t0 + 2s), Clock::duration::zero());
  EXPECT_GT(bucket.TryAcquire(t0 + 2s), Clock::duration::zero());
  const auto granted = Drive(bucket, t0 + 2s, 1s, 8);
  EXPECT_LE(granted.size(), 50u);
}

TEST(TokenBucket, UnlimitedRateStillHonoursPauses) {
  const TimePoint t0{};
  TokenBucket bucket(0, 1, t0);
  for (int i = 0; i < 1000; ++i) ASSERT_EQ(bucket.TryAcquire(t0), Clock::duration::zero());
  bucket.PauseUntil(t0 + 750ms);
  EXPECT_EQ(bucket.TryAcquire(t0 + 250ms), 500ms);
  EXPECT_EQ(bucket.TryAcquire(t0 + 750ms), Clock::duration::zero());
  EXPECT_EQ(bucket.TryAcquire(t0 + 750ms), Clock::duration::zero());
}

TEST(TokenBucket, ClockGoingNowhereGrantsNothingExtra) {
  const TimePoint t0 = TimePoint{} + 10s;
  TokenBucket bucket(5, 1, t0);
  EXPECT_EQ(bucket.TryAcquire(t0), Clock::duration::zero());
  // Time standing still (or a stale earlier reading) never mints tokens.
  EXPECT_GT(bucket.TryAcquire(t0), Clock::duration::zero());
  EXPECT_GT(bucket.TryAcquire(t0 - 5s), Clock::duration::zero());
}

TEST(DefaultBurst, IsATenthOfTheRateAndAtLeastOne) {
  EXPECT_EQ(DefaultBurst(0), 1);
  EXPECT_EQ(DefaultBurst(5), 1);
  EXPECT_EQ(DefaultBurst(50), 5);
  EXPECT_EQ(DefaultBurst(1000), 100);
}

}  // namespace
}  // namespace mailtrail::postgrid
