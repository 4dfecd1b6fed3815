#include <gtest/gtest.h>

#include "faults.hpp"
#include "sim_util.hpp"

namespace mailtrail::sim {
namespace {

// 1652285000974 ms is the seed's sample sendDate; python3:
// datetime.fromtimestamp(1652285000.974, timezone.utc) -> 2022-05-11T16:03:20.974
TEST(SimUtil, FormatIsoMatchesJavaScriptToIsoString) {
  EXPECT_EQ(FormatIso(1652285000974), "2022-05-11T16:03:20.974Z");
  EXPECT_EQ(FormatIso(0), "1970-01-01T00:00:00.000Z");
}

TEST(SimUtil, ParseIsoIsTheInverseOfFormatIso) {
  EXPECT_EQ(ParseIso("2022-05-11T16:03:20.974Z"), 1652285000974);
  EXPECT_EQ(ParseIso("2022-05-11T16:03:20Z"), 1652285000000);
  EXPECT_FALSE(ParseIso("2022-05-11 16:03:20"));
}

TEST(SimUtil, ParseDurationUnits) {
  EXPECT_EQ(ParseDurationMs("500ms"), 500);
  EXPECT_EQ(ParseDurationMs("2s"), 2000);
  EXPECT_EQ(ParseDurationMs("15m"), 900000);
  EXPECT_EQ(ParseDurationMs("1h"), 3600000);
  EXPECT_EQ(ParseDurationMs("14d"), 14 * 86400000LL);
  EXPECT_FALSE(ParseDurationMs("abc"));
  EXPECT_FALSE(ParseDurationMs("5y"));
}

TEST(SimUtil, IdCodecRoundTripsAndRejectsForeignIds) {
  const IdCodec codec(42);
  for (uint64_t i : {0ULL, 1ULL, 999ULL, 1000000ULL}) {
    const std::string id = codec.Encode(i);
    EXPECT_EQ(id.size(), 11u);
    EXPECT_EQ(codec.Decode(id), i);
  }
  EXPECT_NE(IdCodec(43).Encode(5), codec.Encode(5));
  EXPECT_FALSE(codec.Decode("not-base62!"));
  EXPECT_FALSE(codec.Decode("short"));
}

TEST(SimUtil, ParseQueryDecodesPercentAndPlus) {
  const auto q = ParseQuery("search=%7B%22a%22%3A1%7D&x=a+b&flag");
  ASSERT_EQ(q.size(), 3u);
  EXPECT_EQ(q[0].second, "{\"a\":1}");
  EXPECT_EQ(q[1].second, "a b");
  EXPECT_EQ(q[2].first, "flag");
}

TEST(FaultFlags, ParsesKindAndKeys) {
  const auto f = ParseFaultFlag("429:rate=0.25,retry_after=3,endpoint=/letters,count=2");
  EXPECT_EQ(f.kind, FaultKind::kRateLimit);
  EXPECT_DOUBLE_EQ(f.rate, 0.25);
  EXPECT_EQ(f.retry_after_s, 3);
  EXPECT_EQ(f.endpoint, "/letters");
  EXPECT_EQ(f.remaining, 2);
  EXPECT_EQ(ParseFaultFlag("502").status, 502);
  EXPECT_EQ(ParseFaultFlag("latency:ms=250").latency_ms, 250);
  EXPECT_THROW(ParseFaultFlag("teapot"), std::invalid_argument);
  EXPECT_THROW(ParseFaultFlag("429:rate=2"), std::invalid_argument);
  EXPECT_THROW(ParseFaultFlag("429:bogus=1"), std::invalid_argument);
}

TEST(FaultFlags, CountLimitsFirings) {
  Faults faults(1);
  auto spec = ParseFaultFlag("503:count=2");
  faults.Add(spec);
  EXPECT_TRUE(faults.Decide("GET", "/letters").action);
  EXPECT_TRUE(faults.Decide("GET", "/letters").action);
  EXPECT_FALSE(faults.Decide("GET", "/letters").action);
}

TEST(FaultFlags, EndpointAndRateZeroDoNotFire) {
  Faults faults(1);
  faults.Add(ParseFaultFlag("500:endpoint=/postcards"));
  faults.Add(ParseFaultFlag("429:rate=0"));
  for (int i = 0; i < 100; ++i) EXPECT_FALSE(faults.Decide("GET", "/letters/x").action);
  EXPECT_TRUE(faults.Decide("GET", "/postcards/x").action);
}

}  // namespace
}  // namespace mailtrail::sim
