#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <initializer_list>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "domain/order_ref.hpp"

namespace mailtrail::config {

using Duration = std::chrono::milliseconds;

/// A listen address. `host` is kept without IPv6 brackets; port 0 asks the OS for a free port.
struct HostPort {
  std::string host;
  std::uint16_t port = 0;

  bool operator==(const HostPort&) const = default;
};

enum class LogLevel { kTrace, kDebug, kInfo, kWarn, kError };
enum class LogFormat { kText, kJson };

struct PostgridConfig {
  /// No trailing slash (the loader strips it), so the client appends "/letters" etc.
  std::string base_url = "https://api.postgrid.com/print-mail/v1";
  /// Empty when not given; Require({Requirement::kApi}) rejects that.
  std::string api_key;
  std::vector<domain::OrderType> order_types{domain::kAllOrderTypes.begin(),
                                             domain::kAllOrderTypes.end()};
  double requests_per_second = 50;              // 0.001..1e6
  int max_concurrency = 8;                      // 1..256
  Duration timeout = std::chrono::seconds(10);  // > 0

  bool operator==(const PostgridConfig&) const = default;
};

struct DatabaseConfig {
  std::string url = "postgresql://mailtrail@/mailtrail";

  bool operator==(const DatabaseConfig&) const = default;
};

struct PollConfig {
  Duration interval = std::chrono::hours(1);
  Duration carrier_interval = std::chrono::hours(6);  // 0 disables the carrier tier
  Duration discovery_interval = std::chrono::minutes(5);
  Duration full_scan_interval = std::chrono::hours(24);
  Duration completed_grace = std::chrono::hours(24 * 14);

  bool operator==(const PollConfig&) const = default;
};

struct WebhookConfig {
  HostPort listen{"127.0.0.1", 8080};
  std::string path = "/webhooks/postgrid";
  std::vector<std::string> secrets;
  Duration max_age = std::chrono::minutes(10);
  std::size_t max_body = std::size_t{1024} * 1024;

  bool operator==(const WebhookConfig&) const = default;
};

struct MetricsConfig {
  HostPort listen{"127.0.0.1", 9464};

  bool operator==(const MetricsConfig&) const = default;
};

struct LogConfig {
  LogLevel level = LogLevel::kInfo;
  LogFormat format = LogFormat::kText;

  bool operator==(const LogConfig&) const = default;
};

/// The effective configuration: contract.md's keys with their defaults, after env overrides.
struct Config {
  /// The file it was loaded from (or the display name given to LoadConfigFromString).
  std::string source_path;
  PostgridConfig postgrid;
  DatabaseConfig database;
  PollConfig poll;
  WebhookConfig webhook;
  MetricsConfig metrics;
  LogConfig log;

  bool operator==(const Config&) const = default;
};

/// Thrown for every config problem. what() reads "FILE:LINE:COL: KEY: problem" when a position is
/// known, "FILE: KEY: problem" otherwise (a missing file, an env override, Require), and drops the
/// "KEY: " part when no key applies (malformed YAML, an empty file). The message never contains a
/// secret's value. Callers exit with code 2 on it (contract.md).
class ConfigError : public std::runtime_error {
 public:
  /// `line`/`column` are 1-based; 0 means unknown. `key` is the full dotted key or empty.
  ConfigError(std::string file, std::string key, int line, int column, std::string problem);

  [[nodiscard]] const std::string& file() const noexcept { return file_; }
  [[nodiscard]] const std::string& key() const noexcept { return key_; }
  /// 1-based, 0 when unknown.
  [[nodiscard]] int line() const noexcept { return line_; }
  /// 1-based, 0 when unknown.
  [[nodiscard]] int column() const noexcept { return column_; }
  /// The message without the "FILE:LINE:COL: KEY: " prefix.
  [[nodiscard]] const std::string& problem() const noexcept { return problem_; }

 private:
  std::string file_;
  std::string key_;
  int line_;
  int column_;
  std::string problem_;
};

/// Looks a variable up in the process environment (::getenv); nullopt when unset.
std::optional<std::string> GetEnv(const char* name);

using EnvLookup = std::function<std::optional<std::string>(const char*)>;

/// Loads FILE with yaml-cpp, starts from the defaults above, applies every key the file sets, then
/// the environment overrides MAILTRAIL_POSTGRID_API_KEY, MAILTRAIL_DATABASE_URL and
/// MAILTRAIL_WEBHOOK_SECRETS (comma-separated, entries trimmed, an empty entry is an error). A
/// variable that is unset or empty overrides nothing. Every key in the file is optional, but the
/// file must hold one YAML map; unknown keys, duplicate keys, wrong types and out-of-range values
/// are errors. Throws ConfigError (never anything else for bad input). Thread-safe if `env` is.
Config LoadConfig(const std::filesystem::path& file, const EnvLookup& env = GetEnv);

/// As LoadConfig, from YAML text; `display_name` stands for the file name in errors and in
/// Config::source_path.
Config LoadConfigFromString(std::string_view yaml, std::string_view display_name,
                            const EnvLookup& env = GetEnv);

/// What a command needs beyond a syntactically valid config.
enum class Requirement {
  kDatabase,  ///< database.url non-empty
  kApi,       ///< postgrid.api_key non-empty
  kWebhook,   ///< at least one webhook secret
};

/// Throws ConfigError naming the first missing key (and the env variable that can supply it).
void Require(const Config& config, std::initializer_list<Requirement> requirements);

/// A YAML rendering of the effective config for check-config. The API key, every webhook secret and
/// the password inside database.url (URI `user:pass@`, `?password=` or key=value `password=`) read
/// "<redacted>" ("<unset>" for an empty API key; an empty secret list renders as []).
std::string DescribeRedacted(const Config& config);

/// `url` with its password replaced by "<redacted>": the URI forms `postgresql://user:pass@host/db`
/// and `?password=...`, and key=value DSNs `password=... ` / `password='...'`. For log lines too.
std::string RedactDatabaseUrl(std::string_view url);

/// Parses `500ms`, `2s`, `15m`, `1h`, `14d`: a non-negative decimal integer followed directly by a
/// unit, or a bare `0`. Zero is returned as is; callers decide whether zero is allowed. No sign,
/// fractions, spaces or compound forms (`1h30m`); at most 36500d (keeps clock arithmetic in range).
/// Throws std::invalid_argument with a message that quotes the input and says what is wrong.
Duration ParseDuration(std::string_view text);

/// Parses `64B`, `512KiB`, `1MiB`, `1GiB` (1024-based) and `KB`, `MB`, `GB` (1000-based): a
/// non-negative decimal integer followed directly by the unit. Throws std::invalid_argument.
std::size_t ParseSize(std::string_view size);

/// "14d", "1h", "90m", "500ms", "0": the largest unit that divides exactly, so the result parses
/// back to the same value with ParseDuration (for values in ParseDuration's range).
std::string FormatDuration(Duration duration);

/// "512KiB", "1MiB", "1000B": the largest binary unit that divides exactly; round-trips with
/// ParseSize.
std::string FormatSize(std::size_t size);

/// "trace", "debug", "info", "warn", "error".
std::string_view LogLevelName(LogLevel level);
/// "text", "json".
std::string_view LogFormatName(LogFormat format);
/// "127.0.0.1:8080", "[::1]:8080".
std::string FormatHostPort(const HostPort& address);

}  // namespace mailtrail::config
