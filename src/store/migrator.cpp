#include "store/migrator.hpp"

#include <openssl/evp.h>

#include <algorithm>
#include <array>
#include <fstream>
#include <map>
#include <pqxx/pqxx>
#include <regex>
#include <sstream>

namespace mailtrail::store {
namespace {

// An arbitrary constant shared by every mailtrail process: the key of the advisory lock that
// serialises migration runs. ASCII "mailtrl" + 1.
constexpr long long kMigrationLockKey = 0x6d61696c74726c01LL;

constexpr const char* kBootstrapSql = R"sql(
CREATE SCHEMA IF NOT EXISTS mailtrail;
CREATE TABLE IF NOT EXISTS mailtrail.schema_migrations (
    version    bigint PRIMARY KEY,
    name       text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now(),
    checksum   text NOT NULL
);
COMMENT ON TABLE mailtrail.schema_migrations IS
    'Migrations applied by mailtrail: one row per migrations/NNNN_*.sql file, with its SHA-256.';
)sql";

std::string ReadWholeFile(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw MigrationError("cannot read migration file " + path.string());
  std::ostringstream contents;
  contents << in.rdbuf();
  if (in.bad()) throw MigrationError("error while reading migration file " + path.string());
  return contents.str();
}

// Releases the session-level advisory lock even when a migration throws.
class AdvisoryLockGuard {
 public:
  explicit AdvisoryLockGuard(pqxx::connection_base& connection) : connection_(connection) {
    pqxx::nontransaction tx(connection_);
    tx.exec_params("SELECT pg_advisory_lock($1)", kMigrationLockKey);
  }
  AdvisoryLockGuard(const AdvisoryLockGuard&) = delete;
  AdvisoryLockGuard& operator=(const AdvisoryLockGuard&) = delete;
  ~AdvisoryLockGuard() {
    // A broken connection drops the lock with the session, so a failure here loses nothing.
    try {
      if (connection_.is_open()) {
        pqxx::nontransaction tx(connection_);
        tx.exec_params("SELECT pg_advisory_unlock($1)", kMigrationLockKey);
      }
    } catch (const std::exception&) {
    }
  }

 private:
  pqxx::connection_base& connection_;
};

}  // namespace

std::string Sha256Hex(std::string_view bytes) {
  std::array<unsigned char, EVP_MAX_MD_SIZE> digest{};
  unsigned int length = 0;
  if (EVP_Digest(bytes.data(), bytes.size(), digest.data(), &length, EVP_sha256(), nullptr) != 1) {
    throw std::runtime_error("SHA-256 computation failed");
  }
  static constexpr std::string_view kHex = "0123456789abcdef";
  std::string hex;
  hex.reserve(std::size_t{length} * 2);
  for (unsigned int i = 0; i < length; ++i) {
    hex.push_back(kHex[digest[i] >> 4]);
    hex.push_back(kHex[digest[i] & 0x0f]);
  }
  return hex;
}

std::vector<MigrationFile> ReadMigrations(const std::filesystem::path& directory) {
  std::error_code error;
  if (!std::filesystem::is_directory(directory, error)) {
    throw MigrationError("migrations directory " + directory.string() + " does not exist");
  }
  static const std::regex kName(R"(^(\d{4})_[A-Za-z0-9_.-]+\.sql$)");
  std::vector<MigrationFile> files;
  std::map<long, std::string> seen;
  for (const auto& entry : std::filesystem::directory_iterator(directory)) {
    const std::string name = entry.path().filename().string();
    if (entry.path().extension() != ".sql") continue;
    std::smatch match;
    if (!std::regex_match(name, match, kName)) {
      throw MigrationError("migration file " + entry.path().string() +
                           " does not follow the naming rule NNNN_name.sql");
    }
    MigrationFile file;
    file.version = std::stol(match[1].str());
    file.name = name;
    file.path = entry.path();
    file.sql = ReadWholeFile(entry.path());
    file.checksum = Sha256Hex(file.sql);
    if (auto [it, inserted] = seen.emplace(file.version, name); !inserted) {
      throw MigrationError("migration files " + it->second + " and " + name + " share version " +
                           match[1].str());
    }
    files.push_back(std::move(file));
  }
  if (files.empty()) {
    throw MigrationError("migrations directory " + directory.string() +
                         " holds no NNNN_name.sql files");
  }
  std::sort(files.begin(), files.end(),
            [](const MigrationFile& a, const MigrationFile& b) { return a.version < b.version; });
  return files;
}

std::vector<long> AppliedVersions(pqxx::connection_base& connection) {
  pqxx::read_transaction tx(connection);
  const pqxx::result exists =
      tx.exec("SELECT to_regclass('mailtrail.schema_migrations') IS NOT NULL");
  std::vector<long> versions;
  if (!exists[0][0].as<bool>()) return versions;
  for (const auto& row : tx.exec("SELECT version FROM mailtrail.schema_migrations ORDER BY 1")) {
    versions.push_back(row[0].as<long>());
  }
  return versions;
}

MigrationReport Migrate(pqxx::connection_base& connection, const std::filesystem::path& directory) {
  const std::vector<MigrationFile> files = ReadMigrations(directory);
  MigrationReport report;

  const auto lock_start = std::chrono::steady_clock::now();
  AdvisoryLockGuard lock(connection);
  report.waited_for_lock = std::chrono::duration_cast<std::chrono::milliseconds>(
      std::chrono::steady_clock::now() - lock_start);

  {
    pqxx::work tx(connection);
    tx.exec(kBootstrapSql);
    tx.commit();
  }

  std::map<long, std::pair<std::string, std::string>> applied;  // version -> (name, checksum)
  {
    pqxx::read_transaction tx(connection);
    for (const auto& row :
         tx.exec("SELECT version, name, checksum FROM mailtrail.schema_migrations")) {
      applied.emplace(row[0].as<long>(),
                      std::make_pair(row[1].as<std::string>(), row[2].as<std::string>()));
    }
  }

  for (const auto& [version, name_and_checksum] : applied) {
    const auto file =
        std::find_if(files.begin(), files.end(),
                     [v = version](const MigrationFile& f) { return f.version == v; });
    if (file == files.end()) {
      throw MigrationError("the database has migration " + name_and_checksum.first +
                           " applied, which is not in " + directory.string() +
                           ": it was migrated by a newer mailtrail; refusing to run an older one");
    }
    if (file->checksum != name_and_checksum.second) {
      throw MigrationError("migration " + file->path.string() +
                           " was changed after it was applied (checksum " + file->checksum +
                           ", recorded " + name_and_checksum.second +
                           "); add a new migration instead of editing an applied one");
    }
  }

  for (const auto& file : files) {
    if (applied.count(file.version) != 0) {
      ++report.already_applied;
      continue;
    }
    try {
      pqxx::work tx(connection);
      tx.exec(file.sql);
      tx.exec_params(
          "INSERT INTO mailtrail.schema_migrations (version, name, checksum) VALUES ($1, $2, $3)",
          file.version, file.name, file.checksum);
      tx.commit();
    } catch (const pqxx::broken_connection&) {
      throw;
    } catch (const std::exception& e) {
      throw MigrationError("migration " + file.path.string() +
                           " failed and was rolled back: " + e.what());
    }
    report.applied.push_back(file.name);
  }
  return report;
}

}  // namespace mailtrail::store
