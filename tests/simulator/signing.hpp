#pragma once

#include <cstdint>
#include <string>
#include <string_view>

/// Webhook signing as PostGrid does it (postgrid-api.md section 7), on OpenSSL directly.
namespace mailtrail::sim {

/// Raw HMAC-SHA256(key, message) (32 bytes). Throws std::runtime_error if OpenSSL fails.
std::string HmacSha256(std::string_view key, std::string_view message);
/// HMAC-SHA512, used only to forge tokens with a foreign algorithm.
std::string HmacSha512(std::string_view key, std::string_view message);

/// Lower-case hex of bytes.
std::string HexLower(std::string_view bytes);

/// Base64url without padding (RFC 7515 section 2).
std::string Base64UrlEncode(std::string_view bytes);

/// Compact JWS: base64url(header) "." base64url(claims) "." base64url(HMAC-SHA256 over the first
/// two parts with `secret`). `header_json` and `claims_json` are used byte for byte.
std::string MakeJwtHs256(std::string_view header_json, std::string_view claims_json,
                         std::string_view secret);

/// The standard header `{"alg":"HS256","typ":"JWT"}`.
inline constexpr std::string_view kJwtHeaderHs256 = R"({"alg":"HS256","typ":"JWT"})";

/// Value of the `PostGrid-Signature` header: `t=<timestamp>,v1=<hex HMAC-SHA256(secret,
/// timestamp + "." + body)>`.
std::string PostGridSignature(std::string_view secret, int64_t timestamp, std::string_view body);

}  // namespace mailtrail::sim
