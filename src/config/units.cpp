// Duration and size parsing. Kept strict on purpose: a config value that parses "almost" (a
// fraction silently truncated, "10" meaning seconds to one reader and milliseconds to another) is
// worse than an error at startup.
#include <array>
#include <charconv>
#include <cstdint>
#include <limits>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>

#include "config/config.hpp"
#include "config/quote.hpp"

namespace mailtrail::config {
namespace {

struct Unit {
  std::string_view name;
  std::uint64_t factor;
};

// Ordered largest first so FormatDuration picks the coarsest exact unit.
constexpr std::array<Unit, 5> kDurationUnits = {{
    {"d", 24ULL * 60 * 60 * 1000},
    {"h", 60ULL * 60 * 1000},
    {"m", 60ULL * 1000},
    {"s", 1000},
    {"ms", 1},
}};

constexpr std::array<Unit, 7> kSizeUnits = {{
    {"GiB", 1ULL << 30},
    {"MiB", 1ULL << 20},
    {"KiB", 1ULL << 10},
    {"GB", 1000ULL * 1000 * 1000},
    {"MB", 1000ULL * 1000},
    {"KB", 1000},
    {"B", 1},
}};

// 100 years: steady_clock/system_clock count nanoseconds in int64 (about 292 years), so a larger
// interval added to now() would overflow inside the timers.
constexpr std::uint64_t kMaxDurationMs = 36500ULL * 24 * 60 * 60 * 1000;

std::string Quoted(std::string_view text) { return detail::QuoteForMessage(text); }

struct NumberAndUnit {
  std::uint64_t number;
  std::string_view unit;
};

// Splits "<digits><unit>" and rejects everything else with a message naming the problem.
NumberAndUnit Split(std::string_view text, std::string_view what, std::string_view examples) {
  const std::string head = "invalid " + std::string(what) + " " + Quoted(text) + ": ";
  if (text.empty())
    throw std::invalid_argument("empty " + std::string(what) + "; " + std::string(examples));
  if (text.front() == '-') throw std::invalid_argument(head + "negative values are not allowed");
  if (text.front() == '+')
    throw std::invalid_argument(head + "no sign allowed; write " + std::string(examples));
  for (char c : text) {
    if (c == ' ' || c == '\t' || c == '\n' || c == '\r') {
      throw std::invalid_argument(head + "no spaces allowed; write " + std::string(examples));
    }
  }
  std::size_t digits = 0;
  while (digits < text.size() && text[digits] >= '0' && text[digits] <= '9') ++digits;
  if (digits == 0) {
    throw std::invalid_argument(head + "expected a whole number followed by a unit, e.g. " +
                                std::string(examples));
  }
  if (digits < text.size() && (text[digits] == '.' || text[digits] == ',')) {
    throw std::invalid_argument(head + "fractions are not supported; use a smaller unit");
  }
  NumberAndUnit result{0, text.substr(digits)};
  const auto [end, ec] = std::from_chars(text.data(), text.data() + digits, result.number);
  if (ec == std::errc::result_out_of_range) throw std::invalid_argument(head + "number too large");
  if (ec != std::errc() || end != text.data() + digits) {
    throw std::invalid_argument(head + "not a number");
  }
  return result;
}

template <std::size_t N>
std::string UnitList(const std::array<Unit, N>& units) {
  std::string list;
  for (const Unit& unit : units) {
    if (!list.empty()) list += ", ";
    list += unit.name;
  }
  return list;
}

}  // namespace

Duration ParseDuration(std::string_view text) {
  constexpr std::string_view kExamples = "500ms, 2s, 15m, 1h or 14d";
  const auto [number, unit] = Split(text, "duration", kExamples);
  if (unit.empty()) {
    if (number == 0) return Duration::zero();
    throw std::invalid_argument("invalid duration " + Quoted(text) + ": missing unit (" +
                                UnitList(kDurationUnits) + "), e.g. " + std::string(kExamples));
  }
  for (const Unit& candidate : kDurationUnits) {
    if (candidate.name != unit) continue;
    if (number > kMaxDurationMs / candidate.factor) {
      throw std::invalid_argument("invalid duration " + Quoted(text) +
                                  ": too large (at most 36500d)");
    }
    return Duration(static_cast<Duration::rep>(number * candidate.factor));
  }
  for (char c : unit) {
    if (c >= '0' && c <= '9') {
      throw std::invalid_argument("invalid duration " + Quoted(text) +
                                  ": one number and one unit only (write 90m, not 1h30m)");
    }
  }
  throw std::invalid_argument("invalid duration " + Quoted(text) + ": unknown unit " +
                              Quoted(unit) + " (use " + UnitList(kDurationUnits) + ")");
}

std::size_t ParseSize(std::string_view text) {
  constexpr std::string_view kExamples = "64B, 512KiB or 1MiB";
  const auto [number, unit] = Split(text, "size", kExamples);
  if (unit.empty()) {
    throw std::invalid_argument("invalid size " + Quoted(text) + ": missing unit (" +
                                UnitList(kSizeUnits) + "), e.g. " + std::string(kExamples));
  }
  for (const Unit& candidate : kSizeUnits) {
    if (candidate.name != unit) continue;
    if (number > std::numeric_limits<std::size_t>::max() / candidate.factor) {
      throw std::invalid_argument("invalid size " + Quoted(text) + ": too large");
    }
    return static_cast<std::size_t>(number * candidate.factor);
  }
  throw std::invalid_argument("invalid size " + Quoted(text) + ": unknown unit " + Quoted(unit) +
                              " (use " + UnitList(kSizeUnits) + "; KiB/MiB/GiB are 1024-based, " +
                              "KB/MB/GB 1000-based)");
}

std::string FormatDuration(Duration duration) {
  const auto count = duration.count();
  if (count == 0) return "0";
  // Magnitude as unsigned so that the most negative value does not overflow on negation.
  const bool negative = count < 0;
  const std::uint64_t magnitude =
      negative ? 0 - static_cast<std::uint64_t>(count) : static_cast<std::uint64_t>(count);
  for (const Unit& unit : kDurationUnits) {
    if (magnitude % unit.factor == 0) {
      return (negative ? "-" : "") + std::to_string(magnitude / unit.factor) +
             std::string(unit.name);
    }
  }
  return std::to_string(count) + "ms";  // unreachable: the factor 1 divides everything
}

std::string FormatSize(std::size_t size) {
  if (size == 0) return "0B";
  for (const Unit& unit : kSizeUnits) {
    // Binary units and bytes only: 1000B stays "1000B" rather than "1KB", which reads as 1KiB to
    // many people.
    if (unit.name.size() == 2 && unit.name != "B") continue;
    if (size % unit.factor == 0) return std::to_string(size / unit.factor) + std::string(unit.name);
  }
  return std::to_string(size) + "B";
}

}  // namespace mailtrail::config
