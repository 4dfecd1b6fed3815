#include "domain/order_ref.hpp"

#include <gtest/gtest.h>

namespace mailtrail::domain {
namespace {

TEST(OrderRefTest, EveryTypeRoundTripsThroughItsNames) {
  for (OrderType type : kAllOrderTypes) {
    EXPECT_EQ(OrderTypeFromEndpoint(EndpointName(type)), type) << EndpointName(type);
    EXPECT_EQ(OrderTypeFromObject(ObjectName(type)), type) << ObjectName(type);
  }
}

TEST(OrderRefTest, EndpointNamesMatchTheContract) {
  EXPECT_EQ(EndpointName(OrderType::kSelfMailer), "self_mailers");
  EXPECT_EQ(EndpointName(OrderType::kBox), "boxes");
  EXPECT_EQ(EndpointName(OrderType::kReturnEnvelopeOrder), "return_envelope_orders");
  EXPECT_EQ(OrderTypeFromEndpoint("selfmailers"), std::nullopt);
}

struct IdCase {
  std::string id;
  std::optional<OrderType> expected;
};

TEST(OrderRefTest, TypeFromIdPrefix) {
  const IdCase cases[] = {
      {"letter_abc", OrderType::kLetter},
      {"postcard_asdb8123hasd1l1As", OrderType::kPostcard},
      {"cheque_1", OrderType::kCheque},
      {"self_mailer_x", OrderType::kSelfMailer},
      {"box_9", OrderType::kBox},
      {"snap_pack_7", OrderType::kSnapPack},
      {"return_envelope_order_5", OrderType::kReturnEnvelopeOrder},
      {"letter_", std::nullopt},
      {"letters_1", std::nullopt},
      {"contact_1", std::nullopt},
      {"", std::nullopt},
  };
  for (const auto& c : cases) {
    EXPECT_EQ(OrderTypeFromId(c.id), c.expected) << c.id;
  }
}

}  // namespace
}  // namespace mailtrail::domain
