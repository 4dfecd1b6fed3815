#pragma once

#include <chrono>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "domain/order_ref.hpp"
#include "domain/timestamp.hpp"

namespace mailtrail::webhook {

/// One request header as received (name in any case; duplicates are kept as separate entries).
struct Header {
  std::string name;
  std::string value;
};
using Headers = std::vector<Header>;

/// The two PostGrid webhook payload formats (postgrid-api.md section 7).
enum class PayloadFormat { kJwt, kJson };
/// `jwt` or `json`.
std::string_view PayloadFormatName(PayloadFormat format);

/// The header that carries the JSON format's signature.
inline constexpr std::string_view kSignatureHeader = "PostGrid-Signature";

/// The outcome of Verify().
///
/// Status rule: **400** when the request cannot be checked or is not a usable event once checked
/// (missing or garbled signature header or token, duplicated header, empty body, payload not a
/// JSON object after a valid signature); **401** when it can be checked and the check fails (no
/// configured secret produces the signature, an algorithm other than HS256, a signature timestamp
/// or `iat` outside `max_age` in either direction). 200 when verified.
struct VerifyResult {  // NOLINT(bugprone-exception-escape): json's move is noexcept
  bool ok = false;
  /// The detected format; nullopt when the body looked like neither.
  std::optional<PayloadFormat> format;
  /// Empty when ok; otherwise one of: `empty_body`, `missing_signature`, `duplicate_header`,
  /// `malformed_header`, `malformed_token`, `not_json`, `bad_signature`, `alg_not_allowed`,
  /// `stale_timestamp`, `future_timestamp`.
  std::string reason;
  /// 200, 400 or 401 (see the rule above).
  int status = 400;
  /// The decoded payload when ok: the JWT claims, or the JSON format's body. Null otherwise.
  nlohmann::json payload;
  /// The payload's JSON text when ok: the JWT's decoded claims segment, or the JSON format's body
  /// (what is stored as `payload`, without serialising the parsed tree again).
  std::string payload_text;
};

/// Verifies one webhook delivery from its raw bytes, before anything in the body is parsed.
///
/// Format: a `PostGrid-Signature` header (any case) means the JSON format; otherwise a body that
/// consists only of base64url characters and dots is taken as a compact JWS (JWT format).
///  - JWT: HMAC-SHA256 over `header.payload` must equal the third part for one of `secrets`
///    (constant-time compare); the claims are decoded only after that. The JOSE header is
///    decoded only to name the refusal: it must be a JSON object (else `malformed_token`, 400)
///    whose `alg` is exactly `HS256` (`none`, `HS512`, `RS256`, ... are `alg_not_allowed`, also
///    when the MAC happens to match). `iat`, when present, must be a number within `max_age` of
///    `now` both ways.
///  - JSON: `t=<digits>,v1=<64 hex>[,v1=...]` (other keys ignored; 13 digits of `t` are
///    milliseconds, fewer are seconds); any `v1` equal to hex HMAC-SHA256(secret, t + "." + body)
///    for any secret verifies; then `t` must lie within `max_age` of `now` both ways.
///    The signature is checked before the timestamp, so `stale_timestamp` means "genuine but
///    old" (a replay), never a forgery.
/// Pure and thread-safe; never throws except std::bad_alloc.
VerifyResult Verify(const Headers& headers, std::string_view raw_body,
                    const std::vector<std::string>& secrets, domain::Timestamp now,
                    std::chrono::milliseconds max_age);

/// A verified payload read as a PostGrid event.
struct Event {  // NOLINT(bugprone-exception-escape): as VerifyResult
  /// The JSON format's `id` (`event_...`); JWT payloads have none.
  std::optional<std::string> event_id;
  /// `letter.updated`, `tracker.visited`, ...; empty when the payload names none.
  std::string type;
  /// The order the event is about; nullopt for non-order events ("ignored") and for order events
  /// whose data lacks the ids needed to fetch the order. The event's `data` itself (the order as
  /// PostGrid sent it) is a hint, never truth: the order is refreshed by GET, so it is not kept.
  std::optional<domain::OrderRef> order;
};

/// Reads the event type and the order it names from a verified payload.
///
/// The order type comes from the type's prefix (`letter.updated` -> letter; `data.object` may be
/// absent) and the id from `data.id`. A return envelope order also needs its envelope id, taken
/// from `data.returnEnvelope` (a string id or an object with `id`). Types whose prefix is not an
/// order object (`tracker.visited`, `campaign.*`, ...) give no order. Pure; never throws except
/// std::bad_alloc.
Event ParseEvent(const nlohmann::json& payload);

/// Lower-case hex SHA-256 of `bytes` (the digest stored as `body_sha256`).
std::string Sha256Hex(std::string_view bytes);

}  // namespace mailtrail::webhook
