#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "domain/order.hpp"

namespace mailtrail::postgrid {

/// PostGrid JSON that cannot be read as what it claims to be: wrong JSON type, bad timestamp,
/// missing required field, truncated or non-JSON document. A permanent error for that one object
/// (style.md habit 7: log with the order id and skip it). `what()` reads like
/// `order letter_123: field carrierTracking.trackingUpdates[2].createdAt: expected ISO-8601
/// timestamp, got "yesterday"`.
class MappingError : public std::runtime_error {
 public:
  /// `subject` names what was being read (`order letter_123`, `order (id unknown)`,
  /// `list page`); `field` is the JSON path inside it, empty for the document itself.
  MappingError(const std::string& subject, std::string order_id, std::string field,
               std::string problem);

  /// The order's `id` when it was readable, else empty.
  const std::string& order_id() const noexcept { return order_id_; }
  /// The JSON path of the offending value, e.g. `carrierTracking.trackingUpdates[2].createdAt`;
  /// empty when the document as a whole is at fault.
  const std::string& field() const noexcept { return field_; }
  /// What was wrong, e.g. `expected string, got 42`.
  const std::string& problem() const noexcept { return problem_; }

 private:
  std::string order_id_;
  std::string field_;
  std::string problem_;
};

/// Reads one PostGrid order object (any of the seven types, list item, retrieve or progression
/// response, or webhook `data`) into a domain snapshot. The type comes from `object`, else from
/// the id prefix. Tolerant: unknown fields are ignored, unknown enum strings are kept verbatim,
/// absent and null both mean "no value" for optional fields, `to` may be an id or an object.
/// Required: `id` (string), `live` (bool), `status` (string), and `createdAt` on each tracking
/// update. For return envelope orders `ref.envelope_id` comes from `returnEnvelope` (an id or an
/// object with `id`) and stays empty when the field is absent; callers that listed the order
/// under its envelope know the id and should fill it in.
/// Pure and thread-safe. Throws MappingError (never a half-filled snapshot) on any violation.
domain::OrderSnapshot MapOrder(const nlohmann::json& object);

/// A parsed order document together with its snapshot: `raw` is what goes to `orders.raw`.
// Its implicit move constructor cannot throw: json's move constructor is noexcept. clang-tidy 14
// looks inside that constructor's body and reports what it might throw there anyway.
// NOLINTNEXTLINE(bugprone-exception-escape): false positive, see above
struct MappedOrder {
  nlohmann::json raw;
  domain::OrderSnapshot snapshot;
};

/// Parses an HTTP body and maps it with MapOrder. A truncated body throws MappingError
/// "truncated JSON document: …"; any other non-JSON body "invalid JSON at byte N: …" (N 1-based,
/// as nlohmann counts). Either names the order id when the part that did
/// arrive contains the top-level `id`. Thread-safe.
MappedOrder MapOrderText(std::string_view body);

/// Parses an HTTP body as JSON, throwing MappingError (subject `subject`, e.g. `list page`) for a
/// truncated or non-JSON document instead of nlohmann's parse_error. Thread-safe.
nlohmann::json ParseJsonText(std::string_view body, std::string_view subject);

/// One page of a list endpoint: `{"object":"list","limit":L,"skip":S,"totalCount":N,"data":[…]}`.
/// `data` items are left as JSON for MapOrder, so one malformed order does not lose the page.
struct ListPage {
  std::int64_t limit = 0;
  std::int64_t skip = 0;
  std::int64_t total_count = 0;
  std::vector<nlohmann::json> data;
};

/// Validates the list envelope: `object` must be `list` when present; `limit`, `skip` and
/// `totalCount` are required non-negative integers; `data` is a required array. Items are not
/// inspected. The rvalue overload moves the items out instead of copying them.
/// Throws MappingError (subject `list page`). Pure and thread-safe.
ListPage MapListPage(const nlohmann::json& page);
ListPage MapListPage(nlohmann::json&& page);

}  // namespace mailtrail::postgrid
