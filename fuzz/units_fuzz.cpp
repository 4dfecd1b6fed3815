// Fuzzes the duration and size parsers (config/units.cpp): any bytes as text may only throw
// std::invalid_argument, and every accepted value formats back to text that parses to itself.
// The first 8 bytes, read as a number, also drive FormatDuration/FormatSize directly.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <exception>
#include <stdexcept>
#include <string>
#include <string_view>

#include "config/config.hpp"
#include "fuzz_support.hpp"

namespace {

using mailtrail::fuzz::Check;
using mailtrail::fuzz::Fail;
using mailtrail::fuzz::FailUnexpected;
namespace config = mailtrail::config;

// ParseDuration's documented ceiling.
constexpr config::Duration kMaxDuration = std::chrono::hours(36500LL * 24);

void CheckDurationRoundTrip(config::Duration duration) {
  const std::string text = config::FormatDuration(duration);
  config::Duration back{};
  try {
    back = config::ParseDuration(text);
  } catch (const std::invalid_argument& error) {
    Fail(std::string("ParseDuration refused FormatDuration's output: ") + error.what());
  }
  Check(back == duration, "ParseDuration(FormatDuration(d)) != d");
}

void CheckSizeRoundTrip(std::size_t size) {
  const std::string text = config::FormatSize(size);
  std::size_t back = 0;
  try {
    back = config::ParseSize(text);
  } catch (const std::invalid_argument& error) {
    Fail(std::string("ParseSize refused FormatSize's output: ") + error.what());
  }
  Check(back == size, "ParseSize(FormatSize(n)) != n");
}

void FuzzOne(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  try {
    const config::Duration duration = config::ParseDuration(text);
    Check(duration >= config::Duration::zero() && duration <= kMaxDuration,
          "ParseDuration returned a value outside [0, 36500d]");
    CheckDurationRoundTrip(duration);
  } catch (const std::invalid_argument&) {
    // The documented refusal.
  }
  try {
    CheckSizeRoundTrip(config::ParseSize(text));
  } catch (const std::invalid_argument&) {
  }

  if (size >= sizeof(std::uint64_t)) {
    std::uint64_t raw = 0;
    std::memcpy(&raw, data, sizeof raw);
    CheckDurationRoundTrip(config::Duration(static_cast<config::Duration::rep>(
        raw % (static_cast<std::uint64_t>(kMaxDuration.count()) + 1))));
    CheckSizeRoundTrip(static_cast<std::size_t>(raw));
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  try {
    FuzzOne(data, size);
  } catch (const std::bad_alloc&) {
    throw;
  } catch (const std::exception& error) {
    FailUnexpected("config ParseDuration/ParseSize/FormatDuration/FormatSize", error);
  }
  return 0;
}
