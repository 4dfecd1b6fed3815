#include "domain/order_ref.hpp"

namespace mailtrail::domain {
namespace {

struct TypeNames {
  OrderType type;
  std::string_view endpoint;
  std::string_view object;
};

constexpr std::array<TypeNames, 7> kTypeNames = {{
    {OrderType::kLetter, "letters", "letter"},
    {OrderType::kPostcard, "postcards", "postcard"},
    {OrderType::kCheque, "cheques", "cheque"},
    {OrderType::kSelfMailer, "self_mailers", "self_mailer"},
    {OrderType::kBox, "boxes", "box"},
    {OrderType::kSnapPack, "snap_packs", "snap_pack"},
    {OrderType::kReturnEnvelopeOrder, "return_envelope_orders", "return_envelope_order"},
}};

const TypeNames& NamesOf(OrderType type) {
  for (const auto& names : kTypeNames) {
    if (names.type == type) return names;
  }
  return kTypeNames.front();  // unreachable: every enumerator is in the table
}

}  // namespace

std::string_view EndpointName(OrderType type) { return NamesOf(type).endpoint; }

std::string_view ObjectName(OrderType type) { return NamesOf(type).object; }

std::optional<OrderType> OrderTypeFromEndpoint(std::string_view endpoint) {
  for (const auto& names : kTypeNames) {
    if (names.endpoint == endpoint) return names.type;
  }
  return std::nullopt;
}

std::optional<OrderType> OrderTypeFromObject(std::string_view object) {
  for (const auto& names : kTypeNames) {
    if (names.object == object) return names.type;
  }
  return std::nullopt;
}

std::optional<OrderType> OrderTypeFromId(std::string_view id) {
  // The longest matching prefix wins, so `return_envelope_order_x` is never read as something
  // shorter that happens to share a prefix.
  std::optional<OrderType> best;
  std::size_t best_length = 0;
  for (const auto& names : kTypeNames) {
    const std::size_t length = names.object.size() + 1;
    if (id.size() > length && id.substr(0, names.object.size()) == names.object &&
        id[names.object.size()] == '_' && length > best_length) {
      best = names.type;
      best_length = length;
    }
  }
  return best;
}

}  // namespace mailtrail::domain
