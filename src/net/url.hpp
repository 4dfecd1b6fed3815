#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace mailtrail::netio {

/// A parsed `http://` or `https://` base URL: `scheme://host[:port][/path/prefix]`.
/// Query strings, fragments and user info are refused: a base URL names a server and a prefix.
struct Url {
  std::string scheme;       ///< `http` or `https` (lower case).
  std::string host;         ///< Host name or IP literal (IPv6 without brackets).
  std::uint16_t port = 0;   ///< Explicit port, or 80 / 443 from the scheme.
  std::string path_prefix;  ///< Path without a trailing slash; empty for the root.

  bool Tls() const { return scheme == "https"; }
  /// `host[:port]` as sent in the `Host` header (port omitted when it is the scheme default).
  std::string HostHeader() const;

  bool operator==(const Url&) const = default;
};

/// Parses a base URL. Throws std::invalid_argument naming the problem (the URL text is included:
/// base URLs carry no secrets).
Url ParseUrl(std::string_view text);

/// Percent-encodes everything except RFC 3986 unreserved characters (for one path segment or one
/// query value).
std::string PercentEncode(std::string_view text);

}  // namespace mailtrail::netio
