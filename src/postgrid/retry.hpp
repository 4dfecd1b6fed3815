#pragma once

#include <chrono>
#include <optional>
#include <string_view>

namespace mailtrail::postgrid {

/// Bounded exponential backoff with jitter, as PostGrid's own SDKs do it (postgrid-api.md §6).
struct BackoffPolicy {
  int max_attempts = 5;  ///< Total attempts including the first (>= 1).
  std::chrono::milliseconds initial{500};
  std::chrono::milliseconds max{8000};
  double jitter = 0.25;  ///< Fraction in [0, 1]: the delay is shortened by up to this much.
};

/// Delay before retry number `retry` (1 for the first retry): min(max, initial * 2^(retry-1)),
/// scaled by (1 - jitter * random01). `random01` must be in [0, 1). Pure.
std::chrono::milliseconds BackoffDelay(const BackoffPolicy& policy, int retry, double random01);

/// The longest server-requested pause honoured; longer values are clamped to it, so one bad
/// header cannot stall the daemon for hours.
inline constexpr std::chrono::milliseconds kMaxRetryAfter{std::chrono::minutes(5)};

/// Parses an HTTP date (IMF-fixdate `Sun, 06 Nov 1994 08:49:37 GMT`, RFC 850
/// `Sunday, 06-Nov-94 08:49:37 GMT` or asctime `Sun Nov  6 08:49:37 1994`). nullopt if invalid.
std::optional<std::chrono::system_clock::time_point> ParseHttpDate(std::string_view text);

/// The pause a 429/503 response asks for: `retry-after-ms` (milliseconds, may be fractional) wins
/// over `Retry-After` (delta seconds, may be fractional, or an HTTP date relative to `now`).
/// Negative or past values give zero; values above kMaxRetryAfter are clamped. nullopt when
/// neither header is present or parseable. Pure.
std::optional<std::chrono::milliseconds> ParseRetryAfter(
    std::optional<std::string_view> retry_after_ms, std::optional<std::string_view> retry_after,
    std::chrono::system_clock::time_point now);

}  // namespace mailtrail::postgrid
