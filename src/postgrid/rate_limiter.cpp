#include "postgrid/rate_limiter.hpp"

#include <algorithm>
#include <cmath>

namespace mailtrail::postgrid {

TokenBucket::TokenBucket(double rate_per_second, double burst, TimePoint now)
    : rate_(std::max(0.0, rate_per_second)),
      burst_(std::max(1.0, burst)),
      tokens_(burst_),
      last_(now),
      paused_until_(now) {}

void TokenBucket::Refill(TimePoint now) {
  if (now <= last_) return;
  const double elapsed = std::chrono::duration<double>(now - last_).count();
  tokens_ = std::min(burst_, tokens_ + elapsed * rate_);
  last_ = now;
}

TokenBucket::Duration TokenBucket::TryAcquire(TimePoint now) {
  if (now < paused_until_) return paused_until_ - now;
  if (rate_ <= 0) return Duration::zero();
  Refill(now);
  if (tokens_ >= 1.0) {
    tokens_ -= 1.0;
    return Duration::zero();
  }
  const double seconds = (1.0 - tokens_) / rate_;
  const auto wait = std::chrono::duration_cast<Duration>(std::chrono::duration<double>(seconds));
  // Round up by one tick so the retry never lands a hair before the token exists.
  return std::max(wait, Duration::zero()) + Duration(1);
}

void TokenBucket::PauseUntil(TimePoint until) {
  if (until <= paused_until_) return;
  paused_until_ = until;
  // Nothing accrues during the pause; one token is ready at its end.
  tokens_ = std::min(1.0, burst_);
  last_ = until;
}

void TokenBucket::SetRate(double rate_per_second, double burst, TimePoint now) {
  if (now >= paused_until_) Refill(now);
  rate_ = rate_per_second;
  burst_ = burst;
  tokens_ = std::min(tokens_, burst_);
}

double DefaultBurst(double requests_per_second) {
  return std::max(1.0, std::floor(requests_per_second / 10.0));
}

RateLimiter::RateLimiter(double requests_per_second, double burst)
    : bucket_(requests_per_second, burst, TokenBucket::Clock::now()) {}

net::awaitable<void> RateLimiter::Acquire() {
  auto executor = co_await net::this_coro::executor;
  net::steady_timer timer(executor);
  for (;;) {
    TokenBucket::Duration wait;
    {
      std::lock_guard lock(mutex_);
      wait = bucket_.TryAcquire(TokenBucket::Clock::now());
    }
    if (wait == TokenBucket::Duration::zero()) co_return;
    timer.expires_after(wait);
    co_await timer.async_wait(net::use_awaitable);
  }
}

void RateLimiter::PauseFor(std::chrono::milliseconds duration) {
  std::lock_guard lock(mutex_);
  bucket_.PauseUntil(TokenBucket::Clock::now() + duration);
}

void RateLimiter::SetRate(double requests_per_second) {
  std::lock_guard lock(mutex_);
  if (requests_per_second == bucket_.rate()) return;
  bucket_.SetRate(requests_per_second, DefaultBurst(requests_per_second),
                  TokenBucket::Clock::now());
}

double RateLimiter::rate() const {
  std::lock_guard lock(mutex_);
  return bucket_.rate();
}

std::chrono::milliseconds RateLimiter::PauseRemaining() const {
  std::lock_guard lock(mutex_);
  const auto now = TokenBucket::Clock::now();
  const auto until = bucket_.paused_until();
  if (until <= now) return std::chrono::milliseconds(0);
  return std::chrono::ceil<std::chrono::milliseconds>(until - now);
}

}  // namespace mailtrail::postgrid
