#include "app/cli.hpp"

#include <algorithm>
#include <sstream>

namespace mailtrail::app {
namespace {

bool Contains(const std::vector<std::string>& list, const std::string& item) {
  return std::find(list.begin(), list.end(), item) != list.end();
}

}  // namespace

const std::vector<CommandSpec>& Commands() {
  static const std::vector<CommandSpec> kCommands = {
      {
          "run",
          "the daemon: scheduler, webhook listener, metrics and health; stops on SIGTERM/SIGINT",
          "mailtrail run [--config FILE] [--migrations DIR]",
          "Applies pending migrations (waiting with backoff while the database is unreachable),\n"
          "then polls PostGrid: orders still lacking carrier data every poll.interval, orders\n"
          "with carrier data every poll.carrier_interval, list discovery every\n"
          "poll.discovery_interval and a full list walk every poll.full_scan_interval (one\n"
          "leader among several replicas runs those two). Verified webhooks on\n"
          "webhook.listen + webhook.path refresh the named order at once. GET /metrics,\n"
          "/healthz and /readyz on metrics.listen. Under systemd (Type=notify) it reports\n"
          "READY=1 once migrations are applied and the listeners are bound, and pings the\n"
          "watchdog. SIGTERM/SIGINT: in-flight writes finish, exit 0.\n"
          "Needs postgrid.api_key and at least one webhook secret.\n"
          "\n"
          "  --migrations DIR  see `mailtrail migrate --help`\n",
          {"--migrations"},
          {},
      },
      {
          "migrate",
          "apply pending database migrations, then exit",
          "mailtrail migrate [--config FILE] [--migrations DIR]",
          "Applies migrations/NNNN_*.sql to database.url in order, each file in its own\n"
          "transaction, under a PostgreSQL advisory lock, and records each in\n"
          "mailtrail.schema_migrations with its SHA-256. Running it again applies nothing.\n"
          "Several runners at once apply each file once. A file changed after it was applied\n"
          "is refused, naming the file; a failing file rolls back and leaves the earlier ones\n"
          "applied.\n"
          "\n"
          "  --migrations DIR  where the NNNN_*.sql files are (default: "
          "$MAILTRAIL_MIGRATIONS_DIR,\n"
          "                    else <prefix>/share/mailtrail/migrations next to the binary,\n"
          "                    else the source tree's migrations/)\n",
          {"--migrations"},
          {},
      },
      {
          "sync",
          "one discovery pass and a refresh of every due order, then exit",
          "mailtrail sync --once [--config FILE] [--migrations DIR]",
          "Applies pending migrations, walks each list endpoint newest first until a page\n"
          "holds only known, unchanged orders (recording new and changed orders), then GETs\n"
          "every order that is due now and records what changed. Exit 0 when everything\n"
          "succeeded, 1 when some list or order could not be fetched or written (it says\n"
          "which). --once is required: the long-running form is `mailtrail run`.\n",
          {"--migrations"},
          {"--once"},
      },
      {
          "backfill",
          "walk every list endpoint completely and record every order (resumable)",
          "mailtrail backfill [--since DATE] [--types letters,postcards,...] [--config FILE]",
          "Walks the list endpoints of the given types (default: postgrid.order_types) from\n"
          "the newest order to the oldest, recording every order (source backfill). Progress\n"
          "is saved after every page: a backfill that was interrupted continues where it\n"
          "stopped when run again with the same --since.\n"
          "\n"
          "  --since DATE   stop at orders created before DATE (ISO-8601, e.g. 2026-01-31 or\n"
          "                 2026-01-31T12:00:00Z)\n"
          "  --types LIST   comma-separated endpoint names: letters, postcards, cheques,\n"
          "                 self_mailers, boxes, snap_packs, return_envelope_orders\n"
          "  --migrations DIR  see `mailtrail migrate --help`\n",
          {"--since", "--types", "--migrations"},
          {},
      },
      {
          "status",
          "orders by type and status, due backlog, last discovery, requests, webhooks",
          "mailtrail status [--config FILE]",
          "Reads the database (it does not call PostGrid): orders by type, status and\n"
          "terminal flag; orders due now and the oldest due lag; the last successful poll,\n"
          "discovery and full scan; API requests by purpose; webhook deliveries; live\n"
          "replicas.\n",
          {},
          {},
      },
      {
          "history",
          "an order's timeline: every change and carrier event with time and source",
          "mailtrail history ORDER_ID [--config FILE]",
          "Prints the order's current state and its timeline from mailtrail.order_timeline:\n"
          "every recorded field change (observed time, old -> new, source) and every carrier\n"
          "tracking update (carrier time, status, message, location). Exit 1 when the order\n"
          "is not in the database.\n",
          {},
          {},
          1,
          1,
      },
      {
          "progress",
          "test keys only: progress an order one stage at PostGrid, then refresh it",
          "mailtrail progress ORDER_ID [--config FILE]",
          "Asks PostGrid to move a test-mode order one stage on (POST .../progressions; for\n"
          "return envelope orders POST .../fills), then GETs the order and records what\n"
          "changed (source manual), and prints the changes. PostGrid refuses live keys and\n"
          "orders that are completed or cancelled; the error is printed and the exit code\n"
          "is 1.\n",
          {},
          {},
          1,
          1,
      },
      {
          "check-config",
          "validate the config, reach the database and the API; report each",
          "mailtrail check-config [--config FILE] [--migrations DIR]",
          "Loads and validates the config file (unknown keys and bad values are errors that\n"
          "name file, line and key; exit 2), prints the effective config with every secret\n"
          "redacted, connects to database.url and reports the server version and the\n"
          "migrations applied and pending, then lists one order at postgrid.base_url with\n"
          "the API key to check that it is accepted. Exit 1 when the database or the API\n"
          "cannot be reached or the key is refused.\n"
          "\n"
          "  --migrations DIR  the migrations to compare against (see `mailtrail migrate "
          "--help`)\n",
          {"--migrations"},
          {},
      },
  };
  return kCommands;
}

const CommandSpec* FindCommand(const std::string& name) {
  for (const auto& spec : Commands()) {
    if (spec.name == name) return &spec;
  }
  return nullptr;
}

bool CommandLine::HasFlag(const std::string& name) const { return Contains(flags, name); }

std::optional<std::string> CommandLine::Value(const std::string& name) const {
  const auto it = values.find(name);
  if (it == values.end()) return std::nullopt;
  return it->second;
}

CommandLine ParseCommandLine(const std::vector<std::string>& args) {
  CommandLine line;
  const CommandSpec* spec = nullptr;
  bool config_seen = false;
  for (std::size_t i = 0; i < args.size(); ++i) {
    const std::string& arg = args[i];
    if (arg == "-h" || arg == "--help") {
      line.help = true;
      continue;
    }
    if (arg == "--version" && spec == nullptr) {
      line.version = true;
      continue;
    }
    if (arg.rfind("--", 0) == 0) {
      std::string name = arg;
      std::optional<std::string> inline_value;
      if (const auto eq = arg.find('='); eq != std::string::npos) {
        name = arg.substr(0, eq);
        inline_value = arg.substr(eq + 1);
      }
      const bool takes_value =
          name == "--config" || (spec != nullptr && Contains(spec->value_options, name));
      const bool is_flag = spec != nullptr && Contains(spec->flag_options, name);
      if (!takes_value && !is_flag) {
        throw UsageError(spec == nullptr ? "unknown option " + name
                                         : "unknown option " + name + " for " + spec->name);
      }
      if (is_flag) {
        if (inline_value) throw UsageError("option " + name + " takes no value");
        line.flags.push_back(name);
        continue;
      }
      std::string value;
      if (inline_value) {
        value = *inline_value;
      } else if (i + 1 < args.size()) {
        value = args[++i];
      } else {
        throw UsageError("option " + name + " needs a value");
      }
      if (value.empty()) throw UsageError("option " + name + " needs a non-empty value");
      if (name == "--config") {
        if (config_seen) throw UsageError("--config given twice");
        config_seen = true;
        line.config_path = value;
      } else {
        if (line.values.count(name) != 0) throw UsageError(name + " given twice");
        line.values[name] = value;
      }
      continue;
    }
    if (arg.size() > 1 && arg[0] == '-') throw UsageError("unknown option " + arg);
    if (spec == nullptr) {
      if (arg == "help") {
        line.help = true;
        continue;
      }
      spec = FindCommand(arg);
      if (spec == nullptr) throw UsageError("unknown command '" + arg + "'");
      line.command = spec->name;
      continue;
    }
    line.positionals.push_back(arg);
  }
  if (spec != nullptr && !line.help) {
    if (line.positionals.size() < spec->min_positionals) {
      throw UsageError(spec->name + ": missing argument (usage: " + spec->usage + ")");
    }
    if (line.positionals.size() > spec->max_positionals) {
      throw UsageError(spec->name + ": unexpected argument '" +
                       line.positionals[spec->max_positionals] + "'");
    }
  }
  if (spec == nullptr && !line.help && !line.version) {
    throw UsageError("no command given");
  }
  return line;
}

std::string GeneralHelp() {
  std::ostringstream out;
  out << "mailtrail keeps a PostgreSQL history of PostGrid print-and-mail orders.\n\n"
         "usage: mailtrail COMMAND [--config FILE] [options]\n"
         "       mailtrail COMMAND --help\n\n"
         "commands:\n";
  for (const auto& spec : Commands()) {
    out << "  " << spec.name << std::string(spec.name.size() < 14 ? 14 - spec.name.size() : 1, ' ')
        << spec.summary << '\n';
  }
  out << "\noptions:\n"
         "  --config FILE  the YAML config (default "
      << kDefaultConfigPath
      << ");\n"
         "                 MAILTRAIL_POSTGRID_API_KEY, MAILTRAIL_DATABASE_URL and\n"
         "                 MAILTRAIL_WEBHOOK_SECRETS override the file\n"
         "  -h, --help     this help, or a command's with COMMAND --help\n"
         "  --version      print the version\n\n"
         "exit codes: 0 success, 1 runtime failure, 2 bad usage or bad config\n";
  return out.str();
}

std::string CommandHelp(const CommandSpec& spec) {
  std::ostringstream out;
  out << "usage: " << spec.usage << "\n\n"
      << spec.description << "\n"
      << "  --config FILE     the YAML config (default " << kDefaultConfigPath << ")\n"
      << "\nexit codes: 0 success, 1 runtime failure, 2 bad usage or bad config\n";
  return out.str();
}

}  // namespace mailtrail::app
