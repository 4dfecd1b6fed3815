#include "postgrid/retry.hpp"

#include <algorithm>
#include <array>
#include <cctype>
#include <charconv>
#include <cmath>
#include <string>
#include <vector>

namespace mailtrail::postgrid {
namespace {

using std::chrono::milliseconds;

std::string_view Trim(std::string_view text) {
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.front()))) {
    text.remove_prefix(1);
  }
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.back()))) {
    text.remove_suffix(1);
  }
  return text;
}

/// A plain non-negative decimal number such as `2`, `1.5` or `250.0`; nullopt otherwise (so an
/// HTTP date is not mistaken for a number).
std::optional<double> ParseNumber(std::string_view text) {
  text = Trim(text);
  if (text.empty()) return std::nullopt;
  bool negative = false;
  if (text.front() == '-') {
    negative = true;
    text.remove_prefix(1);
  }
  bool seen_digit = false;
  bool seen_dot = false;
  for (const char c : text) {
    if (std::isdigit(static_cast<unsigned char>(c))) {
      seen_digit = true;
    } else if (c == '.' && !seen_dot) {
      seen_dot = true;
    } else {
      return std::nullopt;
    }
  }
  if (!seen_digit) return std::nullopt;
  // std::from_chars for double exists in libstdc++ 11+, but stod is locale-bound: parse by hand.
  double value = 0;
  double scale = 1;
  bool fraction = false;
  for (const char c : text) {
    if (c == '.') {
      fraction = true;
      continue;
    }
    const int digit = c - '0';
    if (fraction) {
      scale /= 10;
      value += digit * scale;
    } else {
      value = value * 10 + digit;
    }
  }
  return negative ? -value : value;
}

milliseconds Clamp(double ms) {
  if (!(ms > 0)) return milliseconds(0);
  if (ms >= static_cast<double>(kMaxRetryAfter.count())) return kMaxRetryAfter;
  return milliseconds(static_cast<long long>(std::ceil(ms)));
}

std::optional<int> MonthIndex(std::string_view name) {
  static constexpr std::array<std::string_view, 12> kMonths = {
      "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  for (std::size_t i = 0; i < kMonths.size(); ++i) {
    if (name == kMonths[i]) return static_cast<int>(i) + 1;
  }
  return std::nullopt;
}

std::optional<int> Digits(std::string_view text) {
  text = Trim(text);
  int value = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size() || text.empty()) return std::nullopt;
  return value;
}

std::optional<std::chrono::system_clock::time_point> Compose(int year, int month, int day,
                                                             std::string_view clock) {
  // clock is HH:MM:SS
  if (clock.size() != 8 || clock[2] != ':' || clock[5] != ':') return std::nullopt;
  const auto h = Digits(clock.substr(0, 2));
  const auto m = Digits(clock.substr(3, 2));
  const auto s = Digits(clock.substr(6, 2));
  if (!h || !m || !s || *h > 23 || *m > 59 || *s > 60) return std::nullopt;
  const std::chrono::year_month_day date{std::chrono::year(year),
                                         std::chrono::month(static_cast<unsigned>(month)),
                                         std::chrono::day(static_cast<unsigned>(day))};
  if (!date.ok()) return std::nullopt;
  return std::chrono::sys_days(date) + std::chrono::hours(*h) + std::chrono::minutes(*m) +
         std::chrono::seconds(*s);
}

std::vector<std::string_view> SplitSpaces(std::string_view text) {
  std::vector<std::string_view> parts;
  std::size_t i = 0;
  while (i < text.size()) {
    while (i < text.size() && text[i] == ' ') ++i;
    const std::size_t start = i;
    while (i < text.size() && text[i] != ' ') ++i;
    if (i > start) parts.push_back(text.substr(start, i - start));
  }
  return parts;
}

}  // namespace

milliseconds BackoffDelay(const BackoffPolicy& policy, int retry, double random01) {
  const auto initial = static_cast<double>(policy.initial.count());
  const auto cap = static_cast<double>(policy.max.count());
  const int exponent = std::clamp(retry - 1, 0, 30);
  const double base = std::min(cap, initial * std::ldexp(1.0, exponent));
  const double jitter = std::clamp(policy.jitter, 0.0, 1.0);
  const double factor = 1.0 - jitter * std::clamp(random01, 0.0, 1.0);
  return milliseconds(static_cast<long long>(base * factor));
}

std::optional<std::chrono::system_clock::time_point> ParseHttpDate(std::string_view text) {
  text = Trim(text);
  const auto parts = SplitSpaces(text);
  // IMF-fixdate: "Sun," "06" "Nov" "1994" "08:49:37" "GMT"
  if (parts.size() == 6 && parts[0].size() == 4 && parts[0].back() == ',' && parts[5] == "GMT") {
    const auto day = Digits(parts[1]);
    const auto month = MonthIndex(parts[2]);
    const auto year = Digits(parts[3]);
    if (!day || !month || !year || parts[3].size() != 4) return std::nullopt;
    return Compose(*year, *month, *day, parts[4]);
  }
  // RFC 850: "Sunday," "06-Nov-94" "08:49:37" "GMT"
  if (parts.size() == 4 && parts[0].back() == ',' && parts[3] == "GMT" && parts[1].size() == 9 &&
      parts[1][2] == '-' && parts[1][6] == '-') {
    const auto day = Digits(parts[1].substr(0, 2));
    const auto month = MonthIndex(parts[1].substr(3, 3));
    const auto yy = Digits(parts[1].substr(7, 2));
    if (!day || !month || !yy) return std::nullopt;
    // RFC 7231 7.1.1.1: a two-digit year more than 50 years in the future is in the past century.
    const int year = *yy < 70 ? 2000 + *yy : 1900 + *yy;
    return Compose(year, *month, *day, parts[2]);
  }
  // asctime: "Sun" "Nov" "6" "08:49:37" "1994"
  if (parts.size() == 5 && parts[0].size() == 3) {
    const auto month = MonthIndex(parts[1]);
    const auto day = Digits(parts[2]);
    const auto year = Digits(parts[4]);
    if (!day || !month || !year) return std::nullopt;
    return Compose(*year, *month, *day, parts[3]);
  }
  return std::nullopt;
}

std::optional<milliseconds> ParseRetryAfter(std::optional<std::string_view> retry_after_ms,
                                            std::optional<std::string_view> retry_after,
                                            std::chrono::system_clock::time_point now) {
  if (retry_after_ms) {
    if (const auto ms = ParseNumber(*retry_after_ms)) return Clamp(*ms);
  }
  if (retry_after) {
    if (const auto seconds = ParseNumber(*retry_after)) return Clamp(*seconds * 1000.0);
    if (const auto date = ParseHttpDate(*retry_after)) {
      const auto delta = std::chrono::duration<double, std::milli>(*date - now);
      return Clamp(delta.count());
    }
  }
  return std::nullopt;
}

}  // namespace mailtrail::postgrid
