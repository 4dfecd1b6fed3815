#pragma once

#include <string>
#include <string_view>

namespace mailtrail::config::detail {

/// `text` in double quotes for an error message: control bytes and quotes escaped (so a stray NUL
/// or newline cannot garble a log line) and cut after 80 bytes. Never call it on a secret.
inline std::string QuoteForMessage(std::string_view text) {
  constexpr std::size_t kMaxShown = 80;
  std::string quoted = "\"";
  for (std::size_t i = 0; i < text.size() && i < kMaxShown; ++i) {
    const auto byte = static_cast<unsigned char>(text[i]);
    if (byte == '"' || byte == '\\') {
      quoted += '\\';
      quoted += static_cast<char>(byte);
    } else if (byte < 0x20 || byte == 0x7f) {
      constexpr std::string_view kHex = "0123456789abcdef";
      quoted += "\\x";
      quoted += kHex[byte >> 4];
      quoted += kHex[byte & 0xf];
    } else {
      quoted += static_cast<char>(byte);
    }
  }
  quoted += text.size() > kMaxShown ? "\"..." : "\"";
  return quoted;
}

}  // namespace mailtrail::config::detail
