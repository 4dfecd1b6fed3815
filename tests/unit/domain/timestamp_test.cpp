#include "domain/timestamp.hpp"

#include <gtest/gtest.h>

#include <string>

namespace mailtrail::domain {
namespace {

using namespace std::chrono_literals;
using std::chrono::sys_days;

Timestamp At(std::chrono::year_month_day date, std::chrono::microseconds time_of_day) {
  return Timestamp{sys_days{date}} + time_of_day;
}

TEST(FormatTimestampTest, MillisecondsLikeJavaScriptToIsoString) {
  EXPECT_EQ(FormatTimestamp(Timestamp{}), "1970-01-01T00:00:00.000Z");
  EXPECT_EQ(FormatTimestamp(At(2022y / 5 / 11, 16h + 3min + 20s + 974ms)),
            "2022-05-11T16:03:20.974Z");
  EXPECT_EQ(FormatTimestamp(At(2024y / 2 / 29, 23h + 59min + 59s)), "2024-02-29T23:59:59.000Z");
}

TEST(FormatTimestampTest, SixDigitsOnlyWhenSubMillisecondDigitsAreSet) {
  EXPECT_EQ(FormatTimestamp(At(2022y / 5 / 11, 16h + 3min + 20s + 974512us)),
            "2022-05-11T16:03:20.974512Z");
  EXPECT_EQ(FormatTimestamp(At(2022y / 5 / 11, 1us)), "2022-05-11T00:00:00.000001Z");
  EXPECT_EQ(FormatTimestamp(At(2022y / 5 / 11, 10ms)), "2022-05-11T00:00:00.010Z");
}

TEST(FormatTimestampTest, InstantsBefore1970LandOnTheRightDay) {
  EXPECT_EQ(FormatTimestamp(Timestamp{} - 1ms), "1969-12-31T23:59:59.999Z");
  EXPECT_EQ(FormatTimestamp(Timestamp{} - 1us), "1969-12-31T23:59:59.999999Z");
}

struct Accepted {
  std::string text;
  std::string expected;  // FormatTimestamp of the parsed value
};

TEST(ParseTimestampTest, AcceptsPostGridForms) {
  const Accepted cases[] = {
      {"2022-05-11T16:03:20.974Z", "2022-05-11T16:03:20.974Z"},
      {"2025-01-01T12:00:00Z", "2025-01-01T12:00:00.000Z"},               // no fraction (seed 003)
      {"2020-11-18", "2020-11-18T00:00:00.000Z"},                         // bare date (seed 000)
      {"2022-05-11T16:03:20.9Z", "2022-05-11T16:03:20.900Z"},             // one digit
      {"2022-05-11T16:03:20.97451Z", "2022-05-11T16:03:20.974510Z"},      // five digits
      {"2022-05-11T16:03:20.974512Z", "2022-05-11T16:03:20.974512Z"},     // PostgreSQL's six
      {"2022-05-11T16:03:20.123456789Z", "2022-05-11T16:03:20.123456Z"},  // nanos truncated
      {"2022-05-11T16:03:20.1234569Z", "2022-05-11T16:03:20.123456Z"},    // truncated, not rounded
      {"2022-05-11T12:03:20.974-04:00", "2022-05-11T16:03:20.974Z"},
      {"2022-05-11T18:03:20+0200", "2022-05-11T16:03:20.000Z"},
      {"2022-05-11T16:03:20+00:00", "2022-05-11T16:03:20.000Z"},
      {"2022-05-11T16:03:20-00:00", "2022-05-11T16:03:20.000Z"},
      {"2022-05-11T00:30:00+01:00", "2022-05-10T23:30:00.000Z"},       // previous day
      {"2022-12-31T23:00:00-01:00", "2023-01-01T00:00:00.000Z"},       // next year
      {"2022-05-11T16:03:20+05:45", "2022-05-11T10:18:20.000Z"},       // Nepal
      {"2024-02-29T23:59:59.999999Z", "2024-02-29T23:59:59.999999Z"},  // leap day
      {"2000-02-29", "2000-02-29T00:00:00.000Z"},                      // 400-year leap
      {"1969-12-31T23:59:59.5Z", "1969-12-31T23:59:59.500Z"},
  };
  for (const auto& c : cases) {
    const auto parsed = ParseTimestamp(c.text);
    ASSERT_TRUE(parsed.has_value()) << c.text;
    EXPECT_EQ(FormatTimestamp(*parsed), c.expected) << c.text;
  }
}

TEST(ParseTimestampTest, ValuesAreExact) {
  EXPECT_EQ(ParseTimestamp("1970-01-01T00:00:00Z"), Timestamp{});
  EXPECT_EQ(ParseTimestamp("1970-01-01"), Timestamp{});
  EXPECT_EQ(ParseTimestamp("2022-05-11T16:03:20.974Z"),
            At(2022y / 5 / 11, 16h + 3min + 20s + 974ms));
  EXPECT_EQ(ParseTimestamp("2022-05-11T16:03:20.974Z"),
            ParseTimestamp("2022-05-11T11:03:20.974-05:00"));
}

TEST(ParseTimestampTest, RejectsEverythingElse) {
  const std::string rejected[] = {
      "",
      "yesterday",
      "2022-05-11T16:03:20",              // no zone: local time is ambiguous
      "2022-05-11 16:03:20Z",             // space separator
      "2022-05-11t16:03:20Z",             // lower-case t
      "2022-05-11T16:03:20z",             // lower-case z
      "2022-05-11T",                      // date then nothing
      "2022-05-11T16:03Z",                // no seconds
      "2022-05-11T16:03:20.Z",            // empty fraction
      "2022-05-11T16:03:20.1234567890Z",  // ten fraction digits
      "2022-05-11T16:03:20,974Z",         // comma fraction
      "2022-13-01",                       // month 13
      "2022-00-10",                       // month 0
      "2022-05-00",                       // day 0
      "2023-02-29",                       // not a leap year
      "1900-02-29",                       // century, not a leap year
      "2022-04-31",                       // April has 30 days
      "2022-05-11T24:00:00Z",             // hour 24
      "2022-05-11T23:60:00Z",             // minute 60
      "2022-05-11T23:59:60Z",             // leap second
      "2022-05-11T16:03:20+24:00",        // offset hour 24
      "2022-05-11T16:03:20+02:60",        // offset minute 60
      "2022-05-11T16:03:20+02",           // offset without minutes
      "2022-05-11T16:03:20+02:0",         // short offset minutes
      "2022-05-11T16:03:20+2:00",         // short offset hours
      "2022-05-11T16:03:20Zjunk",         // trailing characters
      "2022-05-11T16:03:20Z ",            // trailing space
      " 2022-05-11",                      // leading space
      "2022-5-11",                        // short month
      "22022-05-11",                      // five-digit year
      "+2022-05-11",                      // signed year
      "2022/05/11",                       // wrong separator
      "1652285000",                       // epoch seconds
  };
  for (const auto& text : rejected) {
    EXPECT_EQ(ParseTimestamp(text), std::nullopt) << '"' << text << '"';
  }
}

TEST(ParseTimestampTest, FormatThenParseIsIdentity) {
  const Timestamp samples[] = {
      Timestamp{},
      At(2022y / 5 / 11, 16h + 3min + 20s + 974ms),
      At(2022y / 5 / 11, 16h + 3min + 20s + 974512us),
      At(2099y / 12 / 31, 23h + 59min + 59s + 999999us),
      Timestamp{} - 1us,
  };
  for (const Timestamp t : samples) {
    EXPECT_EQ(ParseTimestamp(FormatTimestamp(t)), t) << FormatTimestamp(t);
  }
}

}  // namespace
}  // namespace mailtrail::domain

namespace mailtrail::domain {
namespace {

// Found by fuzz/timestamp_fuzz: an offset that carries the date past year 9999 (or before year 0)
// gave a timestamp FormatTimestamp writes with five digits, which ParseTimestamp then refused.
TEST(TimestampRangeTest, OffsetsThatLeaveYearsZeroToNineThousandNineHundredNinetyNineAreRefused) {
  EXPECT_EQ(ParseTimestamp("9999-12-31T23:59:59.999999-05:30"), std::nullopt);
  EXPECT_EQ(ParseTimestamp("0000-01-01T00:00:00+01:00"), std::nullopt);
  const auto last = ParseTimestamp("9999-12-31T23:59:59.999999Z");
  ASSERT_TRUE(last.has_value());
  EXPECT_EQ(ParseTimestamp(FormatTimestamp(*last)), last);
  const auto first = ParseTimestamp("0000-01-01T00:00:00Z");
  ASSERT_TRUE(first.has_value());
  EXPECT_EQ(ParseTimestamp(FormatTimestamp(*first)), first);
}

}  // namespace
}  // namespace mailtrail::domain
