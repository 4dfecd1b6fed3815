#pragma once

#include <string>

namespace mailtrail::testing {

/// The DSN of the throwaway server started by scripts/pg_tmp.sh (MAILTRAIL_TEST_DSN).
/// Throws std::runtime_error with instructions when it is not set, so a pg test run without a
/// database fails loudly instead of passing by skipping.
std::string ServerDsn();

/// A database of its own for one test: created empty on construction, dropped (after terminating
/// its connections) on destruction. Each test gets a fresh one, so tests never see each other's
/// rows.
class TestDatabase {
 public:
  TestDatabase();
  ~TestDatabase();
  TestDatabase(const TestDatabase&) = delete;
  TestDatabase& operator=(const TestDatabase&) = delete;

  const std::string& name() const { return name_; }
  /// A libpq URI for this database.
  const std::string& dsn() const { return dsn_; }

 private:
  std::string name_;
  std::string dsn_;
};

/// `server_dsn` with its database name replaced by `database`.
std::string DsnForDatabase(const std::string& server_dsn, const std::string& database);

}  // namespace mailtrail::testing
