#include "app/commands.hpp"

#include <spdlog/spdlog.h>

#include <chrono>
#include <ostream>
#include <pqxx/pqxx>

#include "app/logging.hpp"
#include "app/paths.hpp"
#include "config/config.hpp"
#include "store/migrator.hpp"

namespace mailtrail::app {
namespace {

int Migrate(const config::Config& config, const CommandLine& line, std::ostream& out) {
  const auto directory = ResolveMigrationsDir(line.Value("--migrations"));
  spdlog::info("migrating {} with {}", config::RedactDatabaseUrl(config.database.url),
               directory.string());
  pqxx::connection connection(config.database.url);
  const auto started = std::chrono::steady_clock::now();
  const store::MigrationReport report = store::Migrate(connection, directory);
  const auto elapsed = std::chrono::duration_cast<std::chrono::milliseconds>(
      std::chrono::steady_clock::now() - started);
  for (const auto& name : report.applied) out << "applied " << name << '\n';
  if (report.applied.empty()) {
    out << "nothing to apply: all " << report.already_applied
        << " migrations were already applied\n";
  } else {
    out << report.applied.size() << " applied now, " << report.already_applied
        << " already applied, in " << elapsed.count() << " ms\n";
  }
  return kExitOk;
}

int CheckConfig(const config::Config& config, const CommandLine& line, std::ostream& out,
                std::ostream& err) {
  out << "config " << config.source_path << ": ok\n" << config::DescribeRedacted(config);
  bool failed = false;
  const std::string database = config::RedactDatabaseUrl(config.database.url);
  try {
    pqxx::connection connection(config.database.url);
    pqxx::read_transaction tx(connection);
    const auto version = tx.exec("SHOW server_version")[0][0].as<std::string>();
    tx.commit();
    out << "database " << database << ": reachable (PostgreSQL " << version << ")\n";
    const auto directory = ResolveMigrationsDir(line.Value("--migrations"));
    try {
      const auto files = store::ReadMigrations(directory);
      const auto applied = store::AppliedVersions(connection);
      std::size_t pending = 0;
      for (const auto& file : files) {
        if (std::find(applied.begin(), applied.end(), file.version) == applied.end()) ++pending;
      }
      out << "migrations " << directory.string() << ": " << applied.size() << " applied, "
          << pending << " pending" << (pending > 0 ? " (run `mailtrail migrate`)" : "") << '\n';
    } catch (const store::MigrationError& e) {
      err << "migrations: " << e.what() << '\n';
      failed = true;
    }
  } catch (const std::exception& e) {
    err << "database " << database << ": unreachable: " << e.what() << '\n';
    failed = true;
  }
  out << "postgrid api: not checked (the API client is not built yet)\n";
  return failed ? kExitFailure : kExitOk;
}

}  // namespace

int RunCommand(const CommandLine& line, std::ostream& out, std::ostream& err) {
  config::Config config;
  try {
    config = config::LoadConfig(line.config_path);
    config::Require(config, {config::Requirement::kDatabase});
  } catch (const config::ConfigError& e) {
    err << "mailtrail: " << e.what() << '\n';
    return kExitUsage;
  }
  SetUpLogging(config.log);
  try {
    if (line.command == "migrate") return Migrate(config, line, out);
    if (line.command == "check-config") return CheckConfig(config, line, out, err);
    err << "mailtrail: command " << line.command << " is not implemented\n";
    return kExitUsage;
  } catch (const std::exception& e) {
    err << "mailtrail " << line.command << ": " << e.what() << '\n';
    return kExitFailure;
  }
}

}  // namespace mailtrail::app
