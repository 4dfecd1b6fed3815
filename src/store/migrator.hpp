#pragma once

#include <chrono>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <vector>

namespace pqxx {
class connection_base;
}

namespace mailtrail::store {

/// A migration file: `NNNN_name.sql` in the migrations directory.
struct MigrationFile {
  long version = 0;
  std::string name;  ///< the file name, e.g. `0001_schema.sql`
  std::filesystem::path path;
  std::string sql;
  std::string checksum;  ///< lowercase hex SHA-256 of the file's bytes
};

/// Thrown when migrations cannot be read or applied; what() names the file involved.
class MigrationError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// What one `Migrate` call did.
struct MigrationReport {
  std::vector<std::string> applied;  ///< file names applied by this call, in order
  std::size_t already_applied = 0;   ///< files that were applied before this call
  std::chrono::milliseconds waited_for_lock{0};
};

/// Reads `NNNN_*.sql` from `directory`, sorted by version. Throws MigrationError for a missing or
/// unreadable directory, an empty one, a `.sql` file that does not follow the naming rule, or two
/// files with the same version: nothing is silently skipped.
std::vector<MigrationFile> ReadMigrations(const std::filesystem::path& directory);

/// Applies the pending migrations of `directory` to the database behind `connection`.
///
/// Holds a session-level `pg_advisory_lock` for the whole run, so concurrent runners (several
/// daemons starting at once) apply each file exactly once. Each file runs in its own transaction
/// together with its `schema_migrations` row; a failing file rolls back and throws, leaving the
/// earlier files applied. Refuses (throws, naming the file) when an applied file's checksum differs
/// from the file on disk, or when the database records a version no file here has (a newer
/// mailtrail migrated it). Blocking: call it on the database thread.
MigrationReport Migrate(pqxx::connection_base& connection, const std::filesystem::path& directory);

/// Versions recorded in `mailtrail.schema_migrations` (empty when the table does not exist yet).
std::vector<long> AppliedVersions(pqxx::connection_base& connection);

/// Lowercase hex SHA-256 of `bytes`.
std::string Sha256Hex(std::string_view bytes);

}  // namespace mailtrail::store
