#include <gtest/gtest.h>

#include <chrono>
#include <limits>
#include <stdexcept>
#include <string>

#include "config/config.hpp"

namespace mailtrail::config {
namespace {

using std::chrono::hours;
using std::chrono::milliseconds;
using std::chrono::minutes;
using std::chrono::seconds;

struct GoodDuration {
  std::string text;
  Duration expected;
};

TEST(ParseDurationTest, AcceptsEveryUnit) {
  const GoodDuration cases[] = {
      {"500ms", milliseconds(500)},
      {"1ms", milliseconds(1)},
      {"2s", seconds(2)},
      {"1s", seconds(1)},
      {"15m", minutes(15)},
      {"1h", hours(1)},
      {"14d", hours(14 * 24)},
      {"0", Duration::zero()},
      {"0s", Duration::zero()},
      {"0ms", Duration::zero()},
      {"90m", minutes(90)},
      {"007s", seconds(7)},
      {"36500d", hours(36500LL * 24)},
      {"3153600000000ms", hours(36500LL * 24)},
  };
  for (const auto& c : cases) {
    EXPECT_EQ(ParseDuration(c.text), c.expected) << c.text;
  }
}

struct BadInput {
  std::string text;
  std::string message;
};

TEST(ParseDurationTest, RejectsWithAClearMessage) {
  const BadInput cases[] = {
      {"", "empty duration; 500ms, 2s, 15m, 1h or 14d"},
      {"-1s", "invalid duration \"-1s\": negative values are not allowed"},
      {"+1s", "invalid duration \"+1s\": no sign allowed; write 500ms, 2s, 15m, 1h or 14d"},
      {"10",
       "invalid duration \"10\": missing unit (d, h, m, s, ms), e.g. 500ms, 2s, 15m, 1h or "
       "14d"},
      {"10x", "invalid duration \"10x\": unknown unit \"x\" (use d, h, m, s, ms)"},
      {"10S", "invalid duration \"10S\": unknown unit \"S\" (use d, h, m, s, ms)"},
      {"10sec", "invalid duration \"10sec\": unknown unit \"sec\" (use d, h, m, s, ms)"},
      {"1 s", "invalid duration \"1 s\": no spaces allowed; write 500ms, 2s, 15m, 1h or 14d"},
      {" 1s", "invalid duration \" 1s\": no spaces allowed; write 500ms, 2s, 15m, 1h or 14d"},
      {"1s ", "invalid duration \"1s \": no spaces allowed; write 500ms, 2s, 15m, 1h or 14d"},
      {"1.5h", "invalid duration \"1.5h\": fractions are not supported; use a smaller unit"},
      {"1h30m", "invalid duration \"1h30m\": one number and one unit only (write 90m, not 1h30m)"},
      {"h",
       "invalid duration \"h\": expected a whole number followed by a unit, e.g. 500ms, 2s, "
       "15m, 1h or 14d"},
      {"36501d", "invalid duration \"36501d\": too large (at most 36500d)"},
      {"99999999999999999999s", "invalid duration \"99999999999999999999s\": number too large"},
      {"9223372036854775807ms",
       "invalid duration \"9223372036854775807ms\": too large (at most 36500d)"},
      {"3153600000001ms", "invalid duration \"3153600000001ms\": too large (at most 36500d)"},
  };
  for (const auto& c : cases) {
    try {
      ParseDuration(c.text);
      ADD_FAILURE() << "accepted \"" << c.text << "\"";
    } catch (const std::invalid_argument& e) {
      EXPECT_EQ(std::string(e.what()), c.message) << c.text;
    }
  }
}

TEST(FormatDurationTest, PicksTheLargestExactUnit) {
  EXPECT_EQ(FormatDuration(hours(14 * 24)), "14d");
  EXPECT_EQ(FormatDuration(hours(1)), "1h");
  EXPECT_EQ(FormatDuration(minutes(90)), "90m");
  EXPECT_EQ(FormatDuration(seconds(2)), "2s");
  EXPECT_EQ(FormatDuration(milliseconds(500)), "500ms");
  EXPECT_EQ(FormatDuration(milliseconds(1500)), "1500ms");
  EXPECT_EQ(FormatDuration(hours(25)), "25h");
  EXPECT_EQ(FormatDuration(Duration::zero()), "0");
  EXPECT_EQ(FormatDuration(seconds(-5)), "-5s");
  EXPECT_EQ(FormatDuration(Duration::min()), "-9223372036854775808ms");
}

TEST(FormatDurationTest, RoundTripsThroughParseDuration) {
  const Duration values[] = {
      Duration::zero(),
      milliseconds(1),
      milliseconds(999),
      seconds(1),
      seconds(59),
      seconds(61),
      minutes(1),
      minutes(59),
      hours(1),
      hours(23),
      hours(24),
      hours(24 * 14),
      hours(36500 * 24),
      milliseconds(86'400'001),
      milliseconds(3'153'599'999'999),
  };
  for (Duration value : values) {
    EXPECT_EQ(ParseDuration(FormatDuration(value)), value) << FormatDuration(value);
  }
  const std::string texts[] = {"500ms", "2s", "15m", "1h", "14d", "0"};
  for (const auto& text : texts) EXPECT_EQ(FormatDuration(ParseDuration(text)), text);
}

struct GoodSize {
  std::string text;
  std::size_t expected;
};

TEST(ParseSizeTest, AcceptsBinaryAndDecimalUnits) {
  const GoodSize cases[] = {
      {"64B", 64},
      {"0B", 0},
      {"512KiB", 512 * 1024},
      {"1MiB", 1024 * 1024},
      {"1GiB", std::size_t{1} << 30},
      {"1KB", 1000},
      {"2MB", 2'000'000},
      {"3GB", 3'000'000'000ULL},
      {"1536KiB", 1536 * 1024},
  };
  for (const auto& c : cases) EXPECT_EQ(ParseSize(c.text), c.expected) << c.text;
}

TEST(ParseSizeTest, RejectsWithAClearMessage) {
  const BadInput cases[] = {
      {"", "empty size; 64B, 512KiB or 1MiB"},
      {"1024",
       "invalid size \"1024\": missing unit (GiB, MiB, KiB, GB, MB, KB, B), e.g. 64B, "
       "512KiB or 1MiB"},
      {"0",
       "invalid size \"0\": missing unit (GiB, MiB, KiB, GB, MB, KB, B), e.g. 64B, 512KiB "
       "or 1MiB"},
      {"1mib",
       "invalid size \"1mib\": unknown unit \"mib\" (use GiB, MiB, KiB, GB, MB, KB, B; "
       "KiB/MiB/GiB are 1024-based, KB/MB/GB 1000-based)"},
      {"1M",
       "invalid size \"1M\": unknown unit \"M\" (use GiB, MiB, KiB, GB, MB, KB, B; "
       "KiB/MiB/GiB are 1024-based, KB/MB/GB 1000-based)"},
      {"-1MiB", "invalid size \"-1MiB\": negative values are not allowed"},
      {"1.5MiB", "invalid size \"1.5MiB\": fractions are not supported; use a smaller unit"},
      {"1 MiB", "invalid size \"1 MiB\": no spaces allowed; write 64B, 512KiB or 1MiB"},
      {"MiB",
       "invalid size \"MiB\": expected a whole number followed by a unit, e.g. 64B, "
       "512KiB or 1MiB"},
      {"17179869184GiB", "invalid size \"17179869184GiB\": too large"},
  };
  for (const auto& c : cases) {
    try {
      ParseSize(c.text);
      ADD_FAILURE() << "accepted \"" << c.text << "\"";
    } catch (const std::invalid_argument& e) {
      EXPECT_EQ(std::string(e.what()), c.message) << c.text;
    }
  }
}

TEST(FormatSizeTest, RoundTripsThroughParseSize) {
  EXPECT_EQ(FormatSize(1024 * 1024), "1MiB");
  EXPECT_EQ(FormatSize(512 * 1024), "512KiB");
  EXPECT_EQ(FormatSize(1000), "1000B");
  EXPECT_EQ(FormatSize(0), "0B");
  for (std::size_t value : {std::size_t{1}, std::size_t{1000}, std::size_t{1024},
                            std::size_t{1} << 30, std::size_t{3} << 20, std::size_t{1536}}) {
    EXPECT_EQ(ParseSize(FormatSize(value)), value) << FormatSize(value);
  }
}

}  // namespace
}  // namespace mailtrail::config
