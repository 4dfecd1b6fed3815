#pragma once

#include <memory>
#include <pqxx/connection>
#include <string>

namespace mailtrail::store {

/// Owns the process's PostgreSQL connection (RAII). Connects lazily and reconnects after a lost
/// connection: Get() throws pqxx::broken_connection while the server is unreachable, and the next
/// call tries again. Blocking and not thread-safe: used only on the database thread.
class Database {
 public:
  explicit Database(std::string url);
  ~Database();
  Database(const Database&) = delete;
  Database& operator=(const Database&) = delete;

  /// The open connection, (re)connecting first when needed. Throws pqxx::broken_connection (or
  /// another pqxx::failure) when the database cannot be reached.
  pqxx::connection& Get();

  /// Drops the connection, e.g. after a pqxx::broken_connection, so Get() reconnects.
  void Reset();

  bool connected() const;
  /// How many times a connection was (re)established.
  std::size_t connects() const { return connects_; }

 private:
  std::string url_;
  std::unique_ptr<pqxx::connection> connection_;
  std::size_t connects_ = 0;
};

}  // namespace mailtrail::store
