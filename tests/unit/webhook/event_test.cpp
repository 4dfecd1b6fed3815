#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

#include "webhook/verify.hpp"

namespace mailtrail::webhook {
namespace {

using domain::OrderRef;
using domain::OrderType;
using nlohmann::json;

json Fixture(const std::string& name) {
  std::ifstream file(std::string(MAILTRAIL_SOURCE_DIR) + "/tests/data/" + name);
  if (!file) throw std::runtime_error("missing fixture " + name);
  std::stringstream text;
  text << file.rdbuf();
  return json::parse(text.str());
}

TEST(ParseEvent, JwtLetterWithoutObjectTakesTheTypeFromTheEventType) {
  const json payload = {{"type", "letter.updated"},
                        {"data", Fixture("letter_webhook_data_no_object.json")},
                        {"iat", 1648136440}};
  const Event event = ParseEvent(payload);
  EXPECT_EQ(event.event_id, std::nullopt);
  EXPECT_EQ(event.type, "letter.updated");
  ASSERT_TRUE(event.order.has_value());
  EXPECT_EQ(*event.order, (OrderRef{OrderType::kLetter, "letter_1aB2cD3eF4gH5iJ6kL7mN8", ""}));
}

TEST(ParseEvent, JsonFormatCarriesTheEventId) {
  const json payload = {{"id", "event_9"},
                        {"object", "event"},
                        {"type", "self_mailer.created"},
                        {"data", {{"id", "self_mailer_1"}}}};
  const Event event = ParseEvent(payload);
  EXPECT_EQ(event.event_id, "event_9");
  ASSERT_TRUE(event.order.has_value());
  EXPECT_EQ(*event.order, (OrderRef{OrderType::kSelfMailer, "self_mailer_1", ""}));
}

TEST(ParseEvent, EveryOrderTypeIsRecognised) {
  for (OrderType type : domain::kAllOrderTypes) {
    const std::string object(domain::ObjectName(type));
    json data = {{"id", object + "_x1"}};
    if (type == OrderType::kReturnEnvelopeOrder) data["returnEnvelope"] = "return_envelope_e1";
    const Event event = ParseEvent({{"type", object + ".updated"}, {"data", data}});
    ASSERT_TRUE(event.order.has_value()) << object;
    EXPECT_EQ(event.order->type, type) << object;
    EXPECT_EQ(event.order->id, object + "_x1");
  }
}

TEST(ParseEvent, ReturnEnvelopeOrderWithEnvelopeIdString) {
  const Event event = ParseEvent({{"type", "return_envelope_order.updated"},
                                  {"data", Fixture("return_envelope_order_placed.json")}});
  ASSERT_TRUE(event.order.has_value());
  EXPECT_EQ(event.order->type, OrderType::kReturnEnvelopeOrder);
  EXPECT_EQ(event.order->envelope_id, "return_envelope_3xKjT7mQ9vB2nR5wYc8HdL");
  EXPECT_FALSE(event.order->id.empty());
}

TEST(ParseEvent, ReturnEnvelopeOrderWithEnvelopeObject) {
  const Event event = ParseEvent({{"type", "return_envelope_order.updated"},
                                  {"data", Fixture("return_envelope_order_filled.json")}});
  ASSERT_TRUE(event.order.has_value());
  const json data = Fixture("return_envelope_order_filled.json");
  EXPECT_EQ(event.order->envelope_id, data.at("returnEnvelope").at("id").get<std::string>());
}

TEST(ParseEvent, ReturnEnvelopeOrderWithoutEnvelopeHasNoOrder) {
  const Event event = ParseEvent(
      {{"type", "return_envelope_order.updated"}, {"data", {{"id", "return_envelope_order_1"}}}});
  EXPECT_FALSE(event.order.has_value());
  EXPECT_EQ(event.type, "return_envelope_order.updated");
}

TEST(ParseEvent, NonOrderEventsAreIgnored) {
  for (const char* type : {"tracker.visited", "campaign.updated", "virtual_mailbox_item.created",
                           "postal_statement.created", "document.created", "letter", ""}) {
    const Event event = ParseEvent({{"type", type}, {"data", {{"id", "letter_looks_like_one"}}}});
    EXPECT_FALSE(event.order.has_value()) << type;
  }
}

TEST(ParseEvent, MissingOrOddDataGivesNoOrder) {
  EXPECT_FALSE(ParseEvent({{"type", "letter.updated"}}).order.has_value());
  EXPECT_FALSE(ParseEvent({{"type", "letter.updated"}, {"data", "x"}}).order.has_value());
  EXPECT_FALSE(ParseEvent({{"type", "letter.updated"}, {"data", {{"id", 5}}}}).order.has_value());
  EXPECT_FALSE(ParseEvent({{"type", "letter.updated"}, {"data", {{"id", ""}}}}).order.has_value());
  EXPECT_FALSE(ParseEvent({{"type", 7}, {"data", {{"id", "letter_1"}}}}).order.has_value());
  EXPECT_FALSE(ParseEvent(json::array()).order.has_value());
}

}  // namespace
}  // namespace mailtrail::webhook
