// Shared by the views tests of store_pg_tests: the contract views and a generated history
// (bench/sql/generate.sql, the benchmark's own generator, at a test's size).
#pragma once

#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>
#include <stdexcept>
#include <string>
#include <utility>

namespace mailtrail::store::generated {

inline const std::filesystem::path kMigrations =
    std::filesystem::path(MAILTRAIL_SOURCE_DIR) / "migrations";
inline constexpr const char* kViews[] = {"order_timeline", "status_durations", "stuck_orders",
                                         "daily_status_counts", "delivery_performance"};

inline std::string ReadFile(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot read " + path.string());
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

/// Drops the order_type copy (migration 0009) from generate.sql's history inserts, for a history
/// written before 0009 exists. Throws when the text to drop is not there.
inline std::string WithoutHistoryOrderType(std::string sql) {
  for (const auto& [with, without] : {
           std::pair<std::string, std::string>{"order_changes (order_id, order_type, ",
                                               "order_changes (order_id, "},
           {"carrier_tracking_events (order_id, order_type, ", "carrier_tracking_events (order_id, "},
           {"SELECT p.id, p.order_type, c.field", "SELECT p.id, c.field"},
           {"SELECT p.id, p.order_type, e.at", "SELECT p.id, e.at"},
       }) {
    const auto at = sql.find(with);
    if (at == std::string::npos) throw std::runtime_error("generate.sql has no " + with);
    sql.replace(at, with.size(), without);
  }
  return sql;
}

/// bench/sql/generate.sql for `orders` orders, without its psql meta-commands.
inline std::string GenerateSql(int orders) {
  std::istringstream lines(
      ReadFile(std::filesystem::path(MAILTRAIL_SOURCE_DIR) / "bench" / "sql" / "generate.sql"));
  std::string sql;
  for (std::string line; std::getline(lines, line);) {
    if (!line.empty() && line[0] == '\\') continue;
    sql += line + "\n";
  }
  return std::regex_replace(sql, std::regex(":orders"), std::to_string(orders));
}

}  // namespace mailtrail::store::generated
