#include "store/sql_params.hpp"

#include <functional>
#include <stdexcept>

namespace mailtrail::store::detail {

std::string SqlParams::StatementName(const std::string& sql) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::size_t hash = std::hash<std::string>{}(sql);
  std::string name = "mt_";
  for (int shift = 60; shift >= 0; shift -= 4) name += kHex[(hash >> shift) & 0xfU];
  return name;
}

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

std::string& SqlArrays::Next() {
  if (cursor_ >= columns_.size()) throw std::logic_error("SqlArrays: more values than columns");
  std::string& column = columns_[cursor_++];
  if (rows_ != 0) column += ',';
  return column;
}

SqlArrays& SqlArrays::Add(std::string_view value) {
  std::string& column = Next();
  column.reserve(column.size() + value.size() + 2);
  column += '"';
  // Runs between the characters that need a backslash are appended whole: `raw` columns are
  // kilobytes of JSON per order, and a character at a time showed in the refresh profile.
  std::size_t run = 0;  // start of the run not appended yet
  for (std::size_t i = 0; i < value.size(); ++i) {
    if (value[i] != '"' && value[i] != '\\') continue;
    column.append(value.data() + run, i - run);
    column += '\\';
    run = i;  // the special character starts the next run
  }
  column.append(value.data() + run, value.size() - run);
  column += '"';
  return *this;
}

SqlArrays& SqlArrays::AddNull() {
  Next() += "NULL";
  return *this;
}

void SqlArrays::EndRow() {
  if (cursor_ != columns_.size()) throw std::logic_error("SqlArrays: a row lacks values");
  cursor_ = 0;
  ++rows_;
}

void SqlArrays::AppendTo(SqlParams& params) const {
  if (cursor_ != 0) throw std::logic_error("SqlArrays: the last row was not ended");
  for (const auto& column : columns_) params.Add(column + '}');
}

std::optional<domain::Timestamp> MicrosToTimestamp(const pqxx::field& field) {
  if (field.is_null()) return std::nullopt;
  return domain::Timestamp(std::chrono::microseconds(field.as<std::int64_t>()));
}

}  // namespace mailtrail::store::detail
