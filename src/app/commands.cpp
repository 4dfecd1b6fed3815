#include "app/commands.hpp"

#include <spdlog/spdlog.h>

#include <chrono>
#include <iomanip>
#include <ostream>
#include <pqxx/pqxx>
#include <sstream>

#include "app/daemon.hpp"
#include "app/logging.hpp"
#include "app/paths.hpp"
#include "app/runtime.hpp"
#include "config/config.hpp"
#include "domain/diff.hpp"
#include "postgrid/api_error.hpp"
#include "postgrid/json_mapping.hpp"
#include "store/migrator.hpp"
#include "store/order_repository.hpp"

namespace mailtrail::app {
namespace {

/// Pending migrations are applied by every command that writes orders, as `run` does.
void ApplyMigrations(const config::Config& config, const CommandLine& line) {
  pqxx::connection connection(config.database.url);
  const auto report = store::Migrate(connection, ResolveMigrationsDir(line.Value("--migrations")));
  for (const auto& name : report.applied) spdlog::info("applied migration {}", name);
}

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

// Lists one order of the first configured plain type: proves the URL, TLS and the key.
net::awaitable<std::string> ProbeApi(postgrid::Client& client,
                                     std::vector<domain::OrderType> types) {
  domain::OrderType probe = domain::OrderType::kLetter;
  for (auto type : types) {
    if (type != domain::OrderType::kReturnEnvelopeOrder) {
      probe = type;
      break;
    }
  }
  nlohmann::json page;
  if (types.size() == 1 && types.front() == domain::OrderType::kReturnEnvelopeOrder) {
    page = co_await client.ListReturnEnvelopes(0, 1, postgrid::Purpose::kCheck);
  } else {
    page = co_await client.List(probe, 0, 1, "", postgrid::Purpose::kCheck);
  }
  const auto listed = postgrid::MapListPage(std::move(page));
  co_return std::to_string(listed.total_count) + " " +
      std::string(types.size() == 1 && types.front() == domain::OrderType::kReturnEnvelopeOrder
                      ? "return envelopes"
                      : domain::EndpointName(probe));
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

  if (config.postgrid.api_key.empty()) {
    err << "postgrid api " << config.postgrid.base_url
        << ": not checked: postgrid.api_key is not set (set it or MAILTRAIL_POSTGRID_API_KEY)\n";
    failed = true;
  } else {
    try {
      net::io_context io{1};
      postgrid::ClientOptions options = ClientOptionsFrom(config);
      options.max_attempts = 2;
      postgrid::Client client(io.get_executor(), options);
      const std::string listed = RunToCompletion(io, ProbeApi(client, config.postgrid.order_types));
      out << "postgrid api " << config.postgrid.base_url << ": reachable, key accepted (" << listed
          << ")\n";
    } catch (const postgrid::ApiError& e) {
      if (e.kind() == postgrid::ApiErrorKind::kAuth) {
        err << "postgrid api " << config.postgrid.base_url << ": the API key was refused (HTTP "
            << e.status() << "): " << e.what() << '\n';
      } else {
        err << "postgrid api " << config.postgrid.base_url << ": " << e.what() << '\n';
      }
      failed = true;
    } catch (const std::exception& e) {
      err << "postgrid api " << config.postgrid.base_url << ": " << e.what() << '\n';
      failed = true;
    }
  }
  return failed ? kExitFailure : kExitOk;
}

void PrintPass(std::ostream& out, const char* what, const sync::PassResult& result) {
  out << what << ": " << result.pages << " list pages, " << result.new_orders << " new orders, "
      << result.changed << " changed orders, " << result.refreshed << " orders refreshed, "
      << result.changes << " changes recorded, " << result.failures << " failures\n";
}

int SyncOnce(const config::Config& config, const CommandLine& line, std::ostream& out,
             std::ostream& err) {
  if (!line.HasFlag("--once")) {
    err << "mailtrail sync: --once is required (the long-running sync is `mailtrail run`)\n";
    return kExitUsage;
  }
  ApplyMigrations(config, line);
  Runtime runtime(config);
  const sync::PassResult result = RunToCompletion(runtime.io, runtime.scheduler->RunOnce());
  PrintPass(out, "sync", result);
  if (result.failures > 0) {
    err << "mailtrail sync: " << result.failures
        << " orders could not be fetched or recorded (see the log); they are retried later\n";
    return kExitFailure;
  }
  return kExitOk;
}

std::vector<std::string> SplitComma(const std::string& text) {
  std::vector<std::string> items;
  std::stringstream stream(text);
  std::string item;
  while (std::getline(stream, item, ',')) items.push_back(item);
  return items;
}

int Backfill(const config::Config& config, const CommandLine& line, std::ostream& out,
             std::ostream& err) {
  sync::BackfillOptions options;
  options.types = config.postgrid.order_types;
  if (const auto types = line.Value("--types")) {
    options.types.clear();
    for (const auto& name : SplitComma(*types)) {
      const auto type = domain::OrderTypeFromEndpoint(name);
      if (!type) {
        err << "mailtrail backfill: --types: unknown order type '" << name
            << "' (letters, postcards, cheques, self_mailers, boxes, snap_packs, "
               "return_envelope_orders)\n";
        return kExitUsage;
      }
      options.types.push_back(*type);
    }
  }
  if (const auto since = line.Value("--since")) {
    options.since = domain::ParseTimestamp(*since);
    if (!options.since) {
      err << "mailtrail backfill: --since: '" << *since
          << "' is not an ISO-8601 date or timestamp (e.g. 2026-01-31 or 2026-01-31T12:00:00Z)\n";
      return kExitUsage;
    }
  }
  ApplyMigrations(config, line);
  Runtime runtime(config);
  const sync::PassResult result =
      RunToCompletion(runtime.io, runtime.scheduler->Backfill(std::move(options)));
  PrintPass(out, "backfill", result);
  return result.failures > 0 ? kExitFailure : kExitOk;
}

std::string Cell(const pqxx::field& field) { return field.is_null() ? "-" : field.c_str(); }

int Status(const config::Config& config, std::ostream& out) {
  pqxx::connection connection(config.database.url);
  pqxx::read_transaction tx(connection);
  if (tx.exec("SELECT to_regclass('mailtrail.sync_runs') IS NULL")[0][0].as<bool>()) {
    throw std::runtime_error("the database has no mailtrail schema yet: run `mailtrail migrate`");
  }
  tx.exec("SET LOCAL TIME ZONE 'UTC'");
  const auto totals = tx.exec(
      "SELECT count(*), count(*) FILTER (WHERE terminal), "
      "count(*) FILTER (WHERE NOT terminal AND next_check_at <= now()), "
      "date_trunc('second', now() - min(next_check_at) FILTER (WHERE NOT terminal "
      "AND next_check_at <= now())), date_trunc('second', max(last_checked_at)) "
      "FROM mailtrail.orders")[0];
  out << "orders: " << totals[0].c_str() << " (" << totals[1].c_str() << " terminal)\n"
      << "due now: " << totals[2].c_str() << ", oldest due lag: " << Cell(totals[3]) << '\n'
      << "last successful poll: " << Cell(totals[4]) << "\n\n";

  out << std::left << std::setw(24) << "type" << std::setw(26) << "status" << std::setw(10)
      << "terminal"
      << "orders\n";
  for (const auto& row :
       tx.exec("SELECT order_type, coalesce(status, '-'), terminal, count(*) FROM mailtrail.orders "
               "GROUP BY 1, 2, 3 ORDER BY 1, 2, 3")) {
    out << std::setw(24) << row[0].c_str() << std::setw(26) << row[1].c_str() << std::setw(10)
        << (row[2].as<bool>() ? "yes" : "no") << row[3].c_str() << '\n';
  }

  out << "\nby next check reason (non-terminal):\n";
  for (const auto& row :
       tx.exec("SELECT coalesce(check_reason, '-'), count(*), "
               "date_trunc('second', min(next_check_at)) FROM mailtrail.orders WHERE NOT terminal "
               "GROUP BY 1 ORDER BY 1")) {
    out << "  " << std::setw(28) << row[0].c_str() << std::setw(10) << row[1].c_str() << "next "
        << Cell(row[2]) << '\n';
  }

  out << "\nsync jobs:\n";
  for (const auto& row : tx.exec(
           "SELECT job, date_trunc('second', last_success_at), date_trunc('second', "
           "last_failure_at), coalesce(last_error, '') FROM mailtrail.sync_runs ORDER BY job")) {
    out << "  " << std::setw(12) << row[0].c_str() << " last success " << Cell(row[1])
        << ", last failure " << Cell(row[2]);
    if (!std::string(row[3].c_str()).empty()) out << " (" << row[3].c_str() << ")";
    out << '\n';
  }

  out << "\nAPI requests by purpose:\n";
  for (const auto& row :
       tx.exec("SELECT purpose, sum(requests), sum(requests) FILTER (WHERE status = 429), "
               "sum(requests) FILTER (WHERE status >= 500 OR status = 0) "
               "FROM mailtrail.api_request_totals GROUP BY 1 ORDER BY 1")) {
    out << "  " << std::setw(12) << row[0].c_str() << std::setw(10) << row[1].c_str() << "429s "
        << (row[2].is_null() ? "0" : row[2].c_str()) << ", errors "
        << (row[3].is_null() ? "0" : row[3].c_str()) << '\n';
  }

  const auto webhooks = tx.exec(
      "SELECT count(*), count(*) FILTER (WHERE verified), count(*) FILTER (WHERE NOT verified), "
      "count(*) FILTER (WHERE processed_at IS NOT NULL), "
      "count(*) FILTER (WHERE received_at > now() - interval '24 hours'), "
      "date_trunc('second', max(received_at)) FROM mailtrail.webhook_deliveries")[0];
  out << "\nwebhook deliveries: " << webhooks[0].c_str() << " (" << webhooks[1].c_str()
      << " verified, " << webhooks[2].c_str() << " refused, " << webhooks[3].c_str()
      << " processed; " << webhooks[4].c_str() << " in the last 24 h; last " << Cell(webhooks[5])
      << ")\n";

  out << "\nreplicas:\n";
  // A replica killed without deregistering keeps its row (and leader flag) until it is pruned.
  for (const auto& row :
       tx.exec("SELECT id, is_leader AND last_seen_at > now() - interval '1 minute', "
               "date_trunc('second', now() - last_seen_at), "
               "last_seen_at > now() - interval '1 minute' FROM mailtrail.replicas ORDER BY id")) {
    out << "  " << row[0].c_str() << (row[1].as<bool>() ? " (leader)" : "")
        << (row[3].as<bool>() ? "" : " (not seen for over a minute)") << ", seen " << row[2].c_str()
        << " ago\n";
  }
  return kExitOk;
}

int History(const config::Config& config, const CommandLine& line, std::ostream& out,
            std::ostream& err) {
  const std::string& id = line.positionals.at(0);
  pqxx::connection connection(config.database.url);
  pqxx::read_transaction tx(connection);
  tx.exec("SET LOCAL TIME ZONE 'UTC'");
  const auto order = tx.exec_params(
      "SELECT order_type, live, status, imb_status, tracking_number, mailing_class, "
      "carrier_status, terminal, check_reason, next_check_at, created_at, updated_at, "
      "last_checked_at FROM mailtrail.orders WHERE id = $1",
      id);
  if (order.empty()) {
    err << "mailtrail history: order " << id << " is not in the database\n";
    return kExitFailure;
  }
  const auto& o = order[0];
  out << id << " (" << o[0].c_str() << ", " << (o[1].as<bool>() ? "live" : "test") << ")\n"
      << "  status " << Cell(o[2]) << ", imb " << Cell(o[3]) << ", tracking " << Cell(o[4])
      << ", mailing class " << Cell(o[5]) << ", carrier " << Cell(o[6]) << '\n'
      << "  created " << Cell(o[10]) << ", updated at PostGrid " << Cell(o[11]) << ", last checked "
      << Cell(o[12]) << '\n'
      << "  " << (o[7].as<bool>() ? "terminal" : "watched") << " (" << Cell(o[8]) << ")"
      << (o[9].is_null() ? "" : std::string(", next check ") + o[9].c_str()) << "\n\n";
  const auto rows = tx.exec_params(
      "SELECT occurred_at, kind, field, old_value, new_value, message, location, source "
      "FROM mailtrail.order_timeline WHERE order_id = $1 "
      "ORDER BY occurred_at, change_id NULLS LAST",
      id);
  for (const auto& row : rows) {
    out << "  " << row[0].c_str() << "  ";
    if (std::string(row[1].c_str()) == "change") {
      out << std::left << std::setw(22) << row[2].c_str() << Cell(row[3]) << " -> " << Cell(row[4])
          << "  [" << row[7].c_str() << "]\n";
    } else {
      out << std::left << std::setw(22) << "carrier" << Cell(row[4]) << ": " << Cell(row[5]);
      if (!row[6].is_null()) out << " (" << row[6].c_str() << ")";
      out << "  [" << Cell(row[7]) << "]\n";
    }
  }
  out << "\n" << rows.size() << " timeline entries\n";
  return kExitOk;
}

struct ProgressOutcome {
  store::ApplyResult result;
  std::string status;
};

net::awaitable<ProgressOutcome> ProgressAndRefresh(Runtime& runtime, domain::OrderRef ref) {
  const nlohmann::json progressed =
      co_await runtime.client->Progress(ref, postgrid::Purpose::kManual);
  ProgressOutcome outcome;
  outcome.status = progressed.value("status", "");
  outcome.result = co_await runtime.syncer->Refresh(ref, store::Source::kManual);
  co_await runtime.scheduler->FlushRequestCounts();
  co_return outcome;
}

int Progress(const config::Config& config, const CommandLine& line, std::ostream& out,
             std::ostream& err) {
  const std::string& id = line.positionals.at(0);
  domain::OrderRef ref;
  ref.id = id;
  {
    pqxx::connection connection(config.database.url);
    pqxx::read_transaction tx(connection);
    const auto rows =
        tx.exec_params("SELECT order_type, envelope_id FROM mailtrail.orders WHERE id = $1", id);
    if (!rows.empty()) {
      ref.type =
          domain::OrderTypeFromEndpoint(rows[0][0].c_str()).value_or(domain::OrderType::kLetter);
      if (!rows[0][1].is_null()) ref.envelope_id = rows[0][1].c_str();
    } else if (const auto type = domain::OrderTypeFromId(id)) {
      ref.type = *type;
    } else {
      err << "mailtrail progress: order " << id
          << " is not in the database and its id names no order type\n";
      return kExitFailure;
    }
  }
  if (ref.type == domain::OrderType::kReturnEnvelopeOrder && ref.envelope_id.empty()) {
    err << "mailtrail progress: return envelope order " << id
        << " is not in the database, so its envelope is unknown (run `mailtrail sync --once`)\n";
    return kExitFailure;
  }
  ApplyMigrations(config, line);
  Runtime runtime(config);
  const ProgressOutcome outcome = RunToCompletion(runtime.io, ProgressAndRefresh(runtime, ref));
  out << id << ": PostGrid moved it to " << outcome.status << '\n';
  for (const auto& change : outcome.result.changes) {
    out << "  " << domain::FieldName(change.field) << ": " << change.old_value.value_or("-")
        << " -> " << change.new_value.value_or("-") << '\n';
  }
  out << outcome.result.changes.size() << " changes recorded (source manual)\n";
  return kExitOk;
}

}  // namespace

int RunCommand(const CommandLine& line, std::ostream& out, std::ostream& err) {
  config::Config config;
  try {
    config = config::LoadConfig(line.config_path);
    std::vector<config::Requirement> needs = {config::Requirement::kDatabase};
    if (line.command == "sync" || line.command == "backfill" || line.command == "progress" ||
        line.command == "run") {
      needs.push_back(config::Requirement::kApi);
    }
    if (line.command == "run") needs.push_back(config::Requirement::kWebhook);
    for (auto need : needs) config::Require(config, {need});
  } catch (const config::ConfigError& e) {
    err << "mailtrail: " << e.what() << '\n';
    return kExitUsage;
  }
  SetUpLogging(config.log);
  try {
    if (line.command == "migrate") return Migrate(config, line, out);
    if (line.command == "check-config") return CheckConfig(config, line, out, err);
    if (line.command == "sync") return SyncOnce(config, line, out, err);
    if (line.command == "backfill") return Backfill(config, line, out, err);
    if (line.command == "status") return Status(config, out);
    if (line.command == "history") return History(config, line, out, err);
    if (line.command == "progress") return Progress(config, line, out, err);
    if (line.command == "run") return RunDaemon(config, line);
    err << "mailtrail: command " << line.command << " is not implemented\n";
    return kExitUsage;
  } catch (const std::exception& e) {
    err << "mailtrail " << line.command << ": " << e.what() << '\n';
    return kExitFailure;
  }
}

}  // namespace mailtrail::app
