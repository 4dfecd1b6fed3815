#include "net/url.hpp"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <stdexcept>

namespace mailtrail::netio {
namespace {

std::string Lower(std::string_view text) {
  std::string out(text);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

[[noreturn]] void Fail(std::string_view text, std::string_view why) {
  throw std::invalid_argument("invalid URL '" + std::string(text) + "': " + std::string(why));
}

}  // namespace

std::string Url::HostHeader() const {
  const bool default_port = (scheme == "https" && port == 443) || (scheme == "http" && port == 80);
  std::string host_part = host.find(':') != std::string::npos ? "[" + host + "]" : host;
  return default_port ? host_part : host_part + ":" + std::to_string(port);
}

Url ParseUrl(std::string_view text) {
  Url url;
  const auto scheme_end = text.find("://");
  if (scheme_end == std::string_view::npos) Fail(text, "missing scheme (http:// or https://)");
  url.scheme = Lower(text.substr(0, scheme_end));
  if (url.scheme != "http" && url.scheme != "https") Fail(text, "scheme must be http or https");

  std::string_view rest = text.substr(scheme_end + 3);
  if (rest.find_first_of("?#") != std::string_view::npos) {
    Fail(text, "query and fragment are not allowed");
  }
  const auto path_start = rest.find('/');
  std::string_view authority = rest.substr(0, path_start);
  std::string_view path = path_start == std::string_view::npos ? "" : rest.substr(path_start);
  if (authority.find('@') != std::string_view::npos) Fail(text, "user info is not allowed");
  if (authority.empty()) Fail(text, "missing host");

  std::string_view port_text;
  if (authority.front() == '[') {
    const auto close = authority.find(']');
    if (close == std::string_view::npos) Fail(text, "unterminated IPv6 literal");
    url.host = std::string(authority.substr(1, close - 1));
    std::string_view after = authority.substr(close + 1);
    if (!after.empty()) {
      if (after.front() != ':') Fail(text, "junk after IPv6 literal");
      port_text = after.substr(1);
      if (port_text.empty()) Fail(text, "empty port");
    }
  } else {
    const auto colon = authority.rfind(':');
    url.host = std::string(authority.substr(0, colon));
    if (colon != std::string_view::npos) {
      port_text = authority.substr(colon + 1);
      if (port_text.empty()) Fail(text, "empty port");
    }
  }
  if (url.host.empty()) Fail(text, "missing host");
  url.host = Lower(url.host);

  if (!port_text.empty()) {
    unsigned value = 0;
    const auto [end, ec] =
        std::from_chars(port_text.data(), port_text.data() + port_text.size(), value);
    if (ec != std::errc() || end != port_text.data() + port_text.size() || value == 0 ||
        value > 65535) {
      Fail(text, "port must be 1-65535");
    }
    url.port = static_cast<std::uint16_t>(value);
  } else {
    url.port = url.Tls() ? 443 : 80;
  }

  while (!path.empty() && path.back() == '/') path.remove_suffix(1);
  url.path_prefix = std::string(path);
  return url;
}

std::string PercentEncode(std::string_view text) {
  static constexpr std::string_view kHex = "0123456789ABCDEF";
  std::string out;
  out.reserve(text.size());
  for (const char ch : text) {
    const auto c = static_cast<unsigned char>(ch);
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out.push_back(ch);
    } else {
      out.push_back('%');
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 0x0F]);
    }
  }
  return out;
}

}  // namespace mailtrail::netio
