// check-config's view of the effective config. Everything that could be a secret is replaced
// before it reaches the emitter, so no later formatting change can leak one.
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <charconv>
#include <string>
#include <string_view>

#include "config/config.hpp"

namespace mailtrail::config {
namespace {

constexpr std::string_view kRedacted = "<redacted>";
constexpr std::string_view kUnset = "<unset>";

bool StartsWithNoCase(std::string_view text, std::string_view prefix) {
  if (text.size() < prefix.size()) return false;
  for (std::size_t i = 0; i < prefix.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(text[i])) != prefix[i]) return false;
  }
  return true;
}

bool IsSpace(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

// Replaces the value of every `password` parameter: `password=x&...` in a URI query, or
// `password = x` / `password='x y'` in a libpq key=value string.
std::string RedactPasswordParameters(std::string text, bool uri) {
  constexpr std::string_view kKey = "password";
  std::size_t pos = 0;
  while (pos < text.size()) {
    const bool boundary =
        pos == 0 || IsSpace(text[pos - 1]) || text[pos - 1] == '?' || text[pos - 1] == '&';
    if (!boundary || !StartsWithNoCase(std::string_view(text).substr(pos), kKey)) {
      ++pos;
      continue;
    }
    std::size_t cursor = pos + kKey.size();
    while (cursor < text.size() && IsSpace(text[cursor])) ++cursor;
    if (cursor >= text.size() || text[cursor] != '=') {
      ++pos;
      continue;
    }
    ++cursor;
    while (!uri && cursor < text.size() && IsSpace(text[cursor])) ++cursor;
    std::size_t end = cursor;
    if (uri) {
      while (end < text.size() && text[end] != '&' && text[end] != '#') ++end;
    } else if (end < text.size() && text[end] == '\'') {
      ++end;
      while (end < text.size() && text[end] != '\'') end += text[end] == '\\' ? 2 : 1;
      end = std::min(end + 1, text.size());
    } else {
      while (end < text.size() && !IsSpace(text[end])) ++end;
    }
    text.replace(cursor, end - cursor, kRedacted);
    pos = cursor + kRedacted.size();
  }
  return text;
}

std::string FormatNumber(double value) {
  std::array<char, 64> buffer{};
  const auto [end, ec] = std::to_chars(buffer.data(), buffer.data() + buffer.size(), value);
  if (ec != std::errc()) return std::to_string(value);
  return {buffer.data(), end};
}

}  // namespace

std::string RedactDatabaseUrl(std::string_view url) {
  std::string text(url);
  const bool uri = StartsWithNoCase(text, "postgresql://") || StartsWithNoCase(text, "postgres://");
  if (!uri) return RedactPasswordParameters(std::move(text), false);
  const std::size_t authority = text.find("://") + 3;
  // The last '@' rather than the first: a password with an unescaped '@', '/' or '?' must still be
  // hidden. If a query value holds an '@', more than the password is hidden, which is the safe
  // side.
  const std::size_t at = text.rfind('@');
  if (at != std::string::npos && at > authority) {
    const std::size_t colon = text.find(':', authority);
    if (colon != std::string::npos && colon < at) {
      text.replace(colon + 1, at - colon - 1, kRedacted);
    }
  }
  const std::size_t query = text.find('?', authority);
  if (query == std::string::npos) return text;
  return text.substr(0, query) + RedactPasswordParameters(text.substr(query), true);
}

std::string DescribeRedacted(const Config& config) {
  YAML::Emitter out;
  out << YAML::BeginMap;

  out << YAML::Key << "postgrid" << YAML::Value << YAML::BeginMap;
  out << YAML::Key << "base_url" << YAML::Value << config.postgrid.base_url;
  out << YAML::Key << "api_key" << YAML::Value
      << std::string(config.postgrid.api_key.empty() ? kUnset : kRedacted);
  out << YAML::Key << "order_types" << YAML::Value << YAML::Flow << YAML::BeginSeq;
  for (domain::OrderType type : config.postgrid.order_types) {
    out << std::string(domain::EndpointName(type));
  }
  out << YAML::EndSeq;
  out << YAML::Key << "requests_per_second" << YAML::Value
      << FormatNumber(config.postgrid.requests_per_second);
  out << YAML::Key << "max_concurrency" << YAML::Value << config.postgrid.max_concurrency;
  out << YAML::Key << "timeout" << YAML::Value << FormatDuration(config.postgrid.timeout);
  out << YAML::EndMap;

  out << YAML::Key << "database" << YAML::Value << YAML::BeginMap;
  out << YAML::Key << "url" << YAML::Value << RedactDatabaseUrl(config.database.url);
  out << YAML::EndMap;

  out << YAML::Key << "poll" << YAML::Value << YAML::BeginMap;
  out << YAML::Key << "interval" << YAML::Value << FormatDuration(config.poll.interval);
  out << YAML::Key << "carrier_interval" << YAML::Value
      << FormatDuration(config.poll.carrier_interval);
  out << YAML::Key << "discovery_interval" << YAML::Value
      << FormatDuration(config.poll.discovery_interval);
  out << YAML::Key << "full_scan_interval" << YAML::Value
      << FormatDuration(config.poll.full_scan_interval);
  out << YAML::Key << "completed_grace" << YAML::Value
      << FormatDuration(config.poll.completed_grace);
  out << YAML::EndMap;

  out << YAML::Key << "webhook" << YAML::Value << YAML::BeginMap;
  out << YAML::Key << "listen" << YAML::Value << FormatHostPort(config.webhook.listen);
  out << YAML::Key << "path" << YAML::Value << config.webhook.path;
  out << YAML::Key << "secrets" << YAML::Value << YAML::Flow << YAML::BeginSeq;
  for (std::size_t i = 0; i < config.webhook.secrets.size(); ++i) out << std::string(kRedacted);
  out << YAML::EndSeq;
  out << YAML::Key << "max_age" << YAML::Value << FormatDuration(config.webhook.max_age);
  out << YAML::Key << "max_body" << YAML::Value << FormatSize(config.webhook.max_body);
  out << YAML::EndMap;

  out << YAML::Key << "metrics" << YAML::Value << YAML::BeginMap;
  out << YAML::Key << "listen" << YAML::Value << FormatHostPort(config.metrics.listen);
  out << YAML::EndMap;

  out << YAML::Key << "log" << YAML::Value << YAML::BeginMap;
  out << YAML::Key << "level" << YAML::Value << std::string(LogLevelName(config.log.level));
  out << YAML::Key << "format" << YAML::Value << std::string(LogFormatName(config.log.format));
  out << YAML::EndMap;

  out << YAML::EndMap;
  return std::string(out.c_str()) + "\n";
}

}  // namespace mailtrail::config
