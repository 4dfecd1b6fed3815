#include "webhook/verify.hpp"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>

#include <array>
#include <cstdint>
#include <limits>

namespace mailtrail::webhook {
namespace {

using Digest = std::array<unsigned char, 32>;

constexpr std::string_view kHs256 = "HS256";

VerifyResult Refuse(std::optional<PayloadFormat> format, std::string reason, int status) {
  VerifyResult result;
  result.ok = false;
  result.format = format;
  result.reason = std::move(reason);
  result.status = status;
  return result;
}

bool HmacSha256(std::string_view key, std::string_view message, Digest* out) {
  unsigned int length = 0;
  const unsigned char* done = HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
                                   reinterpret_cast<const unsigned char*>(message.data()),
                                   message.size(), out->data(), &length);
  return done != nullptr && length == out->size();
}

bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    char x = a[i];
    char y = b[i];
    if (x >= 'A' && x <= 'Z') x = static_cast<char>(x - 'A' + 'a');
    if (y >= 'A' && y <= 'Z') y = static_cast<char>(y - 'A' + 'a');
    if (x != y) return false;
  }
  return true;
}

std::string_view Trim(std::string_view text) {
  while (!text.empty() && (text.front() == ' ' || text.front() == '\t')) text.remove_prefix(1);
  while (!text.empty() && (text.back() == ' ' || text.back() == '\t')) text.remove_suffix(1);
  return text;
}

bool IsBase64UrlChar(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
         c == '_';
}

int Base64UrlValue(char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '-') return 62;
  if (c == '_') return 63;
  return -1;
}

/// RFC 7515 base64url without padding. Rejects a length of 1 mod 4 and non-zero trailing bits,
/// so every token has exactly one accepted spelling.
std::optional<std::string> Base64UrlDecode(std::string_view text) {
  if (text.size() % 4 == 1) return std::nullopt;
  std::string out;
  out.reserve(text.size() * 3 / 4);
  std::uint32_t buffer = 0;
  int bits = 0;
  for (char c : text) {
    const int value = Base64UrlValue(c);
    if (value < 0) return std::nullopt;
    buffer = (buffer << 6) | static_cast<std::uint32_t>(value);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<char>((buffer >> bits) & 0xFF));
    }
  }
  if (bits > 0 && (buffer & ((1U << bits) - 1)) != 0) return std::nullopt;
  return out;
}

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

std::optional<Digest> HexDigest(std::string_view hex) {
  Digest digest{};
  if (hex.size() != digest.size() * 2) return std::nullopt;
  for (std::size_t i = 0; i < digest.size(); ++i) {
    const int high = HexValue(hex[2 * i]);
    const int low = HexValue(hex[2 * i + 1]);
    if (high < 0 || low < 0) return std::nullopt;
    digest[i] = static_cast<unsigned char>(high * 16 + low);
  }
  return digest;
}

/// Checks `signed_at` against `now` within `max_age` both ways; empty when fine.
std::string CheckAge(domain::Timestamp signed_at, domain::Timestamp now,
                     std::chrono::milliseconds max_age) {
  if (signed_at < now - max_age) return "stale_timestamp";
  if (signed_at > now + max_age) return "future_timestamp";
  return {};
}

/// Any secret whose HMAC over `message` equals `expected`. Every secret is tried, so the time
/// taken does not depend on which one (if any) matched.
bool AnySecretMatches(const std::vector<std::string>& secrets, std::string_view message,
                      const std::vector<Digest>& expected) {
  bool matched = false;
  for (const std::string& secret : secrets) {
    Digest computed{};
    if (!HmacSha256(secret, message, &computed)) continue;
    for (const Digest& candidate : expected) {
      if (CRYPTO_memcmp(computed.data(), candidate.data(), computed.size()) == 0) matched = true;
    }
  }
  return matched;
}

/// The compact JWS looks: only base64url characters and dots, at least one dot.
bool LooksLikeJws(std::string_view body) {
  bool dot = false;
  for (char c : body) {
    if (c == '.') {
      dot = true;
    } else if (!IsBase64UrlChar(c)) {
      return false;
    }
  }
  return dot;
}

VerifyResult VerifyJwt(std::string_view token, const std::vector<std::string>& secrets,
                       domain::Timestamp now, std::chrono::milliseconds max_age) {
  constexpr auto kFormat = PayloadFormat::kJwt;
  const std::size_t first = token.find('.');
  const std::size_t second =
      first == std::string_view::npos ? std::string_view::npos : token.find('.', first + 1);
  if (second == std::string_view::npos || token.find('.', second + 1) != std::string_view::npos ||
      first == 0 || second == first + 1) {
    return Refuse(kFormat, "malformed_token", 400);
  }
  const std::string_view signing_input = token.substr(0, second);
  const std::string_view header_part = token.substr(0, first);
  const std::string_view claims_part = token.substr(first + 1, second - first - 1);
  const std::string_view signature_part = token.substr(second + 1);

  // The algorithm is read from the JOSE header only to classify a refusal: a token is accepted
  // solely on the HMAC-SHA256 check below, whatever its header claims (RFC 8725 section 3.1).
  auto header_names_hs256 = [&]() -> std::optional<bool> {
    const auto header_text = Base64UrlDecode(header_part);
    if (!header_text) return std::nullopt;
    const auto header = nlohmann::json::parse(*header_text, nullptr, /*allow_exceptions=*/false);
    if (!header.is_object()) return std::nullopt;
    const auto alg = header.find("alg");
    if (alg == header.end() || !alg->is_string()) return std::nullopt;
    return alg->get<std::string>() == kHs256;
  };

  const auto signature = Base64UrlDecode(signature_part);
  bool verified = false;
  if (signature && signature->size() == sizeof(Digest)) {
    Digest expected{};
    std::copy(signature->begin(), signature->end(), expected.begin());
    verified = AnySecretMatches(secrets, signing_input, {expected});
  }
  // Acceptance hinges on `verified` alone; the header only picks the refusal's code. A header
  // that is not a JSON object naming an `alg` is malformed (400) whatever the MAC says.
  const std::optional<bool> hs256 = header_names_hs256();
  if (!hs256.has_value()) return Refuse(kFormat, "malformed_token", 400);
  if (!*hs256) return Refuse(kFormat, "alg_not_allowed", 401);
  if (!verified) return Refuse(kFormat, "bad_signature", 401);

  auto claims_text = Base64UrlDecode(claims_part);
  if (!claims_text) return Refuse(kFormat, "malformed_token", 400);
  nlohmann::json claims = nlohmann::json::parse(*claims_text, nullptr, false);
  if (!claims.is_object()) return Refuse(kFormat, "not_json", 400);

  if (const auto iat = claims.find("iat"); iat != claims.end()) {
    if (!iat->is_number()) return Refuse(kFormat, "malformed_token", 400);
    const double seconds = iat->get<double>();
    // Beyond +-1e11 s (year 5138) the conversion below would overflow; such a value is garbage.
    if (!(seconds > -1e11 && seconds < 1e11)) return Refuse(kFormat, "future_timestamp", 401);
    const domain::Timestamp issued{
        std::chrono::microseconds(static_cast<std::int64_t>(seconds * 1e6))};
    if (std::string reason = CheckAge(issued, now, max_age); !reason.empty()) {
      return Refuse(kFormat, std::move(reason), 401);
    }
  }

  VerifyResult result;
  result.ok = true;
  result.format = kFormat;
  result.status = 200;
  result.payload = std::move(claims);
  result.payload_text = std::move(*claims_text);
  return result;
}

VerifyResult VerifyJson(std::string_view signature_header, std::string_view body,
                        const std::vector<std::string>& secrets, domain::Timestamp now,
                        std::chrono::milliseconds max_age) {
  constexpr auto kFormat = PayloadFormat::kJson;
  std::optional<std::string_view> t;
  std::vector<Digest> candidates;
  std::string_view rest = signature_header;
  while (true) {
    const std::size_t comma = rest.find(',');
    const std::string_view item = Trim(rest.substr(0, comma));
    const std::size_t equals = item.find('=');
    if (equals == std::string_view::npos) return Refuse(kFormat, "malformed_header", 400);
    const std::string_view key = Trim(item.substr(0, equals));
    const std::string_view value = Trim(item.substr(equals + 1));
    if (key == "t") {
      if (t) return Refuse(kFormat, "malformed_header", 400);
      t = value;
    } else if (key == "v1") {
      const auto digest = HexDigest(value);
      if (!digest) return Refuse(kFormat, "malformed_header", 400);
      candidates.push_back(*digest);
    }
    // Other schemes (v0, future versions) are ignored, as Stripe-style signatures intend.
    if (comma == std::string_view::npos) break;
    rest.remove_prefix(comma + 1);
  }
  if (!t || candidates.empty()) return Refuse(kFormat, "malformed_header", 400);
  if (t->empty() || t->size() > 13) return Refuse(kFormat, "malformed_header", 400);
  std::int64_t t_value = 0;
  for (char c : *t) {
    if (c < '0' || c > '9') return Refuse(kFormat, "malformed_header", 400);
    t_value = t_value * 10 + (c - '0');
  }

  std::string message;
  message.reserve(t->size() + 1 + body.size());
  message.append(*t).append(".").append(body);
  if (!AnySecretMatches(secrets, message, candidates)) {
    return Refuse(kFormat, "bad_signature", 401);
  }

  // PostGrid's guide says milliseconds, its API reference seconds: 13 digits are milliseconds.
  const domain::Timestamp signed_at = t->size() == 13
                                          ? domain::Timestamp(std::chrono::milliseconds(t_value))
                                          : domain::Timestamp(std::chrono::seconds(t_value));
  if (std::string reason = CheckAge(signed_at, now, max_age); !reason.empty()) {
    return Refuse(kFormat, std::move(reason), 401);
  }

  nlohmann::json event = nlohmann::json::parse(body, nullptr, false);
  if (!event.is_object()) return Refuse(kFormat, "not_json", 400);

  VerifyResult result;
  result.ok = true;
  result.format = kFormat;
  result.status = 200;
  result.payload = std::move(event);
  result.payload_text = std::string(body);
  return result;
}

std::optional<std::string> StringField(const nlohmann::json& object, std::string_view key) {
  if (!object.is_object()) return std::nullopt;
  const auto found = object.find(key);
  if (found == object.end() || !found->is_string()) return std::nullopt;
  return found->get<std::string>();
}

}  // namespace

std::string_view PayloadFormatName(PayloadFormat format) {
  return format == PayloadFormat::kJwt ? "jwt" : "json";
}

VerifyResult Verify(const Headers& headers, std::string_view raw_body,
                    const std::vector<std::string>& secrets, domain::Timestamp now,
                    std::chrono::milliseconds max_age) {
  const Header* signature = nullptr;
  for (const Header& header : headers) {
    if (!EqualsIgnoreCase(header.name, kSignatureHeader)) continue;
    if (signature != nullptr) return Refuse(PayloadFormat::kJson, "duplicate_header", 400);
    signature = &header;
  }
  if (raw_body.empty()) {
    return Refuse(signature ? std::optional(PayloadFormat::kJson) : std::nullopt, "empty_body",
                  400);
  }
  if (signature != nullptr) return VerifyJson(signature->value, raw_body, secrets, now, max_age);

  // A trailing newline is not part of a compact JWS; some senders add one.
  std::string_view token = raw_body;
  while (!token.empty() && (token.back() == '\n' || token.back() == '\r')) token.remove_suffix(1);
  if (LooksLikeJws(token)) return VerifyJwt(token, secrets, now, max_age);
  return Refuse(std::nullopt, "missing_signature", 400);
}

Event ParseEvent(const nlohmann::json& payload) {
  Event event;
  event.event_id = StringField(payload, "id");
  event.type = StringField(payload, "type").value_or("");
  const std::size_t dot = event.type.rfind('.');
  if (dot == std::string::npos) return event;
  const auto type = domain::OrderTypeFromObject(std::string_view(event.type).substr(0, dot));
  if (!type) return event;
  const auto data = payload.find("data");
  if (data == payload.end()) return event;
  const auto id = StringField(*data, "id");
  if (!id || id->empty()) return event;

  domain::OrderRef ref;
  ref.type = *type;
  ref.id = *id;
  if (*type == domain::OrderType::kReturnEnvelopeOrder) {
    const auto envelope = data->find("returnEnvelope");
    if (envelope == data->end()) return event;
    if (envelope->is_string()) {
      ref.envelope_id = envelope->get<std::string>();
    } else if (auto nested = StringField(*envelope, "id")) {
      ref.envelope_id = std::move(*nested);
    }
    if (ref.envelope_id.empty()) return event;
  }
  event.order = std::move(ref);
  return event;
}

std::string Sha256Hex(std::string_view bytes) {
  Digest digest{};
  SHA256(reinterpret_cast<const unsigned char*>(bytes.data()), bytes.size(), digest.data());
  static constexpr std::string_view kHex = "0123456789abcdef";
  std::string hex;
  hex.reserve(digest.size() * 2);
  for (unsigned char byte : digest) {
    hex.push_back(kHex[byte >> 4]);
    hex.push_back(kHex[byte & 0x0F]);
  }
  return hex;
}

}  // namespace mailtrail::webhook
