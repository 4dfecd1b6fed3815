#pragma once

#include <cstdio>
#include <cstdlib>
#include <exception>
#include <string_view>
#include <typeinfo>

namespace mailtrail::fuzz {

/// Reports an invariant the code under test broke and aborts, so libFuzzer saves the input as a
/// crash. `what` names the invariant. Never returns.
[[noreturn]] inline void Fail(std::string_view what) {
  std::fprintf(stderr, "fuzz invariant broken: %.*s\n", static_cast<int>(what.size()), what.data());
  std::abort();
}

/// Reports an exception that the surface's contract does not allow (e.g. nlohmann's type_error
/// escaping json_mapping) with its dynamic type and message, then aborts. Never returns.
[[noreturn]] inline void FailUnexpected(std::string_view surface, const std::exception& error) {
  std::fprintf(stderr, "fuzz: %.*s let an unexpected exception escape: %s: %s\n",
               static_cast<int>(surface.size()), surface.data(), typeid(error).name(),
               error.what());
  std::abort();
}

/// Requires `condition`, else Fail(what).
inline void Check(bool condition, std::string_view what) {
  if (!condition) Fail(what);
}

}  // namespace mailtrail::fuzz
