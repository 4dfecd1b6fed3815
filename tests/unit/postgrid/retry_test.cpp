// Backoff/jitter math, Retry-After parsing and the status classification table: the pure parts of
// the client's retry policy.
#include "postgrid/retry.hpp"

#include <gtest/gtest.h>

#include <chrono>

#include "postgrid/api_error.hpp"

namespace mailtrail::postgrid {
namespace {

using namespace std::chrono_literals;
using std::chrono::milliseconds;
using std::chrono::system_clock;

TEST(BackoffDelay, DoublesFromInitialUpToTheCapWithoutJitter) {
  const BackoffPolicy policy{.max_attempts = 10, .initial = 500ms, .max = 8000ms, .jitter = 0.25};
  // random01 = 0 means no shortening.
  EXPECT_EQ(BackoffDelay(policy, 1, 0.0), 500ms);
  EXPECT_EQ(BackoffDelay(policy, 2, 0.0), 1000ms);
  EXPECT_EQ(BackoffDelay(policy, 3, 0.0), 2000ms);
  EXPECT_EQ(BackoffDelay(policy, 4, 0.0), 4000ms);
  EXPECT_EQ(BackoffDelay(policy, 5, 0.0), 8000ms);
  EXPECT_EQ(BackoffDelay(policy, 6, 0.0), 8000ms);
  EXPECT_EQ(BackoffDelay(policy, 60, 0.0), 8000ms);  // no overflow for absurd retry counts
}

TEST(BackoffDelay, JitterShortensByAtMostTheJitterFraction) {
  const BackoffPolicy policy{.max_attempts = 5, .initial = 500ms, .max = 8000ms, .jitter = 0.25};
  EXPECT_EQ(BackoffDelay(policy, 1, 0.5), 437ms);   // 500 * (1 - 0.125) = 437.5
  EXPECT_EQ(BackoffDelay(policy, 5, 0.5), 7000ms);  // 8000 * 0.875
  for (int retry = 1; retry <= 8; ++retry) {
    for (const double u : {0.0, 0.1, 0.37, 0.5, 0.9, 0.999999}) {
      const auto full = BackoffDelay(policy, retry, 0.0);
      const auto jittered = BackoffDelay(policy, retry, u);
      EXPECT_LE(jittered, full) << "retry " << retry << " u " << u;
      EXPECT_GE(jittered.count(), static_cast<long long>(full.count() * 0.75) - 1)
          << "retry " << retry << " u " << u;
    }
  }
}

TEST(BackoffDelay, ZeroJitterIsDeterministicAndOutOfRangeRandomIsClamped) {
  const BackoffPolicy policy{.max_attempts = 5, .initial = 100ms, .max = 1000ms, .jitter = 0.0};
  EXPECT_EQ(BackoffDelay(policy, 2, 0.99), 200ms);
  const BackoffPolicy jittery{.max_attempts = 5, .initial = 100ms, .max = 1000ms, .jitter = 0.5};
  EXPECT_EQ(BackoffDelay(jittery, 1, 7.0), 50ms);    // clamped to 1
  EXPECT_EQ(BackoffDelay(jittery, 1, -3.0), 100ms);  // clamped to 0
}

system_clock::time_point At(int y, unsigned mo, unsigned d, int h, int mi, int s) {
  return std::chrono::sys_days(std::chrono::year(y) / std::chrono::month(mo) /
                               std::chrono::day(d)) +
         std::chrono::hours(h) + std::chrono::minutes(mi) + std::chrono::seconds(s);
}

TEST(ParseHttpDate, AcceptsTheThreeHttpFormats) {
  const auto expected = At(1994, 11, 6, 8, 49, 37);
  EXPECT_EQ(ParseHttpDate("Sun, 06 Nov 1994 08:49:37 GMT"), expected);
  EXPECT_EQ(ParseHttpDate("Sunday, 06-Nov-94 08:49:37 GMT"), expected);
  EXPECT_EQ(ParseHttpDate("Sun Nov  6 08:49:37 1994"), expected);
  EXPECT_EQ(ParseHttpDate("  Fri, 27 Nov 2026 04:30:00 GMT "), At(2026, 11, 27, 4, 30, 0));
}

TEST(ParseHttpDate, RejectsMalformedDates) {
  for (const char* bad :
       {"", "tomorrow", "Sun, 06 Nov 1994 08:49:37", "Sun, 31 Feb 2026 00:00:00 GMT",
        "Sun, 06 Foo 1994 08:49:37 GMT", "Sun, 06 Nov 1994 25:00:00 GMT",
        "Sun, 06 Nov 94 08:49:37 GMT", "2026-11-27T04:30:00Z"}) {
    EXPECT_FALSE(ParseHttpDate(bad).has_value()) << bad;
  }
}

TEST(ParseRetryAfter, DeltaSecondsIncludingFractions) {
  const auto now = At(2026, 11, 27, 4, 0, 0);
  EXPECT_EQ(ParseRetryAfter(std::nullopt, "2", now), 2000ms);
  EXPECT_EQ(ParseRetryAfter(std::nullopt, " 1.5 ", now), 1500ms);
  EXPECT_EQ(ParseRetryAfter(std::nullopt, "0", now), 0ms);
  EXPECT_EQ(ParseRetryAfter(std::nullopt, "-4", now), 0ms);
}

TEST(ParseRetryAfter, RetryAfterMsWinsOverRetryAfter) {
  const auto now = At(2026, 11, 27, 4, 0, 0);
  EXPECT_EQ(ParseRetryAfter("250", "9", now), 250ms);
  EXPECT_EQ(ParseRetryAfter("250.2", std::nullopt, now), 251ms);  // rounded up, never early
  // An unreadable retry-after-ms falls back to Retry-After.
  EXPECT_EQ(ParseRetryAfter("soon", "3", now), 3000ms);
}

TEST(ParseRetryAfter, HttpDateIsRelativeToNow) {
  const auto now = At(2026, 11, 27, 4, 0, 0);
  EXPECT_EQ(ParseRetryAfter(std::nullopt, "Fri, 27 Nov 2026 04:00:07 GMT", now), 7000ms);
  EXPECT_EQ(ParseRetryAfter(std::nullopt, "Fri, 27 Nov 2026 04:00:07 GMT", now + 500ms), 6500ms);
  EXPECT_EQ(ParseRetryAfter(std::nullopt, "Fri, 27 Nov 2026 03:59:00 GMT", now), 0ms);  // past
}

TEST(ParseRetryAfter, ClampsHugeValuesAndIgnoresGarbage) {
  const auto now = At(2026, 11, 27, 4, 0, 0);
  EXPECT_EQ(ParseRetryAfter(std::nullopt, "86400", now), kMaxRetryAfter);
  EXPECT_EQ(ParseRetryAfter("99999999", std::nullopt, now), kMaxRetryAfter);
  EXPECT_EQ(ParseRetryAfter(std::nullopt, "Sat, 27 Nov 2027 04:00:00 GMT", now), kMaxRetryAfter);
  EXPECT_FALSE(ParseRetryAfter(std::nullopt, std::nullopt, now).has_value());
  EXPECT_FALSE(ParseRetryAfter(std::nullopt, "later please", now).has_value());
  EXPECT_FALSE(ParseRetryAfter("", "", now).has_value());
}

struct ClassificationRow {
  int status;
  bool success;
  bool retry;
  ApiErrorKind kind;
};

TEST(ClassifyStatus, MatchesThePostGridRetryTable) {
  // postgrid-api.md section 6: the SDKs retry 408, 409, 429 and 5xx; 400/401/403/404/422 are final.
  const ClassificationRow rows[] = {
      {200, true, false, ApiErrorKind::kTransient},
      {201, true, false, ApiErrorKind::kTransient},
      {204, true, false, ApiErrorKind::kTransient},
      {400, false, false, ApiErrorKind::kRejected},
      {401, false, false, ApiErrorKind::kAuth},
      {403, false, false, ApiErrorKind::kAuth},
      {404, false, false, ApiErrorKind::kNotFound},
      {405, false, false, ApiErrorKind::kRejected},
      {408, false, true, ApiErrorKind::kTransient},
      {409, false, true, ApiErrorKind::kTransient},
      {410, false, false, ApiErrorKind::kRejected},
      {422, false, false, ApiErrorKind::kRejected},
      {429, false, true, ApiErrorKind::kTransient},
      {500, false, true, ApiErrorKind::kTransient},
      {502, false, true, ApiErrorKind::kTransient},
      {503, false, true, ApiErrorKind::kTransient},
      {504, false, true, ApiErrorKind::kTransient},
      {599, false, true, ApiErrorKind::kTransient},
      {301, false, false, ApiErrorKind::kBadResponse},
      {100, false, false, ApiErrorKind::kBadResponse},
  };
  for (const auto& row : rows) {
    const StatusClass got = ClassifyStatus(row.status);
    EXPECT_EQ(got.success, row.success) << row.status;
    EXPECT_EQ(got.retry, row.retry) << row.status;
    if (!row.success) {
      EXPECT_EQ(got.kind, row.kind) << row.status;
    }
  }
}

TEST(ApiError, MessageNamesEndpointOrderStatusAndKind) {
  const ApiError error(ApiErrorKind::kNotFound, 404, "GET /letters/letter_1", "letter_1",
                       "not_found_error: no such letter");
  const std::string message = error.what();
  EXPECT_NE(message.find("GET /letters/letter_1"), std::string::npos) << message;
  EXPECT_NE(message.find("order letter_1"), std::string::npos) << message;
  EXPECT_NE(message.find("HTTP 404"), std::string::npos) << message;
  EXPECT_NE(message.find("not found"), std::string::npos) << message;
  EXPECT_EQ(error.kind(), ApiErrorKind::kNotFound);
  EXPECT_EQ(error.status(), 404);
  EXPECT_EQ(error.order_id(), "letter_1");
}

}  // namespace
}  // namespace mailtrail::postgrid
