#include "domain/order.hpp"

#include <array>
#include <utility>

namespace mailtrail::domain {
namespace {

template <typename Kind>
struct KindName {
  Kind kind;
  std::string_view name;
};

template <typename Kind, std::size_t N>
Kind Lookup(const std::array<KindName<Kind>, N>& table, std::string_view raw, Kind fallback) {
  for (const auto& entry : table) {
    if (entry.name == raw) return entry.kind;
  }
  return fallback;
}

using OrderKind = OrderStatus::Kind;
constexpr std::array<KindName<OrderKind>, 7> kOrderStatuses = {{
    {OrderKind::kReady, "ready"},
    {OrderKind::kPrinting, "printing"},
    {OrderKind::kProcessedForDelivery, "processed_for_delivery"},
    {OrderKind::kCompleted, "completed"},
    {OrderKind::kCancelled, "cancelled"},
    {OrderKind::kPlaced, "placed"},
    {OrderKind::kFilled, "filled"},
}};

using ImbKind = ImbStatus::Kind;
constexpr std::array<KindName<ImbKind>, 3> kImbStatuses = {{
    {ImbKind::kEnteredMailStream, "entered_mail_stream"},
    {ImbKind::kOutForDelivery, "out_for_delivery"},
    {ImbKind::kReturnedToSender, "returned_to_sender"},
}};

using CarrierKind = CarrierStatus::Kind;
constexpr std::array<KindName<CarrierKind>, 10> kCarrierStatuses = {{
    {CarrierKind::kCarrierUnknown, "unknown"},
    {CarrierKind::kPreTransit, "pre_transit"},
    {CarrierKind::kInTransit, "in_transit"},
    {CarrierKind::kOutForDelivery, "out_for_delivery"},
    {CarrierKind::kAvailableForPickup, "available_for_pickup"},
    {CarrierKind::kDelivered, "delivered"},
    {CarrierKind::kReturnToSender, "return_to_sender"},
    {CarrierKind::kFailure, "failure"},
    {CarrierKind::kCancelled, "cancelled"},
    {CarrierKind::kError, "error"},
}};

}  // namespace

OrderStatus OrderStatus::FromRaw(std::string raw) {
  const Kind kind = Lookup(kOrderStatuses, raw, Kind::kUnknown);
  return OrderStatus{kind, std::move(raw)};
}

ImbStatus ImbStatus::FromRaw(std::string raw) {
  const Kind kind = Lookup(kImbStatuses, raw, Kind::kUnknown);
  return ImbStatus{kind, std::move(raw)};
}

CarrierStatus CarrierStatus::FromRaw(std::string raw) {
  const Kind kind = Lookup(kCarrierStatuses, raw, Kind::kUnknown);
  return CarrierStatus{kind, std::move(raw)};
}

bool IsTerminalCarrierStatus(std::string_view raw) {
  return raw == "delivered" || raw == "return_to_sender" || raw == "failure" ||
         raw == "cancelled" || raw == "error";
}

}  // namespace mailtrail::domain
