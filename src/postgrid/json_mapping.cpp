#include "postgrid/json_mapping.hpp"

#include <cstdint>
#include <limits>
#include <optional>
#include <utility>

#include "domain/timestamp.hpp"

namespace mailtrail::postgrid {
namespace {

using domain::Timestamp;
using nlohmann::json;

// A JSON path kept as a chain of stack frames and only rendered when an error is thrown, so the
// happy path allocates nothing for it (mapping must stay well under 30 us per order).
struct Path {
  const Path* parent = nullptr;
  std::string_view key;
  std::size_t index = 0;
  bool is_index = false;

  Path Key(std::string_view child) const { return Path{this, child, 0, false}; }
  Path Index(std::size_t i) const { return Path{this, {}, i, true}; }

  std::string Render() const {
    std::string out = parent != nullptr ? parent->Render() : std::string();
    if (is_index) {
      out += '[';
      out += std::to_string(index);
      out += ']';
    } else if (!key.empty()) {
      if (!out.empty()) out += '.';
      out += key;
    }
    return out;
  }
};

// How a wrong value is shown in an error: scalars as JSON (strings quoted, long ones cut), and
// containers by kind only, since dumping a whole object into a log line helps nobody.
std::string Describe(const json& value) {
  switch (value.type()) {
    case json::value_t::object:
      return "an object";
    case json::value_t::array:
      return "an array";
    case json::value_t::discarded:
      return "nothing";
    default:
      break;
  }
  std::string text = value.dump(-1, ' ', false, json::error_handler_t::replace);
  constexpr std::size_t kMaxShown = 80;
  if (text.size() > kMaxShown) {
    // Cut on a UTF-8 character boundary so the message stays valid text for JSON logs.
    std::size_t cut = kMaxShown;
    while (cut > 0 && (static_cast<unsigned char>(text[cut]) & 0xC0) == 0x80) --cut;
    text.resize(cut);
    text += "...";
  }
  return text;
}

std::string OrderSubject(std::string_view id) {
  if (id.empty()) return "order (id unknown)";
  return "order " + std::string(id);
}

class OrderReader {
 public:
  domain::OrderSnapshot Read(const json& object) {
    const Path root;
    if (!object.is_object()) Fail(root, "expected a JSON object, got " + Describe(object));

    domain::OrderSnapshot snapshot;
    snapshot.ref.id = ReadId(object, root);
    order_id_ = snapshot.ref.id;
    snapshot.ref.type = ReadType(object, root);
    if (snapshot.ref.type == domain::OrderType::kReturnEnvelopeOrder) {
      snapshot.ref.envelope_id = ReadEnvelopeId(object, root);
    }

    snapshot.live = RequiredBool(object, root.Key("live"));
    snapshot.status = domain::OrderStatus::FromRaw(RequiredString(object, root.Key("status")));
    if (auto imb = OptionalString(object, root.Key("imbStatus"))) {
      snapshot.imb_status = domain::ImbStatus::FromRaw(std::move(*imb));
    }
    snapshot.imb_date = OptionalTimestamp(object, root.Key("imbDate"));
    snapshot.imb_zip_code = OptionalString(object, root.Key("imbZIPCode"));
    snapshot.tracking_number = OptionalString(object, root.Key("trackingNumber"));
    snapshot.mailing_class = OptionalString(object, root.Key("mailingClass"));
    snapshot.extra_service = OptionalString(object, root.Key("extraService"));
    snapshot.send_date = OptionalTimestamp(object, root.Key("sendDate"));

    const Path carrier_path = root.Key("carrierTracking");
    if (const json* carrier = OptionalObject(object, carrier_path)) {
      snapshot.carrier_tracking = ReadCarrier(*carrier, carrier_path);
    }

    const Path cancellation_path = root.Key("cancellation");
    if (const json* cancellation = OptionalObject(object, cancellation_path)) {
      snapshot.cancellation_reason = OptionalString(*cancellation, cancellation_path.Key("reason"));
    }

    snapshot.description = OptionalString(object, root.Key("description"));
    if (const json* metadata = OptionalObject(object, root.Key("metadata"))) {
      snapshot.metadata_json = metadata->dump(-1, ' ', false, json::error_handler_t::replace);
    }

    ReadDestination(object, root.Key("to"), snapshot);
    snapshot.created_at = OptionalTimestamp(object, root.Key("createdAt"));
    snapshot.updated_at = OptionalTimestamp(object, root.Key("updatedAt"));
    return snapshot;
  }

 private:
  [[noreturn]] void Fail(const Path& path, std::string problem) const {
    throw MappingError(OrderSubject(order_id_), order_id_, path.Render(), std::move(problem));
  }

  // nullptr when the key is absent or null: the API uses both for "no value".
  static const json* Find(const json& object, const Path& path) {
    const auto it = object.find(path.key);
    if (it == object.end() || it->is_null()) return nullptr;
    return &*it;
  }

  std::string ReadId(const json& object, const Path& root) const {
    const Path path = root.Key("id");
    const auto it = object.find(path.key);
    if (it == object.end()) Fail(path, "required field is missing");
    if (!it->is_string()) Fail(path, "expected string, got " + Describe(*it));
    std::string id = it->get<std::string>();
    if (id.empty()) Fail(path, "expected a non-empty id");
    return id;
  }

  domain::OrderType ReadType(const json& object, const Path& root) const {
    const Path path = root.Key("object");
    if (const json* value = Find(object, path)) {
      if (!value->is_string()) Fail(path, "expected string, got " + Describe(*value));
      if (auto type = domain::OrderTypeFromObject(value->get_ref<const std::string&>())) {
        return *type;
      }
      Fail(path, "not an order type: " + Describe(*value));
    }
    if (auto type = domain::OrderTypeFromId(order_id_)) return *type;
    Fail(root.Key("id"), "no \"object\" field and the id prefix names no order type");
  }

  std::string ReadEnvelopeId(const json& object, const Path& root) const {
    const Path path = root.Key("returnEnvelope");
    const json* value = Find(object, path);
    if (value == nullptr) return {};
    if (value->is_string()) return value->get<std::string>();
    if (value->is_object()) return RequiredString(*value, path.Key("id"));
    Fail(path, "expected string or object, got " + Describe(*value));
  }

  void ReadDestination(const json& object, const Path& path,
                       domain::OrderSnapshot& snapshot) const {
    const json* to = Find(object, path);
    if (to == nullptr || to->is_string()) return;  // an unexpanded contact id: no address here
    if (!to->is_object()) Fail(path, "expected contact id or object, got " + Describe(*to));
    snapshot.destination_state = OptionalString(*to, path.Key("provinceOrState"));
    snapshot.destination_country = OptionalString(*to, path.Key("countryCode"));
  }

  domain::CarrierTracking ReadCarrier(const json& object, const Path& path) const {
    domain::CarrierTracking carrier;
    carrier.carrier = OptionalString(object, path.Key("carrier"));
    if (auto status = OptionalString(object, path.Key("status"))) {
      carrier.status = domain::CarrierStatus::FromRaw(std::move(*status));
    }
    carrier.status_detail = OptionalString(object, path.Key("statusDetail"));
    carrier.est_delivery_date = OptionalTimestamp(object, path.Key("estDeliveryDate"));
    carrier.signed_by = OptionalString(object, path.Key("signedBy"));

    const Path updates_path = path.Key("trackingUpdates");
    const json* updates = Find(object, updates_path);
    if (updates == nullptr) return carrier;
    if (!updates->is_array()) Fail(updates_path, "expected array, got " + Describe(*updates));
    carrier.updates.reserve(updates->size());
    for (std::size_t i = 0; i < updates->size(); ++i) {
      carrier.updates.push_back(ReadUpdate((*updates)[i], updates_path.Index(i)));
    }
    return carrier;
  }

  domain::TrackingUpdate ReadUpdate(const json& object, const Path& path) const {
    if (!object.is_object()) Fail(path, "expected object, got " + Describe(object));
    domain::TrackingUpdate update;
    update.occurred_at = RequiredTimestamp(object, path.Key("createdAt"));
    // status and message are part of the event's unique key: absent becomes "" rather than a
    // NULL that the database would never consider equal to itself.
    update.status =
        domain::CarrierStatus::FromRaw(OptionalString(object, path.Key("status")).value_or(""));
    update.message = OptionalString(object, path.Key("message")).value_or("");
    update.source = OptionalString(object, path.Key("source"));
    const Path location_path = path.Key("trackingLocation");
    if (const json* location = OptionalObject(object, location_path)) {
      update.city = OptionalString(*location, location_path.Key("city"));
      update.province_or_state = OptionalString(*location, location_path.Key("provinceOrState"));
      update.country_code = OptionalString(*location, location_path.Key("countryCode"));
      update.postal_or_zip = OptionalString(*location, location_path.Key("postalOrZip"));
    }
    return update;
  }

  std::optional<std::string> OptionalString(const json& object, const Path& path) const {
    const json* value = Find(object, path);
    if (value == nullptr) return std::nullopt;
    if (!value->is_string()) Fail(path, "expected string, got " + Describe(*value));
    return value->get<std::string>();
  }

  std::string RequiredString(const json& object, const Path& path) const {
    const auto it = object.find(path.key);
    if (it == object.end()) Fail(path, "required field is missing");
    if (!it->is_string()) Fail(path, "expected string, got " + Describe(*it));
    return it->get<std::string>();
  }

  bool RequiredBool(const json& object, const Path& path) const {
    const auto it = object.find(path.key);
    if (it == object.end()) Fail(path, "required field is missing");
    if (!it->is_boolean()) Fail(path, "expected boolean, got " + Describe(*it));
    return it->get<bool>();
  }

  const json* OptionalObject(const json& object, const Path& path) const {
    const json* value = Find(object, path);
    if (value != nullptr && !value->is_object()) {
      Fail(path, "expected object, got " + Describe(*value));
    }
    return value;
  }

  Timestamp ToTimestamp(const json& value, const Path& path) const {
    if (value.is_string()) {
      if (auto parsed = domain::ParseTimestamp(value.get_ref<const std::string&>())) {
        return *parsed;
      }
    }
    Fail(path, "expected ISO-8601 timestamp, got " + Describe(value));
  }

  std::optional<Timestamp> OptionalTimestamp(const json& object, const Path& path) const {
    const json* value = Find(object, path);
    if (value == nullptr) return std::nullopt;
    return ToTimestamp(*value, path);
  }

  Timestamp RequiredTimestamp(const json& object, const Path& path) const {
    const auto it = object.find(path.key);
    if (it == object.end()) Fail(path, "required field is missing");
    return ToTimestamp(*it, path);
  }

  std::string order_id_;
};

// Walks as much of a broken document as parses and remembers the top-level "id", so an error
// about a truncated order can still name it.
class TopLevelIdFinder : public nlohmann::json_sax<json> {
 public:
  std::string id;

  bool null() override { return Scalar(); }
  bool boolean(bool /*value*/) override { return Scalar(); }
  bool number_integer(number_integer_t /*value*/) override { return Scalar(); }
  bool number_unsigned(number_unsigned_t /*value*/) override { return Scalar(); }
  bool number_float(number_float_t /*value*/, const string_t& /*text*/) override {
    return Scalar();
  }
  bool string(string_t& value) override {
    if (depth_ == 1 && at_id_) {
      id = value;
      return false;  // found: stop parsing
    }
    return Scalar();
  }
  bool binary(binary_t& /*value*/) override { return Scalar(); }
  bool start_object(std::size_t /*size*/) override {
    ++depth_;
    at_id_ = false;
    return true;
  }
  bool key(string_t& value) override {
    at_id_ = depth_ == 1 && value == "id";
    return true;
  }
  bool end_object() override { return Close(); }
  bool start_array(std::size_t /*size*/) override {
    ++depth_;
    at_id_ = false;
    return true;
  }
  bool end_array() override { return Close(); }
  bool parse_error(std::size_t /*position*/, const std::string& /*last_token*/,
                   const nlohmann::detail::exception& /*ex*/) override {
    return false;
  }

 private:
  bool Scalar() {
    at_id_ = false;
    return true;
  }
  bool Close() {
    --depth_;
    at_id_ = false;
    return true;
  }

  int depth_ = 0;
  bool at_id_ = false;
};

// Parses `body`, or returns the problem to report (empty optional means success).
std::optional<std::string> TryParse(std::string_view body, json& out) {
  if (body.empty()) return std::string("empty body, expected a JSON document");
  try {
    out = json::parse(body.begin(), body.end());
    return std::nullopt;
  } catch (const json::parse_error& error) {
    // `byte` is 1-based; it points past the end only when the lexer ran out of input, which
    // tells a cut-off body (worth a retry) from a wrong one such as an HTML error page.
    if (error.byte > body.size()) {
      return "truncated JSON document: input ends at byte " + std::to_string(body.size()) +
             " before the document is complete";
    }
    return "invalid JSON at byte " + std::to_string(error.byte) + ": " + error.what();
  } catch (const json::out_of_range& error) {
    // A number beyond a double (e.g. 1e400) is not a parse_error in nlohmann (found by fuzzing).
    return std::string("invalid JSON: ") + error.what();
  }
}

std::int64_t NonNegativeInteger(const json& page, std::string_view key) {
  const auto it = page.find(key);
  if (it == page.end()) {
    throw MappingError("list page", "", std::string(key), "required field is missing");
  }
  if (it->is_number_unsigned()) {
    const auto value = it->get<std::uint64_t>();
    if (value <= static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())) {
      return static_cast<std::int64_t>(value);
    }
  } else if (it->is_number_integer() && it->get<std::int64_t>() >= 0) {
    return it->get<std::int64_t>();
  }
  throw MappingError("list page", "", std::string(key),
                     "expected non-negative integer, got " + Describe(*it));
}

// Checks the envelope and fills everything but `data`; returns the validated `data` array.
const json& ReadListEnvelope(const json& page, ListPage& result) {
  if (!page.is_object()) {
    throw MappingError("list page", "", "", "expected a JSON object, got " + Describe(page));
  }
  const auto object = page.find("object");
  if (object != page.end() && !object->is_null() && *object != "list") {
    throw MappingError("list page", "", "object", "expected \"list\", got " + Describe(*object));
  }
  result.limit = NonNegativeInteger(page, "limit");
  result.skip = NonNegativeInteger(page, "skip");
  result.total_count = NonNegativeInteger(page, "totalCount");
  const auto data = page.find("data");
  if (data == page.end()) {
    throw MappingError("list page", "", "data", "required field is missing");
  }
  if (!data->is_array()) {
    throw MappingError("list page", "", "data", "expected array, got " + Describe(*data));
  }
  return *data;
}

}  // namespace

MappingError::MappingError(const std::string& subject, std::string order_id, std::string field,
                           std::string problem)
    : std::runtime_error(subject + ": " + (field.empty() ? "" : "field " + field + ": ") + problem),
      order_id_(std::move(order_id)),
      field_(std::move(field)),
      problem_(std::move(problem)) {}

domain::OrderSnapshot MapOrder(const nlohmann::json& object) { return OrderReader{}.Read(object); }

MappedOrder MapOrderText(std::string_view body) {
  MappedOrder mapped;
  if (auto problem = TryParse(body, mapped.raw)) {
    TopLevelIdFinder finder;
    json::sax_parse(body.begin(), body.end(), &finder);
    throw MappingError(OrderSubject(finder.id), finder.id, "", std::move(*problem));
  }
  mapped.snapshot = MapOrder(mapped.raw);
  return mapped;
}

nlohmann::json ParseJsonText(std::string_view body, std::string_view subject) {
  json parsed;
  if (auto problem = TryParse(body, parsed)) {
    throw MappingError(std::string(subject), "", "", std::move(*problem));
  }
  return parsed;
}

ListPage MapListPage(const nlohmann::json& page) {
  ListPage result;
  const json& data = ReadListEnvelope(page, result);
  result.data.assign(data.begin(), data.end());
  return result;
}

ListPage MapListPage(nlohmann::json&& page) {
  ListPage result;
  ReadListEnvelope(page, result);
  // Validated above; moving the items avoids copying up to 100 orders per page.
  result.data = std::move(page["data"].get_ref<json::array_t&>());
  return result;
}

}  // namespace mailtrail::postgrid
