// Fuzzes domain::ParseTimestamp / FormatTimestamp (domain/timestamp.hpp): neither may throw, and
// every accepted timestamp formats to text that parses back to the same instant. The first 8
// bytes, read as microseconds within years 0001..9999, also drive FormatTimestamp directly.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <exception>
#include <optional>
#include <string>
#include <string_view>

#include "domain/timestamp.hpp"
#include "fuzz_support.hpp"

namespace {

using mailtrail::fuzz::Check;
using mailtrail::fuzz::FailUnexpected;
namespace domain = mailtrail::domain;

void CheckRoundTrip(domain::Timestamp t, std::string_view origin) {
  const std::string text = domain::FormatTimestamp(t);
  const std::optional<domain::Timestamp> back = domain::ParseTimestamp(text);
  if (!back || *back != t) {
    mailtrail::fuzz::Fail(std::string(origin) + ": ParseTimestamp(FormatTimestamp(t)) != t for \"" +
                          text + "\"");
  }
}

void FuzzOne(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  if (const auto parsed = domain::ParseTimestamp(text)) CheckRoundTrip(*parsed, "parsed input");

  if (size >= sizeof(std::uint64_t)) {
    using std::chrono::sys_days;
    using namespace std::chrono_literals;
    const domain::Timestamp first{sys_days{std::chrono::year{1} / 1 / 1}};
    const domain::Timestamp last{sys_days{std::chrono::year{9999} / 12 / 31} + 24h - 1us};
    const auto span = static_cast<std::uint64_t>((last - first).count()) + 1;
    std::uint64_t raw = 0;
    std::memcpy(&raw, data, sizeof raw);
    CheckRoundTrip(first + std::chrono::microseconds(static_cast<std::int64_t>(raw % span)),
                   "raw instant");
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  try {
    FuzzOne(data, size);
  } catch (const std::bad_alloc&) {
    throw;
  } catch (const std::exception& error) {
    FailUnexpected("domain ParseTimestamp/FormatTimestamp", error);
  }
  return 0;
}
