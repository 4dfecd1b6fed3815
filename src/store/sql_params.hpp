#pragma once

#include <cstdint>
#include <optional>
#include <pqxx/pqxx>
#include <string>
#include <string_view>
#include <vector>

#include "domain/timestamp.hpp"

namespace mailtrail::store::detail {

/// Positional parameters ($1, $2, …) with real NULLs, for libpqxx 6.4, whose exec_params has no
/// std::optional support. Values are sent as text; PostgreSQL casts them to the column types.
class SqlParams {
 public:
  SqlParams& Add(std::string value) {
    values_.emplace_back(std::move(value));
    return *this;
  }
  SqlParams& Add(std::string_view value) { return Add(std::string(value)); }
  SqlParams& Add(const char* value) { return Add(std::string(value)); }
  SqlParams& Add(const std::optional<std::string>& value) {
    values_.push_back(value);
    return *this;
  }
  SqlParams& Add(bool value) { return Add(std::string(value ? "true" : "false")); }
  SqlParams& Add(std::int64_t value) { return Add(std::to_string(value)); }
  SqlParams& Add(domain::Timestamp value) { return Add(domain::FormatTimestamp(value)); }
  SqlParams& Add(const std::optional<domain::Timestamp>& value) {
    if (!value) {
      values_.emplace_back(std::nullopt);
      return *this;
    }
    return Add(*value);
  }
  SqlParams& AddNull() {
    values_.emplace_back(std::nullopt);
    return *this;
  }

  /// Runs `sql` as a prepared statement named after its text: the server parses and plans each
  /// statement once per connection instead of on every call (the multi-row statements of a page
  /// write take longer to plan than to run for a claim of a few dozen orders). Every statement
  /// text of the store is a constant, so a connection holds a fixed set of them.
  pqxx::result Exec(pqxx::transaction_base& tx, const std::string& sql) const {
    std::vector<const char*> pointers;
    pointers.reserve(values_.size());
    for (const auto& value : values_) pointers.push_back(value ? value->c_str() : nullptr);
    const std::string name = StatementName(sql);
    tx.conn().prepare(name, sql);  // a no-op once the connection knows it
    return tx.exec_prepared(name, pqxx::prepare::make_dynamic_params(pointers));
  }

  /// "mt_" and 16 hex digits of the text's hash.
  static std::string StatementName(const std::string& sql);

 private:
  std::vector<std::optional<std::string>> values_;
};

/// Many rows of parameters sent as one array parameter per column, for multi-row statements
/// (`INSERT ... SELECT * FROM unnest($1::text[], $2::timestamptz[], ...)`): a fixed number of
/// parameters however many rows, and values never spliced into the SQL text. Add() takes the same
/// types as SqlParams and fills the next column of the current row; EndRow() closes the row.
/// Elements are sent as quoted text (NULL unquoted), which PostgreSQL casts to the element type.
class SqlArrays {
 public:
  explicit SqlArrays(std::size_t columns) : columns_(columns, std::string(1, '{')) {}

  SqlArrays& Add(std::string_view value);
  SqlArrays& Add(const std::string& value) { return Add(std::string_view(value)); }
  SqlArrays& Add(const char* value) { return Add(std::string_view(value)); }
  SqlArrays& Add(const std::optional<std::string>& value) {
    if (!value) return AddNull();
    return Add(std::string_view(*value));
  }
  SqlArrays& Add(bool value) { return Add(std::string_view(value ? "true" : "false")); }
  SqlArrays& Add(std::int64_t value) { return Add(std::string_view(std::to_string(value))); }
  SqlArrays& Add(domain::Timestamp value) { return Add(domain::FormatTimestamp(value)); }
  SqlArrays& Add(const std::optional<domain::Timestamp>& value) {
    if (!value) return AddNull();
    return Add(*value);
  }
  SqlArrays& AddNull();

  /// Closes the current row. Throws std::logic_error unless every column got exactly one value.
  void EndRow();
  std::size_t rows() const { return rows_; }
  bool empty() const { return rows_ == 0; }

  /// Appends the column arrays to `params` as parameters, in column order.
  void AppendTo(SqlParams& params) const;

 private:
  std::string& Next();

  std::vector<std::string> columns_;  // each an array literal without its closing brace
  std::size_t cursor_ = 0;
  std::size_t rows_ = 0;
};

/// A PostgreSQL text[] literal for `items`, every element quoted, so any string is safe to pass
/// as one parameter (`$1::text[]`).
std::string TextArrayLiteral(const std::vector<std::string>& items);

/// Reads a `(extract(epoch from col) * 1000000)::bigint` column back into a Timestamp.
std::optional<domain::Timestamp> MicrosToTimestamp(const pqxx::field& field);

}  // namespace mailtrail::store::detail
