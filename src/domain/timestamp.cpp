#include "domain/timestamp.hpp"

#include <array>
#include <cstdint>

namespace mailtrail::domain {
namespace {

using std::chrono::days;
using std::chrono::hours;
using std::chrono::microseconds;
using std::chrono::minutes;
using std::chrono::seconds;

bool IsDigit(char c) { return c >= '0' && c <= '9'; }

// Reads exactly `count` digits at `pos`; false when any of them is not a digit or the text ends.
bool ReadDigits(std::string_view text, std::size_t pos, std::size_t count, int& out) {
  if (pos + count > text.size()) return false;
  int value = 0;
  for (std::size_t i = pos; i < pos + count; ++i) {
    if (!IsDigit(text[i])) return false;
    value = value * 10 + (text[i] - '0');
  }
  out = value;
  return true;
}

void AppendPadded(std::string& out, std::int64_t value, int width) {
  std::array<char, 24> buffer{};
  int length = 0;
  // Negative years cannot come out of PostGrid; print the magnitude rather than garbage.
  std::uint64_t magnitude =
      value < 0 ? static_cast<std::uint64_t>(-value) : static_cast<std::uint64_t>(value);
  do {
    buffer[length++] = static_cast<char>('0' + magnitude % 10);
    magnitude /= 10;
  } while (magnitude != 0);
  if (value < 0) out.push_back('-');
  for (int i = length; i < width; ++i) out.push_back('0');
  while (length > 0) out.push_back(buffer[--length]);
}

}  // namespace

std::string FormatTimestamp(Timestamp t) {
  // floor, not duration_cast: instants before 1970 must still land on the right calendar day.
  const auto day = std::chrono::floor<days>(t);
  const std::chrono::year_month_day date{day};
  const std::chrono::hh_mm_ss<microseconds> time{t - day};
  const auto micros = time.subseconds().count();

  std::string out;
  out.reserve(27);
  AppendPadded(out, static_cast<int>(date.year()), 4);
  out.push_back('-');
  AppendPadded(out, static_cast<unsigned>(date.month()), 2);
  out.push_back('-');
  AppendPadded(out, static_cast<unsigned>(date.day()), 2);
  out.push_back('T');
  AppendPadded(out, time.hours().count(), 2);
  out.push_back(':');
  AppendPadded(out, time.minutes().count(), 2);
  out.push_back(':');
  AppendPadded(out, time.seconds().count(), 2);
  out.push_back('.');
  if (micros % 1000 == 0) {
    AppendPadded(out, micros / 1000, 3);
  } else {
    AppendPadded(out, micros, 6);
  }
  out.push_back('Z');
  return out;
}

std::optional<Timestamp> ParseTimestamp(std::string_view text) {
  int year = 0;
  int month = 0;
  int day = 0;
  if (!ReadDigits(text, 0, 4, year) || text.size() < 10 || text[4] != '-' ||
      !ReadDigits(text, 5, 2, month) || text[7] != '-' || !ReadDigits(text, 8, 2, day)) {
    return std::nullopt;
  }
  const std::chrono::year_month_day date{std::chrono::year{year},
                                         std::chrono::month{static_cast<unsigned>(month)},
                                         std::chrono::day{static_cast<unsigned>(day)}};
  if (!date.ok()) return std::nullopt;
  const std::chrono::sys_days midnight{date};
  if (text.size() == 10) return Timestamp{midnight};

  int hour = 0;
  int minute = 0;
  int second = 0;
  if (text[10] != 'T' || !ReadDigits(text, 11, 2, hour) || text.size() < 19 || text[13] != ':' ||
      !ReadDigits(text, 14, 2, minute) || text[16] != ':' || !ReadDigits(text, 17, 2, second)) {
    return std::nullopt;
  }
  // Leap seconds (:60) are rejected: PostGrid never emits them and sys_time cannot hold them.
  if (hour > 23 || minute > 59 || second > 59) return std::nullopt;

  std::size_t pos = 19;
  std::int64_t micros = 0;
  if (pos < text.size() && text[pos] == '.') {
    ++pos;
    const std::size_t first = pos;
    while (pos < text.size() && IsDigit(text[pos])) {
      const std::size_t index = pos - first;
      if (index < 6) micros = micros * 10 + (text[pos] - '0');
      ++pos;
    }
    const std::size_t count = pos - first;
    if (count == 0 || count > 9) return std::nullopt;
    for (std::size_t i = count; i < 6; ++i) micros *= 10;
  }

  if (pos >= text.size()) return std::nullopt;  // no zone: local time is ambiguous
  minutes offset{0};
  if (text[pos] == 'Z') {
    ++pos;
  } else if (text[pos] == '+' || text[pos] == '-') {
    const bool negative = text[pos] == '-';
    int offset_hours = 0;
    int offset_minutes = 0;
    if (!ReadDigits(text, pos + 1, 2, offset_hours)) return std::nullopt;
    pos += 3;
    if (pos < text.size() && text[pos] == ':') ++pos;
    if (!ReadDigits(text, pos, 2, offset_minutes)) return std::nullopt;
    pos += 2;
    if (offset_hours > 23 || offset_minutes > 59) return std::nullopt;
    offset = hours{offset_hours} + minutes{offset_minutes};
    if (negative) offset = -offset;
  } else {
    return std::nullopt;
  }
  if (pos != text.size()) return std::nullopt;

  // Local time minus its offset is UTC. An offset can carry 9999-12-31 past year 9999 (or
  // 0000-01-01 before year 0), which FormatTimestamp could not write back as four digits:
  // refuse those (found by fuzz/timestamp_fuzz).
  const Timestamp utc = Timestamp{midnight} + hours{hour} + minutes{minute} + seconds{second} +
                        microseconds{micros} - offset;
  static constexpr std::chrono::sys_days kFirst{std::chrono::year{0} / 1 / 1};
  static constexpr std::chrono::sys_days kPastLast{std::chrono::year{10000} / 1 / 1};
  if (utc < Timestamp{kFirst} || utc >= Timestamp{kPastLast}) return std::nullopt;
  return utc;
}

}  // namespace mailtrail::domain
