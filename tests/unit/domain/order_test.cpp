#include "domain/order.hpp"

#include <gtest/gtest.h>

#include <string>

namespace mailtrail::domain {
namespace {

TEST(OrderStatusTest, KnownValuesIncludingReturnEnvelopeStatuses) {
  using Kind = OrderStatus::Kind;
  const std::pair<std::string, Kind> cases[] = {
      {"ready", Kind::kReady},
      {"printing", Kind::kPrinting},
      {"processed_for_delivery", Kind::kProcessedForDelivery},
      {"completed", Kind::kCompleted},
      {"cancelled", Kind::kCancelled},
      {"placed", Kind::kPlaced},
      {"filled", Kind::kFilled},
  };
  for (const auto& [raw, kind] : cases) {
    const OrderStatus status = OrderStatus::FromRaw(raw);
    EXPECT_EQ(status.kind, kind) << raw;
    EXPECT_EQ(status.raw, raw);
  }
}

TEST(OrderStatusTest, UnknownValuesAreKeptVerbatimNeverDefaulted) {
  for (const std::string raw : {"entered_mail_stream", "Ready", "", " ready", "on_hold"}) {
    const OrderStatus status = OrderStatus::FromRaw(raw);
    EXPECT_EQ(status.kind, OrderStatus::Kind::kUnknown) << raw;
    EXPECT_EQ(status.raw, raw);
  }
}

TEST(ImbStatusTest, KnownAndUnknownValues) {
  EXPECT_EQ(ImbStatus::FromRaw("entered_mail_stream").kind, ImbStatus::Kind::kEnteredMailStream);
  EXPECT_EQ(ImbStatus::FromRaw("out_for_delivery").kind, ImbStatus::Kind::kOutForDelivery);
  EXPECT_EQ(ImbStatus::FromRaw("returned_to_sender").kind, ImbStatus::Kind::kReturnedToSender);
  const ImbStatus unknown = ImbStatus::FromRaw("forwarded");
  EXPECT_EQ(unknown.kind, ImbStatus::Kind::kUnknown);
  EXPECT_EQ(unknown.raw, "forwarded");
}

TEST(CarrierStatusTest, PostGridsOwnUnknownIsNotAnUnrecognisedValue) {
  EXPECT_EQ(CarrierStatus::FromRaw("unknown").kind, CarrierStatus::Kind::kCarrierUnknown);
  const CarrierStatus unrecognised = CarrierStatus::FromRaw("held_at_customs");
  EXPECT_EQ(unrecognised.kind, CarrierStatus::Kind::kUnknown);
  EXPECT_EQ(unrecognised.raw, "held_at_customs");
}

TEST(CarrierStatusTest, EveryDocumentedValueIsRecognised) {
  for (const std::string raw :
       {"unknown", "pre_transit", "in_transit", "out_for_delivery", "available_for_pickup",
        "delivered", "return_to_sender", "failure", "cancelled", "error"}) {
    EXPECT_NE(CarrierStatus::FromRaw(raw).kind, CarrierStatus::Kind::kUnknown) << raw;
  }
}

TEST(IsTerminalCarrierStatusTest, TerminalExactlyForTheFiveFinalStatuses) {
  for (const char* raw : {"delivered", "return_to_sender", "failure", "cancelled", "error"}) {
    EXPECT_TRUE(IsTerminalCarrierStatus(raw)) << raw;
  }
  for (const char* raw : {"unknown", "pre_transit", "in_transit", "out_for_delivery",
                          "available_for_pickup", "Delivered", "", "held_at_customs"}) {
    EXPECT_FALSE(IsTerminalCarrierStatus(raw)) << raw;
  }
}

}  // namespace
}  // namespace mailtrail::domain
