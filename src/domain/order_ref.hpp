#pragma once

#include <array>
#include <optional>
#include <string>
#include <string_view>

namespace mailtrail::domain {

/// The seven PostGrid order kinds mailtrail tracks (postgrid-api.md section 2).
enum class OrderType {
  kLetter,
  kPostcard,
  kCheque,
  kSelfMailer,
  kBox,
  kSnapPack,
  kReturnEnvelopeOrder,
};

inline constexpr std::array<OrderType, 7> kAllOrderTypes = {
    OrderType::kLetter,
    OrderType::kPostcard,
    OrderType::kCheque,
    OrderType::kSelfMailer,
    OrderType::kBox,
    OrderType::kSnapPack,
    OrderType::kReturnEnvelopeOrder,
};

/// The endpoint name, also stored as `orders.order_type` and used in config `order_types`:
/// `letters`, `postcards`, `cheques`, `self_mailers`, `boxes`, `snap_packs`,
/// `return_envelope_orders`.
std::string_view EndpointName(OrderType type);

/// PostGrid's `object` value and webhook event prefix: `letter`, ..., `return_envelope_order`.
std::string_view ObjectName(OrderType type);

std::optional<OrderType> OrderTypeFromEndpoint(std::string_view endpoint);
std::optional<OrderType> OrderTypeFromObject(std::string_view object);
/// Derives the type from the id prefix (`letter_…`, `return_envelope_order_…`); nullopt if none
/// fits.
std::optional<OrderType> OrderTypeFromId(std::string_view id);

/// Names one order at PostGrid. Return envelope orders live under their envelope, so their
/// reference also carries the envelope id; it is empty for every other type.
struct OrderRef {
  OrderType type = OrderType::kLetter;
  std::string id;
  std::string envelope_id;

  bool operator==(const OrderRef&) const = default;
};

}  // namespace mailtrail::domain
