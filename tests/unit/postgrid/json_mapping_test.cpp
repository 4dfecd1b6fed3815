#include "postgrid/json_mapping.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <fstream>
#include <sstream>
#include <string>

#include "domain/diff.hpp"

namespace mailtrail::domain {

// Readable failure output for whole snapshots.
void PrintTo(const OrderSnapshot& s, std::ostream* out) {
  const auto opt = [](const auto& value) -> std::string {
    if (!value) return "null";
    if constexpr (std::is_same_v<std::decay_t<decltype(*value)>, Timestamp>) {
      return FormatTimestamp(*value);
    } else {
      return *value;
    }
  };
  *out << "{id=" << s.ref.id << " type=" << EndpointName(s.ref.type)
       << " envelope=" << s.ref.envelope_id << " live=" << s.live << " status=" << s.status.raw
       << " imb=" << (s.imb_status ? s.imb_status->raw : "null") << " imb_date=" << opt(s.imb_date)
       << " imb_zip=" << opt(s.imb_zip_code) << " tracking=" << opt(s.tracking_number)
       << " class=" << opt(s.mailing_class) << " extra=" << opt(s.extra_service)
       << " send=" << opt(s.send_date) << " cancel=" << opt(s.cancellation_reason)
       << " description=" << opt(s.description) << " metadata=" << opt(s.metadata_json)
       << " state=" << opt(s.destination_state) << " country=" << opt(s.destination_country)
       << " created=" << opt(s.created_at) << " updated=" << opt(s.updated_at);
  if (s.carrier_tracking) {
    const auto& c = *s.carrier_tracking;
    *out << " carrier={" << opt(c.carrier) << ' ' << (c.status ? c.status->raw : "null") << ' '
         << opt(c.status_detail) << ' ' << opt(c.est_delivery_date) << ' ' << opt(c.signed_by);
    for (const auto& u : c.updates) {
      *out << " [" << FormatTimestamp(u.occurred_at) << ' ' << u.status.raw << ' ' << u.message
           << ' ' << opt(u.source) << ' ' << opt(u.city) << ' ' << opt(u.province_or_state) << ' '
           << opt(u.country_code) << ' ' << opt(u.postal_or_zip) << ']';
    }
    *out << '}';
  }
  *out << '}';
}

}  // namespace mailtrail::domain

namespace mailtrail::postgrid {
namespace {

using domain::CarrierStatus;
using domain::CarrierTracking;
using domain::ImbStatus;
using domain::OrderSnapshot;
using domain::OrderStatus;
using domain::OrderType;
using domain::Timestamp;
using domain::TrackingUpdate;
using nlohmann::json;
using testing::StartsWith;

std::string ReadFixture(const std::string& name) {
  const std::string path = std::string(MAILTRAIL_SOURCE_DIR) + "/tests/data/" + name;
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot open fixture " + path);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

json Fixture(const std::string& name) { return json::parse(ReadFixture(name)); }

Timestamp Ts(std::string_view iso) {
  auto parsed = domain::ParseTimestamp(iso);
  if (!parsed) throw std::invalid_argument("bad timestamp in test: " + std::string(iso));
  return *parsed;
}

// The message a MappingError carries, or "no error" when mapping succeeded.
std::string ErrorOf(const json& object) {
  try {
    MapOrder(object);
  } catch (const MappingError& error) {
    return error.what();
  }
  return "no error";
}

std::string TextErrorOf(std::string_view body) {
  try {
    MapOrderText(body);
  } catch (const MappingError& error) {
    return error.what();
  }
  return "no error";
}

std::string PageErrorOf(const json& page) {
  try {
    MapListPage(page);
  } catch (const MappingError& error) {
    return error.what();
  }
  return "no error";
}

OrderSnapshot SeedPostcard() {
  OrderSnapshot s;
  s.ref = {OrderType::kPostcard, "postcard_asdb8123hasd1l1As", ""};
  s.live = false;
  s.status = OrderStatus::FromRaw("ready");
  s.send_date = Ts("2022-05-11T16:03:20.974Z");
  s.description = "This is a test order for verifying statuses";
  s.created_at = Ts("2020-11-18T05:10:52.994Z");
  s.updated_at = Ts("2020-11-18T05:10:52.994Z");
  return s;  // `to` is a contact id: no destination
}

// ---- Fixtures copied from the vendor documentation. ----

TEST(JsonMappingSeedTest, Seed000PostcardListPage) {
  ListPage page = MapListPage(Fixture("seed000_postcard_list.json"));
  EXPECT_EQ(page.limit, 5);
  EXPECT_EQ(page.skip, 10);
  EXPECT_EQ(page.total_count, 100);
  ASSERT_EQ(page.data.size(), 1u);
  EXPECT_EQ(MapOrder(page.data[0]), SeedPostcard());
}

TEST(JsonMappingSeedTest, Seed000PostcardRetrieve) {
  EXPECT_EQ(MapOrder(Fixture("seed000_postcard_retrieve.json")), SeedPostcard());
}

TEST(JsonMappingSeedTest, Seed000ImbListItem) {
  const ListPage page = MapListPage(Fixture("seed000_postcard_imb_list.json"));
  ASSERT_EQ(page.data.size(), 1u);
  OrderSnapshot expected = SeedPostcard();
  expected.status = OrderStatus::FromRaw("processed_for_delivery");
  expected.imb_status = ImbStatus::FromRaw("entered_mail_stream");
  const OrderSnapshot actual = MapOrder(page.data[0]);
  EXPECT_EQ(actual, expected);
  EXPECT_EQ(actual.imb_status->kind, ImbStatus::Kind::kEnteredMailStream);
}

TEST(JsonMappingSeedTest, Seed000ImbRetrieveKeepsTheVendorsBogusStatusVerbatim) {
  const OrderSnapshot actual = MapOrder(Fixture("seed000_postcard_imb_retrieve.json"));
  EXPECT_EQ(actual.status.raw, "entered_mail_stream");
  EXPECT_EQ(actual.status.kind, OrderStatus::Kind::kUnknown);
  OrderSnapshot expected = SeedPostcard();
  expected.status = OrderStatus::FromRaw("entered_mail_stream");
  expected.imb_status = ImbStatus::FromRaw("entered_mail_stream");
  EXPECT_EQ(actual, expected);
}

TEST(JsonMappingSeedTest, Seed000CertifiedCheque) {
  OrderSnapshot expected;
  expected.ref = {OrderType::kCheque, "cheque_mK8PfefU41ZQnKBRCaUayh", ""};
  expected.status = OrderStatus::FromRaw("ready");
  expected.extra_service = "certified";
  expected.send_date = Ts("2020-11-18T00:00:00Z");  // date-only in the seed
  expected.description = "Certified Mail";
  expected.destination_state = "ON";  // countryCode is null in the seed
  expected.created_at = Ts("2020-11-18T05:10:52.994Z");
  expected.updated_at = Ts("2020-11-18T05:10:52.994Z");
  EXPECT_EQ(MapOrder(Fixture("seed000_cheque_certified.json")), expected);
}

TEST(JsonMappingSeedTest, Seed003BoxProgression) {
  OrderSnapshot expected;
  expected.ref = {OrderType::kBox, "box_123456", ""};
  expected.status = OrderStatus::FromRaw("ready");
  expected.mailing_class = "first_class";
  expected.send_date = Ts("2020-11-12T23:23:47.974Z");
  expected.description = "A sample box of cheques";
  expected.destination_state = "MA";
  expected.destination_country = "US";
  expected.created_at = Ts("2025-01-01T12:00:00Z");
  expected.updated_at = Ts("2025-01-02T12:00:00Z");
  EXPECT_EQ(MapOrder(Fixture("seed003_box_progression.json")), expected);
}

TEST(JsonMappingSeedTest, Seed004SnapPackProgression) {
  OrderSnapshot expected;
  expected.ref = {OrderType::kSnapPack, "snap_pack_123456", ""};
  expected.status = OrderStatus::FromRaw("ready");
  expected.mailing_class = "usps_first_class";
  expected.send_date = Ts("2020-11-12T23:23:47.974Z");
  expected.destination_state = "MA";
  expected.destination_country = "US";
  expected.created_at = Ts("2020-11-12T23:23:47.974Z");
  expected.updated_at = Ts("2020-11-12T23:23:47.974Z");
  EXPECT_EQ(MapOrder(Fixture("seed004_snap_pack_progression.json")), expected);
}

// ---- Hand-written fixtures, one per order type and per tricky shape. ----

TrackingUpdate MakeUpdate(std::string_view at, std::string status, std::string message,
                          std::optional<std::string> source, std::optional<std::string> city,
                          std::optional<std::string> state, std::optional<std::string> country,
                          std::optional<std::string> zip) {
  return TrackingUpdate{Ts(at),
                        CarrierStatus::FromRaw(std::move(status)),
                        std::move(message),
                        std::move(source),
                        std::move(city),
                        std::move(state),
                        std::move(country),
                        std::move(zip)};
}

TEST(JsonMappingFixtureTest, DeliveredCertifiedLetterWithCarrierTracking) {
  OrderSnapshot expected;
  expected.ref = {OrderType::kLetter, "letter_4nG7uDvWDhM5wtkmWtyHAf", ""};
  expected.live = true;
  expected.status = OrderStatus::FromRaw("completed");
  expected.imb_status = ImbStatus::FromRaw("out_for_delivery");
  expected.imb_date = Ts("2024-03-06T22:14:09.118Z");
  expected.imb_zip_code = "10001";
  expected.tracking_number = "9407111899223033005282";
  expected.mailing_class = "first_class";
  expected.extra_service = "certified";
  expected.send_date = Ts("2024-03-04T14:00:00Z");
  expected.description = "Certified notice, spring batch";
  expected.metadata_json = R"({"batch":7,"campaignID":"spring-24","tags":["notice","certified"]})";
  expected.destination_state = "NY";
  expected.destination_country = "US";
  expected.created_at = Ts("2024-03-03T20:11:02.511Z");
  expected.updated_at = Ts("2024-03-07T17:02:19.730Z");
  CarrierTracking carrier;
  carrier.carrier = "USPS";
  carrier.status = CarrierStatus::FromRaw("delivered");
  carrier.status_detail = "arrived_at_destination";
  carrier.est_delivery_date = Ts("2024-03-07T00:00:00Z");
  carrier.signed_by = "J DOE";
  carrier.updates = {
      MakeUpdate("2024-03-07T16:45:00Z", "delivered", "Delivered, Left with Individual", "USPS",
                 "NEW YORK", "NY", "US", "10118"),
      MakeUpdate("2024-03-07T11:05:00Z", "out_for_delivery", "Out for Delivery", "USPS", "NEW YORK",
                 "NY", std::nullopt, std::nullopt),
      MakeUpdate("2024-03-06T02:30:00Z", "in_transit", "Arrived at USPS Regional Facility", "USPS",
                 std::nullopt, std::nullopt, std::nullopt, std::nullopt),
      MakeUpdate("2024-03-04T18:00:00Z", "pre_transit",
                 "Shipping Label Created, USPS Awaiting Item", "USPS", std::nullopt, std::nullopt,
                 std::nullopt, std::nullopt),
  };
  expected.carrier_tracking = carrier;
  const OrderSnapshot actual = MapOrder(Fixture("letter_certified_delivered.json"));
  EXPECT_EQ(actual, expected);
  EXPECT_EQ(actual.carrier_tracking->status->kind, CarrierStatus::Kind::kDelivered);
}

TEST(JsonMappingFixtureTest, SelfMailerWithNullCarrierFieldsAndNoUpdates) {
  OrderSnapshot expected;
  expected.ref = {OrderType::kSelfMailer, "self_mailer_2Tq9rXJbWn1yS5bNw8cYhD", ""};
  expected.live = true;
  expected.status = OrderStatus::FromRaw("processed_for_delivery");
  expected.imb_status = ImbStatus::FromRaw("entered_mail_stream");
  expected.imb_date = Ts("2024-03-05T16:20:00Z");
  expected.imb_zip_code = "78710";
  expected.tracking_number = "9400111899223033005299";
  expected.mailing_class = "standard_class";
  expected.send_date = Ts("2024-03-04T00:00:00Z");
  expected.destination_state = "TX";
  expected.destination_country = "US";
  expected.created_at = Ts("2024-03-03T09:00:00Z");
  expected.updated_at = Ts("2024-03-05T16:20:00.120Z");
  CarrierTracking carrier;
  carrier.carrier = "USPS";
  carrier.status = CarrierStatus::FromRaw("in_transit");
  carrier.status_detail = "depared_origin_facility";
  expected.carrier_tracking = carrier;
  EXPECT_EQ(MapOrder(Fixture("self_mailer_in_transit.json")), expected);
}

TEST(JsonMappingFixtureTest, ReturnEnvelopeOrderWithEnvelopeIdString) {
  OrderSnapshot expected;
  expected.ref = {OrderType::kReturnEnvelopeOrder, "return_envelope_order_8HqVwXkP3sYbTn2RcLd4Fm",
                  "return_envelope_3xKjT7mQ9vB2nR5wYc8HdL"};
  expected.status = OrderStatus::FromRaw("placed");
  expected.created_at = Ts("2024-02-01T10:00:00Z");
  expected.updated_at = Ts("2024-02-01T10:00:00Z");
  const OrderSnapshot actual = MapOrder(Fixture("return_envelope_order_placed.json"));
  EXPECT_EQ(actual, expected);
  EXPECT_EQ(actual.status.kind, OrderStatus::Kind::kPlaced);
}

TEST(JsonMappingFixtureTest, ReturnEnvelopeOrderWithExpandedEnvelope) {
  OrderSnapshot expected;
  expected.ref = {OrderType::kReturnEnvelopeOrder, "return_envelope_order_5Zp2LmQ8rT4vNx7KbWc3Gh",
                  "return_envelope_3xKjT7mQ9vB2nR5wYc8HdL"};
  expected.live = true;
  expected.status = OrderStatus::FromRaw("filled");
  expected.created_at = Ts("2024-02-01T10:00:00Z");
  expected.updated_at = Ts("2024-02-09T15:30:00Z");
  const OrderSnapshot actual = MapOrder(Fixture("return_envelope_order_filled.json"));
  EXPECT_EQ(actual, expected);
  EXPECT_EQ(actual.status.kind, OrderStatus::Kind::kFilled);
}

TEST(JsonMappingFixtureTest, ReturnEnvelopeOrderWithoutEnvelopeLeavesItEmpty) {
  json object = Fixture("return_envelope_order_placed.json");
  object.erase("returnEnvelope");
  EXPECT_EQ(MapOrder(object).ref.envelope_id, "");
}

TEST(JsonMappingFixtureTest, ReturnEnvelopeFieldOfOtherTypesIsIgnored) {
  // Letters can carry a return envelope of their own; only return envelope orders are nested.
  json object = Fixture("seed000_postcard_retrieve.json");
  object["returnEnvelope"] = "return_envelope_1";
  EXPECT_EQ(MapOrder(object).ref.envelope_id, "");
}

TEST(JsonMappingFixtureTest, CancelledChequeCarriesTheReason) {
  OrderSnapshot expected;
  expected.ref = {OrderType::kCheque, "cheque_9RtY2uI4oP6aS8dF0gH2jK", ""};
  expected.status = OrderStatus::FromRaw("cancelled");
  expected.mailing_class = "first_class";
  expected.send_date = Ts("2024-03-02T05:00:00Z");
  expected.cancellation_reason = "user_initiated";
  expected.created_at = Ts("2024-03-01T12:00:00Z");
  expected.updated_at = Ts("2024-03-01T12:30:00Z");
  EXPECT_EQ(MapOrder(Fixture("cheque_cancelled.json")), expected);
}

TEST(JsonMappingFixtureTest, UnknownFieldsIgnoredAndUnknownEnumValuesKeptVerbatim) {
  OrderSnapshot expected;
  expected.ref = {OrderType::kPostcard, "postcard_7yU8iO9pA1sD2fG3hJ4kL5", ""};
  expected.live = true;
  expected.status = OrderStatus::FromRaw("on_hold_for_review");
  expected.imb_status = ImbStatus::FromRaw("forwarded");
  expected.imb_zip_code = "H2X1Y4";
  expected.tracking_number = "LZ123456789CA";
  expected.mailing_class = "usps_marketing_saturation_flats";
  expected.send_date = Ts("2024-03-25T04:00:00Z");
  expected.destination_state = "QC";
  expected.destination_country = "CA";
  expected.created_at = Ts("2024-03-24T18:00:00Z");
  expected.updated_at = Ts("2024-03-28T09:30:00Z");
  CarrierTracking carrier;
  carrier.carrier = "Canada Post";
  carrier.status = CarrierStatus::FromRaw("held_at_customs");
  carrier.status_detail = "customs_inspection";
  carrier.est_delivery_date = Ts("2024-04-02T00:00:00Z");
  carrier.updates = {MakeUpdate("2024-03-28T08:15:30.500Z", "customs_hold", "Item held at customs",
                                "Canada Post", "MONTREAL", "QC", "CA", "H4T 1A1")};
  expected.carrier_tracking = carrier;

  const OrderSnapshot actual = MapOrder(Fixture("postcard_unknown_values.json"));
  EXPECT_EQ(actual, expected);
  EXPECT_EQ(actual.status.kind, OrderStatus::Kind::kUnknown);
  EXPECT_EQ(actual.imb_status->kind, ImbStatus::Kind::kUnknown);
  EXPECT_EQ(actual.carrier_tracking->status->kind, CarrierStatus::Kind::kUnknown);
  EXPECT_EQ(actual.carrier_tracking->updates[0].status.kind, CarrierStatus::Kind::kUnknown);
}

TEST(JsonMappingFixtureTest, WebhookDataWithoutObjectAndExplicitNulls) {
  OrderSnapshot expected;
  expected.ref = {OrderType::kLetter, "letter_1aB2cD3eF4gH5iJ6kL7mN8", ""};
  expected.status = OrderStatus::FromRaw("printing");
  expected.mailing_class = "first_class";
  expected.send_date = Ts("2024-03-10T00:00:00Z");
  expected.metadata_json = "{}";
  expected.created_at = Ts("2024-03-09T23:59:59.999Z");
  expected.updated_at = Ts("2024-03-10T05:00:00.000001Z");
  EXPECT_EQ(MapOrder(Fixture("letter_webhook_data_no_object.json")), expected);
}

TEST(JsonMappingFixtureTest, AbsentAndNullMeanTheSame) {
  json with_nulls = Fixture("letter_webhook_data_no_object.json");
  json without = with_nulls;
  for (const char* key : {"extraService", "imbStatus", "trackingNumber", "carrierTracking",
                          "cancellation", "description"}) {
    ASSERT_TRUE(without.erase(key)) << key;
  }
  EXPECT_EQ(MapOrder(with_nulls), MapOrder(without));
}

TEST(JsonMappingFixtureTest, ObjectFieldWinsAndTypeFollowsIt) {
  json object = Fixture("letter_webhook_data_no_object.json");
  EXPECT_EQ(MapOrder(object).ref.type, OrderType::kLetter);
  object["object"] = "letter";
  EXPECT_EQ(MapOrder(object).ref.type, OrderType::kLetter);
}

TEST(JsonMappingFixtureTest, EveryOrderTypeIsRecognisedFromObjectAndFromIdPrefix) {
  for (OrderType type : domain::kAllOrderTypes) {
    const std::string id = std::string(domain::ObjectName(type)) + "_abc123";
    json with_object = {
        {"id", id}, {"object", domain::ObjectName(type)}, {"live", false}, {"status", "ready"}};
    json without_object = {{"id", id}, {"live", false}, {"status", "ready"}};
    EXPECT_EQ(MapOrder(with_object).ref.type, type) << id;
    EXPECT_EQ(MapOrder(without_object).ref.type, type) << id;
  }
}

TEST(JsonMappingFixtureTest, MappedFixtureDiffsAsAFirstObservation) {
  // The mapping feeds Diff directly: the carrier updates come out oldest first.
  const domain::OrderDiff diff =
      domain::Diff(std::nullopt, MapOrder(Fixture("letter_certified_delivered.json")));
  ASSERT_EQ(diff.new_updates.size(), 4u);
  EXPECT_EQ(diff.new_updates.front().status.raw, "pre_transit");
  EXPECT_EQ(diff.new_updates.back().status.raw, "delivered");
  EXPECT_EQ(diff.changes.size(), 8u);  // every tracked field is set except cancellation_reason
}

// ---- Malformed orders: one exact message per case, never a crash or a half-filled snapshot. ----

struct MalformedCase {
  std::string name;
  json object;
  std::string expected_error;
};

json ValidLetter() {
  return json::parse(R"({"id":"letter_123","object":"letter","live":true,"status":"ready"})");
}

json ValidLetterWith(const json::json_pointer& pointer, json value) {
  json object = ValidLetter();
  object[pointer] = std::move(value);
  return object;
}

json LetterWithUpdates(json updates) {
  json object = ValidLetter();
  object["carrierTracking"] = {{"status", "in_transit"}, {"trackingUpdates", std::move(updates)}};
  return object;
}

json GoodUpdate() {
  return json::parse(R"({"message":"Accepted","status":"in_transit",
                         "createdAt":"2024-03-05T14:10:00Z","source":"USPS"})");
}

void PrintTo(const MalformedCase& c, std::ostream* out) { *out << c.name; }

class MalformedOrderTest : public testing::TestWithParam<MalformedCase> {};

TEST_P(MalformedOrderTest, GivesTheExactError) {
  EXPECT_EQ(ErrorOf(GetParam().object), GetParam().expected_error);
}

INSTANTIATE_TEST_SUITE_P(
    Cases, MalformedOrderTest,
    testing::Values(
        MalformedCase{"NotAnObject", json::array({1}),
                      "order (id unknown): expected a JSON object, got an array"},
        MalformedCase{"NullDocument", json(nullptr),
                      "order (id unknown): expected a JSON object, got null"},
        MalformedCase{"MissingId", json::parse(R"({"object":"letter","live":true})"),
                      "order (id unknown): field id: required field is missing"},
        MalformedCase{"NumericId", json::parse(R"({"id":42,"object":"letter"})"),
                      "order (id unknown): field id: expected string, got 42"},
        MalformedCase{"NullId", json::parse(R"({"id":null,"object":"letter"})"),
                      "order (id unknown): field id: expected string, got null"},
        MalformedCase{"EmptyId", json::parse(R"({"id":"","object":"letter"})"),
                      "order (id unknown): field id: expected a non-empty id"},
        MalformedCase{"NotAnOrderObject",
                      json::parse(R"({"id":"contact_1","object":"contact","live":true})"),
                      "order contact_1: field object: not an order type: \"contact\""},
        MalformedCase{"ObjectNotAString", ValidLetterWith("/object"_json_pointer, 7),
                      "order letter_123: field object: expected string, got 7"},
        MalformedCase{"NoObjectAndUnknownPrefix",
                      json::parse(R"({"id":"tracker_9","live":true,"status":"ready"})"),
                      "order tracker_9: field id: no \"object\" field and the id prefix names no "
                      "order type"},
        MalformedCase{"MissingLive", json::parse(R"({"id":"letter_123","status":"ready"})"),
                      "order letter_123: field live: required field is missing"},
        MalformedCase{"LiveAsString", ValidLetterWith("/live"_json_pointer, "true"),
                      "order letter_123: field live: expected boolean, got \"true\""},
        MalformedCase{"MissingStatus", json::parse(R"({"id":"letter_123","live":false})"),
                      "order letter_123: field status: required field is missing"},
        MalformedCase{"NullStatus", ValidLetterWith("/status"_json_pointer, nullptr),
                      "order letter_123: field status: expected string, got null"},
        MalformedCase{"ImbStatusNumber", ValidLetterWith("/imbStatus"_json_pointer, 3),
                      "order letter_123: field imbStatus: expected string, got 3"},
        MalformedCase{"TrackingNumberObject",
                      ValidLetterWith("/trackingNumber"_json_pointer, json::object()),
                      "order letter_123: field trackingNumber: expected string, got an object"},
        MalformedCase{"SendDateWords", ValidLetterWith("/sendDate"_json_pointer, "tomorrow"),
                      "order letter_123: field sendDate: expected ISO-8601 timestamp, got "
                      "\"tomorrow\""},
        MalformedCase{"UpdatedAtEpochNumber",
                      ValidLetterWith("/updatedAt"_json_pointer, 1652285000),
                      "order letter_123: field updatedAt: expected ISO-8601 timestamp, got "
                      "1652285000"},
        MalformedCase{"CreatedAtWithoutZone",
                      ValidLetterWith("/createdAt"_json_pointer, "2024-03-05T14:10:00"),
                      "order letter_123: field createdAt: expected ISO-8601 timestamp, got "
                      "\"2024-03-05T14:10:00\""},
        MalformedCase{"ImbDateImpossibleDay",
                      ValidLetterWith("/imbDate"_json_pointer, "2024-02-30T00:00:00Z"),
                      "order letter_123: field imbDate: expected ISO-8601 timestamp, got "
                      "\"2024-02-30T00:00:00Z\""},
        MalformedCase{"CarrierTrackingArray",
                      ValidLetterWith("/carrierTracking"_json_pointer, json::array()),
                      "order letter_123: field carrierTracking: expected object, got an array"},
        MalformedCase{"CarrierStatusNumber",
                      ValidLetterWith("/carrierTracking"_json_pointer, {{"status", 5}}),
                      "order letter_123: field carrierTracking.status: expected string, got 5"},
        MalformedCase{
            "EstDeliveryDateBad",
            ValidLetterWith("/carrierTracking"_json_pointer, {{"estDeliveryDate", "next week"}}),
            "order letter_123: field carrierTracking.estDeliveryDate: expected ISO-8601 "
            "timestamp, got \"next week\""},
        MalformedCase{
            "TrackingUpdatesObject",
            ValidLetterWith("/carrierTracking"_json_pointer, {{"trackingUpdates", json::object()}}),
            "order letter_123: field carrierTracking.trackingUpdates: expected array, "
            "got an object"},
        MalformedCase{
            "UpdateCreatedAtWords",
            LetterWithUpdates(
                {GoodUpdate(), GoodUpdate(),
                 json::parse(R"({"status":"in_transit","message":"m","createdAt":"yesterday"})")}),
            "order letter_123: field carrierTracking.trackingUpdates[2].createdAt: "
            "expected ISO-8601 timestamp, got \"yesterday\""},
        MalformedCase{"UpdateWithoutCreatedAt",
                      LetterWithUpdates({json::parse(R"({"status":"in_transit","message":"m"})")}),
                      "order letter_123: field carrierTracking.trackingUpdates[0].createdAt: "
                      "required field is missing"},
        MalformedCase{"UpdateNotAnObject", LetterWithUpdates({GoodUpdate(), "x"}),
                      "order letter_123: field carrierTracking.trackingUpdates[1]: expected "
                      "object, got \"x\""},
        MalformedCase{"UpdateMessageNumber",
                      LetterWithUpdates(
                          {json::parse(R"({"createdAt":"2024-03-05T14:10:00Z","message":404})")}),
                      "order letter_123: field carrierTracking.trackingUpdates[0].message: "
                      "expected string, got 404"},
        MalformedCase{"TrackingLocationString",
                      LetterWithUpdates({json::parse(
                          R"({"createdAt":"2024-03-05T14:10:00Z","trackingLocation":"BOSTON"})")}),
                      "order letter_123: field carrierTracking.trackingUpdates[0].trackingLocation:"
                      " expected object, got \"BOSTON\""},
        MalformedCase{
            "TrackingLocationCityNumber",
            LetterWithUpdates({json::parse(
                R"({"createdAt":"2024-03-05T14:10:00Z","trackingLocation":{"city":1}})")}),
            "order letter_123: field carrierTracking.trackingUpdates[0].trackingLocation"
            ".city: expected string, got 1"},
        MalformedCase{"MetadataString", ValidLetterWith("/metadata"_json_pointer, "abc"),
                      "order letter_123: field metadata: expected object, got \"abc\""},
        MalformedCase{"ToNumber", ValidLetterWith("/to"_json_pointer, 5),
                      "order letter_123: field to: expected contact id or object, got 5"},
        MalformedCase{"ToStateNumber",
                      ValidLetterWith("/to"_json_pointer, {{"provinceOrState", 12}}),
                      "order letter_123: field to.provinceOrState: expected string, got 12"},
        MalformedCase{"CancellationString",
                      ValidLetterWith("/cancellation"_json_pointer, "user_initiated"),
                      "order letter_123: field cancellation: expected object, got "
                      "\"user_initiated\""},
        MalformedCase{"CancellationReasonNumber",
                      ValidLetterWith("/cancellation"_json_pointer, {{"reason", 1}}),
                      "order letter_123: field cancellation.reason: expected string, got 1"},
        MalformedCase{"ReturnEnvelopeNumber",
                      json::parse(R"({"id":"return_envelope_order_1","live":true,
                                      "status":"placed","returnEnvelope":12})"),
                      "order return_envelope_order_1: field returnEnvelope: expected string or "
                      "object, got 12"},
        MalformedCase{"ReturnEnvelopeObjectWithoutId",
                      json::parse(R"({"id":"return_envelope_order_1","live":true,
                                      "status":"placed","returnEnvelope":{"object":"x"}})"),
                      "order return_envelope_order_1: field returnEnvelope.id: required field is "
                      "missing"},
        MalformedCase{"LongValueIsCut",
                      ValidLetterWith("/sendDate"_json_pointer, std::string(200, 'x')),
                      "order letter_123: field sendDate: expected ISO-8601 timestamp, got \"" +
                          std::string(79, 'x') + "..."}),
    [](const testing::TestParamInfo<MalformedCase>& info) { return info.param.name; });

TEST(MappingErrorTest, CarriesIdFieldAndProblemSeparately) {
  try {
    MapOrder(LetterWithUpdates({GoodUpdate(), json::parse(R"({"createdAt":"x"})")}));
    FAIL() << "no MappingError";
  } catch (const MappingError& error) {
    EXPECT_EQ(error.order_id(), "letter_123");
    EXPECT_EQ(error.field(), "carrierTracking.trackingUpdates[1].createdAt");
    EXPECT_EQ(error.problem(), "expected ISO-8601 timestamp, got \"x\"");
  }
}

TEST(MappingErrorTest, LongValuesAreCutOnACharacterBoundary) {
  // 79 ASCII bytes after the quote, then a 3-byte character straddling the 80-byte cut.
  const std::string value = std::string(78, 'a') + "\u20ac\u20ac";
  EXPECT_EQ(ErrorOf(ValidLetterWith("/status"_json_pointer, json::array())),
            "order letter_123: field status: expected string, got an array");
  EXPECT_EQ(ErrorOf(ValidLetterWith("/sendDate"_json_pointer, value)),
            "order letter_123: field sendDate: expected ISO-8601 timestamp, got \"" +
                std::string(78, 'a') + "...");
}

TEST(MappingErrorTest, IsARuntimeError) {
  EXPECT_THROW(MapOrder(json::array()), std::runtime_error);
}

// ---- Whole documents from the wire. ----

TEST(MapOrderTextTest, ParsesAndKeepsTheRawDocument) {
  const std::string body = ReadFixture("postcard_unknown_values.json");
  const MappedOrder mapped = MapOrderText(body);
  EXPECT_EQ(mapped.snapshot, MapOrder(json::parse(body)));
  EXPECT_EQ(mapped.raw, json::parse(body));
  EXPECT_TRUE(mapped.raw.contains("futureFeature"));  // unknown fields survive for `orders.raw`
}

TEST(MapOrderTextTest, TruncatedDocumentNamesTheOrder) {
  const std::string body = ReadFixture("letter_certified_delivered.json");
  const std::string cut = body.substr(0, body.size() / 2);
  EXPECT_EQ(TextErrorOf(cut),
            "order letter_4nG7uDvWDhM5wtkmWtyHAf: truncated JSON document: "
            "input ends at byte " +
                std::to_string(cut.size()) + " before the document is complete");
}

TEST(MapOrderTextTest, TruncatedBeforeTheIdSaysTheIdIsUnknown) {
  const std::string body = R"({"object":"letter","li)";
  EXPECT_EQ(TextErrorOf(body), "order (id unknown): truncated JSON document: input ends at byte " +
                                   std::to_string(body.size()) +
                                   " before the document is complete");
}

TEST(MapOrderTextTest, NestedIdsAreNotMistakenForTheOrdersId) {
  const std::string body =
      R"({"to":{"id":"contact_1"},"items":[{"id":"x"}],"id":"letter_9","live":tr)";
  EXPECT_EQ(TextErrorOf(body), "order letter_9: truncated JSON document: input ends at byte " +
                                   std::to_string(body.size()) +
                                   " before the document is complete");
}

TEST(MapOrderTextTest, EmptyBody) {
  EXPECT_EQ(TextErrorOf(""), "order (id unknown): empty body, expected a JSON document");
}

TEST(MapOrderTextTest, NonJsonBodySaysWhere) {
  EXPECT_THAT(TextErrorOf("<html>502 Bad Gateway</html>"),
              StartsWith("order (id unknown): invalid JSON at byte 1: "));
  EXPECT_THAT(TextErrorOf(R"({"id":"letter_5","live":true,"status":"ready"} trailing)"),
              StartsWith("order letter_5: invalid JSON at byte 50: "));
  // A bad last character is not a truncation: only running out of input is.
  EXPECT_THAT(TextErrorOf(R"({"id":"letter_5","live":x)"),
              StartsWith("order letter_5: invalid JSON at byte 25: "));
}

TEST(MapOrderTextTest, ValidJsonButBadOrderReportsTheField) {
  EXPECT_EQ(TextErrorOf(R"({"id":"letter_5","live":"yes","status":"ready"})"),
            "order letter_5: field live: expected boolean, got \"yes\"");
}

TEST(ParseJsonTextTest, ReportsTruncationWithTheGivenSubject) {
  try {
    ParseJsonText(R"({"object":"list","data":[{"id":"letter_1"},)", "list page");
    FAIL() << "no MappingError";
  } catch (const MappingError& error) {
    EXPECT_THAT(error.what(), StartsWith("list page: truncated JSON document"));
    EXPECT_EQ(error.order_id(), "");
  }
  EXPECT_EQ(ParseJsonText("[1,2]", "x"), json::array({1, 2}));
}

// ---- List envelopes. ----

struct PageCase {
  std::string name;
  std::string body;
  std::string expected_error;
};

void PrintTo(const PageCase& c, std::ostream* out) { *out << c.name; }

class MalformedPageTest : public testing::TestWithParam<PageCase> {};

TEST_P(MalformedPageTest, GivesTheExactError) {
  EXPECT_EQ(PageErrorOf(json::parse(GetParam().body)), GetParam().expected_error);
}

INSTANTIATE_TEST_SUITE_P(
    Cases, MalformedPageTest,
    testing::Values(
        PageCase{"NotAnObject", "[]", "list page: expected a JSON object, got an array"},
        PageCase{"WrongObject",
                 R"({"object":"letter","limit":1,"skip":0,"totalCount":0,"data":[]})",
                 "list page: field object: expected \"list\", got \"letter\""},
        PageCase{"SeedTypoKeyIsNotData",
                 R"({"object":"list","limit":5,"skip":10,"totalCount":100,"data:":[]})",
                 "list page: field data: required field is missing"},
        PageCase{"DataObject", R"({"object":"list","limit":5,"skip":0,"totalCount":1,"data":{}})",
                 "list page: field data: expected array, got an object"},
        PageCase{"MissingLimit", R"({"object":"list","skip":0,"totalCount":1,"data":[]})",
                 "list page: field limit: required field is missing"},
        PageCase{"NegativeTotal",
                 R"({"object":"list","limit":5,"skip":0,"totalCount":-1,"data":[]})",
                 "list page: field totalCount: expected non-negative integer, got -1"},
        PageCase{"FractionalLimit",
                 R"({"object":"list","limit":2.5,"skip":0,"totalCount":1,"data":[]})",
                 "list page: field limit: expected non-negative integer, got 2.5"},
        PageCase{"SkipAsString",
                 R"({"object":"list","limit":5,"skip":"10","totalCount":1,"data":[]})",
                 "list page: field skip: expected non-negative integer, got \"10\""}),
    [](const testing::TestParamInfo<PageCase>& info) { return info.param.name; });

TEST(MapListPageTest, ObjectMayBeAbsentAndItemsAreNotInspected) {
  const ListPage page = MapListPage(
      json::parse(R"({"limit":2,"skip":0,"totalCount":2,"data":[{"id":"letter_1"},7]})"));
  EXPECT_EQ(page.limit, 2);
  ASSERT_EQ(page.data.size(), 2u);
  EXPECT_EQ(page.data[1], 7);  // MapOrder rejects it later, for that item only
  EXPECT_THAT(ErrorOf(page.data[1]), StartsWith("order (id unknown): expected a JSON object"));
}

TEST(MapListPageTest, RvalueOverloadMovesTheItems) {
  json document = Fixture("seed000_postcard_list.json");
  const json expected_items = document["data"];
  const ListPage page = MapListPage(std::move(document));
  EXPECT_EQ(json(page.data), expected_items);
  EXPECT_EQ(page.total_count, 100);
}

}  // namespace
}  // namespace mailtrail::postgrid

// ---- Robustness: every wrong shape is a MappingError, never another exception. ----

namespace mailtrail::postgrid {
namespace {

const char* const kAllFixtures[] = {
    "seed000_postcard_retrieve.json",     "seed000_postcard_imb_retrieve.json",
    "seed000_cheque_certified.json",      "seed003_box_progression.json",
    "seed004_snap_pack_progression.json", "letter_certified_delivered.json",
    "self_mailer_in_transit.json",        "return_envelope_order_placed.json",
    "return_envelope_order_filled.json",  "cheque_cancelled.json",
    "postcard_unknown_values.json",       "letter_webhook_data_no_object.json",
};

void CollectPointers(const json& value, const json::json_pointer& here,
                     std::vector<json::json_pointer>& out) {
  if (value.is_object()) {
    for (const auto& [key, child] : value.items()) {
      out.push_back(here / key);
      CollectPointers(child, here / key, out);
    }
  } else if (value.is_array()) {
    for (std::size_t i = 0; i < value.size(); ++i) {
      out.push_back(here / i);
      CollectPointers(value[i], here / i, out);
    }
  }
}

// Replaces every value of every fixture, one at a time, with each JSON type: the result is a
// snapshot or a MappingError, and a MappingError names the order whenever the id is intact.
TEST(JsonMappingRobustnessTest, EveryValueReplacedByEveryTypeGivesSnapshotOrMappingError) {
  const json replacements[] = {nullptr, 0, -1, 1.5, true, "", "x", json::array(), json::object()};
  std::size_t mapped = 0;
  std::size_t rejected = 0;
  for (const char* name : kAllFixtures) {
    const json original = Fixture(name);
    const std::string id = original["id"];
    std::vector<json::json_pointer> pointers;
    CollectPointers(original, json::json_pointer(), pointers);
    for (const auto& pointer : pointers) {
      for (const json& replacement : replacements) {
        json mutated = original;
        mutated[pointer] = replacement;
        try {
          MapOrder(mutated);
          ++mapped;
        } catch (const MappingError& error) {
          ++rejected;
          if (pointer.to_string() != "/id") {
            EXPECT_EQ(error.order_id(), id) << name << ' ' << pointer.to_string();
          }
        } catch (const std::exception& error) {
          ADD_FAILURE() << name << ' ' << pointer.to_string() << " -> " << replacement.dump()
                        << ": unexpected " << error.what();
        }
      }
    }
  }
  // Both outcomes must occur, or the mutation loop is not exercising anything.
  EXPECT_GT(mapped, 100u);
  EXPECT_GT(rejected, 100u);
}

// Every proper prefix of a document is rejected as truncated or invalid, never mapped.
TEST(JsonMappingRobustnessTest, EveryPrefixOfAFixtureIsAMappingError) {
  for (const char* name : kAllFixtures) {
    const std::string body = ReadFixture(name);
    // Trailing whitespace after the closing brace still makes a complete document.
    const std::size_t complete = body.find_last_of('}') + 1;
    for (std::size_t length = 0; length < complete; ++length) {
      EXPECT_THROW(MapOrderText(std::string_view(body).substr(0, length)), MappingError)
          << name << " cut at " << length;
    }
    EXPECT_NO_THROW(MapOrderText(body)) << name;
  }
}

}  // namespace
}  // namespace mailtrail::postgrid
