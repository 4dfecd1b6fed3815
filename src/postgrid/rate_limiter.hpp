#pragma once

#include <chrono>
#include <mutex>

#include "net/net.hpp"

namespace mailtrail::postgrid {

/// The pure token bucket behind RateLimiter. Time is passed in, never read, so tests drive it
/// with a synthetic clock.
///
/// `rate` tokens per second accrue up to `burst`; each request takes one. Over any interval of
/// length W at most `burst + rate * W` acquisitions succeed. A rate of 0 means unlimited (only
/// pauses apply). PauseUntil() blocks every acquisition until that time and restarts the bucket
/// with a single token, so the requests after a 429 trickle in at the rate instead of bursting.
/// Not thread-safe on its own (RateLimiter locks around it).
class TokenBucket {
 public:
  using Clock = std::chrono::steady_clock;
  using TimePoint = Clock::time_point;
  using Duration = Clock::duration;

  TokenBucket(double rate_per_second, double burst, TimePoint now);

  /// Takes one token and returns zero if one is available at `now`; otherwise takes nothing and
  /// returns how long to wait before trying again (always > 0).
  Duration TryAcquire(TimePoint now);

  /// No acquisition succeeds before `until` (a later pause extends, an earlier one is ignored).
  void PauseUntil(TimePoint until);

  /// Changes the rate and depth from `now` on; tokens accrued so far are kept up to the new depth.
  void SetRate(double rate_per_second, double burst, TimePoint now);

  TimePoint paused_until() const { return paused_until_; }
  double rate() const { return rate_; }
  double burst() const { return burst_; }

 private:
  void Refill(TimePoint now);

  double rate_;
  double burst_;
  double tokens_;
  TimePoint last_;
  TimePoint paused_until_;
};

/// The default burst for a rate: max(1, rps / 10).
double DefaultBurst(double requests_per_second);

/// The one process-wide request rate limiter (contract.md `postgrid.requests_per_second`):
/// an asynchronous wrapper around TokenBucket on the steady clock.
///
/// Acquire() may be awaited from any number of coroutines; Pause*() may be called from any
/// thread. Waiters re-check the bucket after every sleep, so a pause that starts while they sleep
/// still holds them back.
class RateLimiter {
 public:
  /// `requests_per_second` 0 disables rate limiting (429 pauses still apply).
  RateLimiter(double requests_per_second, double burst);

  /// Completes when one request may be sent. Throws only if the coroutine's timer fails.
  net::awaitable<void> Acquire();

  /// Pauses every request of the process for `duration` from now (the 429 Retry-After).
  void PauseFor(std::chrono::milliseconds duration);
  /// Time remaining in the current pause (zero if none).
  std::chrono::milliseconds PauseRemaining() const;

  /// Changes the ceiling (e.g. the account's limit split across live replicas), with the default
  /// burst for the new rate. Thread-safe.
  void SetRate(double requests_per_second);
  double rate() const;

 private:
  mutable std::mutex mutex_;
  TokenBucket bucket_;
};

}  // namespace mailtrail::postgrid
