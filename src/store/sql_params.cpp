#include "store/sql_params.hpp"

namespace mailtrail::store::detail {

std::string TextArrayLiteral(const std::vector<std::string>& items) {
  std::string literal = "{";
  for (std::size_t i = 0; i < items.size(); ++i) {
    if (i != 0) literal += ',';
    literal += '"';
    for (char c : items[i]) {
      if (c == '"' || c == '\\') literal += '\\';
      literal += c;
    }
    literal += '"';
  }
  literal += '}';
  return literal;
}

std::optional<domain::Timestamp> MicrosToTimestamp(const pqxx::field& field) {
  if (field.is_null()) return std::nullopt;
  return domain::Timestamp(std::chrono::microseconds(field.as<std::int64_t>()));
}

}  // namespace mailtrail::store::detail
