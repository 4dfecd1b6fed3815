#include "config/config.hpp"

#include <yaml-cpp/depthguard.h>
#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <system_error>
#include <utility>

#include "config/quote.hpp"

namespace mailtrail::config {
namespace {

constexpr std::string_view kApiKeyEnv = "MAILTRAIL_POSTGRID_API_KEY";
constexpr std::string_view kDatabaseUrlEnv = "MAILTRAIL_DATABASE_URL";
constexpr std::string_view kWebhookSecretsEnv = "MAILTRAIL_WEBHOOK_SECRETS";

std::string Quoted(std::string_view text) { return detail::QuoteForMessage(text); }

std::string_view Trim(std::string_view text) {
  const auto first = text.find_first_not_of(" \t\r\n");
  if (first == std::string_view::npos) return {};
  const auto last = text.find_last_not_of(" \t\r\n");
  return text.substr(first, last - first + 1);
}

// Levenshtein distance, for "did you mean" hints on misspelt keys.
std::size_t EditDistance(std::string_view a, std::string_view b) {
  std::vector<std::size_t> row(b.size() + 1);
  for (std::size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    std::size_t diagonal = row[0];
    row[0] = i;
    for (std::size_t j = 1; j <= b.size(); ++j) {
      const std::size_t above = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diagonal = above;
    }
  }
  return row[b.size()];
}

std::string FormatNumber(double value) {
  std::array<char, 64> buffer{};
  const auto [end, ec] = std::to_chars(buffer.data(), buffer.data() + buffer.size(), value,
                                       std::chars_format::general);
  if (ec != std::errc()) return std::to_string(value);
  return {buffer.data(), end};
}

std::string DescribeKind(const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Map:
      return "a map";
    case YAML::NodeType::Sequence:
      return "a list";
    case YAML::NodeType::Scalar:
      return "a scalar";
    case YAML::NodeType::Null:
    case YAML::NodeType::Undefined:
      break;
  }
  return "nothing";
}

// A plain (unquoted, untagged) scalar: only those can be numbers. "8" in quotes is a string.
bool IsPlainScalar(const YAML::Node& node) { return node.IsScalar() && node.Tag() == "?"; }

// One key of a map in the file, with where it was written.
struct Entry {
  std::string key;  // full dotted key, e.g. "postgrid.timeout"
  YAML::Mark key_mark;
  YAML::Node value;
};

// Counts the documents of a YAML stream and remembers where the second one starts.
class DocumentCounter final : public YAML::EventHandler {
 public:
  int documents = 0;
  YAML::Mark second_document;

  void OnDocumentStart(const YAML::Mark& mark) override {
    if (++documents == 2) second_document = mark;
  }
  void OnDocumentEnd() override {}
  void OnNull(const YAML::Mark&, YAML::anchor_t) override {}
  void OnAlias(const YAML::Mark&, YAML::anchor_t) override {}
  void OnScalar(const YAML::Mark&, const std::string&, YAML::anchor_t,
                const std::string&) override {}
  void OnSequenceStart(const YAML::Mark&, const std::string&, YAML::anchor_t,
                       YAML::EmitterStyle::value) override {}
  void OnSequenceEnd() override {}
  void OnMapStart(const YAML::Mark&, const std::string&, YAML::anchor_t,
                  YAML::EmitterStyle::value) override {}
  void OnMapEnd() override {}
};

class Loader {
 public:
  Loader(std::string file, const EnvLookup& env) : file_(std::move(file)), env_(env) {}

  Config Load(std::string_view yaml) {
    YAML::Node root;
    DocumentCounter counter;
    try {
      // yaml-cpp 0.7's LoadAll never returns on some malformed input (",{a", found by
      // fuzz/config_fuzz): its parser keeps reporting one more document without consuming any
      // input. So count at most two documents ourselves, then load the first with Load.
      std::stringstream stream{std::string(yaml)};
      YAML::Parser parser(stream);
      for (int i = 0; i < 2 && parser.HandleNextDocument(counter); ++i) {
      }
      if (counter.documents == 1) root = YAML::Load(std::string(yaml));
    } catch (const YAML::DeepRecursion& e) {
      // yaml-cpp's own message for this is "bad file", which misleads.
      throw ConfigError(file_, "", MarkLine(e.mark), MarkColumn(e.mark),
                        "malformed YAML: nested too deeply");
    } catch (const YAML::ParserException& e) {
      throw ConfigError(file_, "", MarkLine(e.mark), MarkColumn(e.mark),
                        "malformed YAML: " + e.msg);
    } catch (const YAML::Exception& e) {
      throw ConfigError(file_, "", MarkLine(e.mark), MarkColumn(e.mark),
                        "malformed YAML: " + e.msg);
    }
    if (counter.documents > 1) {
      throw ConfigError(file_, "", Line(counter.second_document), Column(counter.second_document),
                        "expected one YAML document, found more than one");
    }
    if (counter.documents == 0 || root.IsNull()) {
      throw ConfigError(file_, "", 0, 0,
                        "the file is empty; expected a YAML map with the sections postgrid, "
                        "database, poll, webhook, metrics, log");
    }
    if (!root.IsMap()) {
      throw ConfigError(file_, "", Line(root.Mark()), Column(root.Mark()),
                        "expected a YAML map at the top level, got " + DescribeKind(root));
    }

    config_.source_path = file_;
    try {
      LoadRoot(root);
    } catch (const YAML::Exception& e) {
      // The walkers check types before converting, so this is a yaml-cpp surprise; keep the mark.
      throw ConfigError(file_, "", MarkLine(e.mark), MarkColumn(e.mark),
                        std::string("cannot read the YAML: ") + e.msg);
    }
    ApplyEnv();
    CrossCheck();
    return config_;
  }

 private:
  using Handler = std::function<void(const Entry&)>;
  struct Field {
    std::string_view name;
    Handler apply;
  };

  static int MarkLine(const YAML::Mark& mark) { return mark.line >= 0 ? mark.line + 1 : 0; }
  static int MarkColumn(const YAML::Mark& mark) { return mark.column >= 0 ? mark.column + 1 : 0; }
  static int Line(const YAML::Mark& mark) { return MarkLine(mark); }
  static int Column(const YAML::Mark& mark) { return MarkColumn(mark); }

  // yaml-cpp places a null value's mark at the next token (often the next line), so problems with
  // an empty value point at the key instead.
  static YAML::Mark ValueMark(const Entry& entry) {
    return entry.value.IsNull() ? entry.key_mark : entry.value.Mark();
  }

  [[noreturn]] void Fail(const YAML::Mark& mark, const std::string& key,
                         const std::string& problem) const {
    throw ConfigError(file_, key, Line(mark), Column(mark), problem);
  }
  [[noreturn]] void FailValue(const Entry& entry, const std::string& problem) const {
    Fail(ValueMark(entry), entry.key, problem);
  }

  // Walks one map, rejecting unknown, duplicate and non-string keys, and calls each field's
  // handler in file order.
  void ReadMap(const YAML::Node& map, const std::string& prefix, const std::vector<Field>& fields) {
    std::vector<std::pair<std::string, int>> seen;
    for (auto it = map.begin(); it != map.end(); ++it) {
      // By value: yaml-cpp's iterator hands out a temporary proxy, so a reference would dangle.
      const YAML::Node key_node = it->first;
      const YAML::Node value = it->second;
      if (!key_node.IsScalar()) {
        Fail(key_node.Mark(), prefix.empty() ? std::string("(top level)") : prefix,
             "keys must be plain names, got " + DescribeKind(key_node));
      }
      const std::string& name = key_node.Scalar();
      std::string dotted = prefix;
      if (!dotted.empty()) dotted += '.';
      dotted += name;
      for (const auto& [seen_name, seen_line] : seen) {
        if (seen_name == name) {
          Fail(key_node.Mark(), dotted,
               "duplicate key (first set on line " + std::to_string(seen_line) + ")");
        }
      }
      seen.emplace_back(name, Line(key_node.Mark()));
      const Field* field = nullptr;
      for (const Field& candidate : fields) {
        if (candidate.name == name) field = &candidate;
      }
      if (field == nullptr) Fail(key_node.Mark(), dotted, UnknownKeyProblem(name, fields));
      field->apply(Entry{dotted, key_node.Mark(), value});
    }
  }

  static std::string UnknownKeyProblem(const std::string& name, const std::vector<Field>& fields) {
    std::string problem = "unknown key";
    const Field* closest = nullptr;
    std::size_t best = 3;  // suggest only near misses: a typo, or a longer or shorter form
    for (const Field& field : fields) {
      const bool prefix = name.size() >= 3 && (name.rfind(field.name, 0) == 0 ||
                                               std::string_view(field.name).rfind(name, 0) == 0);
      const std::size_t distance = prefix ? 0 : EditDistance(name, field.name);
      if (distance < best) {
        best = distance;
        closest = &field;
      }
    }
    if (closest != nullptr) problem += " (did you mean " + std::string(closest->name) + "?)";
    problem += "; known keys here: ";
    for (std::size_t i = 0; i < fields.size(); ++i) {
      if (i > 0) problem += ", ";
      problem += fields[i].name;
    }
    return problem;
  }

  // A section may be empty ("postgrid:" with every key commented out): that means all defaults.
  void Section(const Entry& entry, const std::vector<Field>& fields) {
    if (entry.value.IsNull()) return;
    if (!entry.value.IsMap()) FailValue(entry, "expected a map, got " + DescribeKind(entry.value));
    ReadMap(entry.value, entry.key, fields);
  }

  // The scalar's text. `what` names the expected type for the error ("a string", "a duration").
  // Never puts the value into a message, so it is safe for secrets.
  [[nodiscard]] std::string Scalar(const Entry& entry, std::string_view what) const {
    if (!entry.value.IsScalar()) {
      FailValue(entry, "expected " + std::string(what) + ", got " + DescribeKind(entry.value));
    }
    return entry.value.Scalar();
  }

  [[nodiscard]] std::string NonEmptyString(const Entry& entry) const {
    std::string text = Scalar(entry, "a string");
    if (text.empty()) FailValue(entry, "must not be empty");
    return text;
  }

  [[nodiscard]] long long Integer(const Entry& entry, long long min, long long max) const {
    const std::string text = Scalar(entry, "an integer");
    if (!IsPlainScalar(entry.value)) {
      FailValue(entry,
                "expected an integer, got the string " + Quoted(text) + " (drop the quotes)");
    }
    long long value = 0;
    const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (ec != std::errc() || end != text.data() + text.size()) {
      FailValue(entry, "expected an integer, got " + Quoted(text));
    }
    if (value < min || value > max) {
      FailValue(entry, "out of range: " + text + " (allowed " + std::to_string(min) + ".." +
                           std::to_string(max) + ")");
    }
    return value;
  }

  [[nodiscard]] double Number(const Entry& entry, double min, double max) const {
    const std::string text = Scalar(entry, "a number");
    if (!IsPlainScalar(entry.value)) {
      FailValue(entry, "expected a number, got the string " + Quoted(text) + " (drop the quotes)");
    }
    double value = 0;
    const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (ec != std::errc() || end != text.data() + text.size() || !std::isfinite(value)) {
      FailValue(entry, "expected a number, got " + Quoted(text));
    }
    if (value < min || value > max) {
      FailValue(entry, "out of range: " + text + " (allowed " + FormatNumber(min) + ".." +
                           FormatNumber(max) + ")");
    }
    return value;
  }

  [[nodiscard]] Duration DurationValue(const Entry& entry, bool zero_allowed) const {
    const std::string text = Scalar(entry, "a duration such as 500ms, 2s, 15m, 1h or 14d");
    Duration value{};
    try {
      value = ParseDuration(text);
    } catch (const std::invalid_argument& e) {
      FailValue(entry, e.what());
    }
    if (value == Duration::zero() && !zero_allowed) {
      FailValue(entry, "must be greater than 0");
    }
    return value;
  }

  [[nodiscard]] std::size_t SizeValue(const Entry& entry, std::size_t min, std::size_t max) const {
    const std::string text = Scalar(entry, "a size such as 512KiB or 1MiB");
    std::size_t value = 0;
    try {
      value = ParseSize(text);
    } catch (const std::invalid_argument& e) {
      FailValue(entry, e.what());
    }
    if (value < min || value > max) {
      FailValue(entry, "out of range: " + text + " (allowed " + FormatSize(min) + ".." +
                           FormatSize(max) + ")");
    }
    return value;
  }

  [[nodiscard]] HostPort ListenValue(const Entry& entry) const {
    const std::string text = Scalar(entry, "host:port");
    const auto bad = [&](const std::string& why) {
      FailValue(entry, "invalid listen address " + Quoted(text) + ": " + why +
                           " (write host:port, e.g. 127.0.0.1:8080 or [::1]:8080)");
    };
    HostPort result;
    std::string_view port_text;
    if (!text.empty() && text.front() == '[') {
      const auto close = text.find(']');
      if (close == std::string::npos) bad("missing ']'");
      result.host = text.substr(1, close - 1);
      if (result.host.empty() || result.host.find(':') == std::string::npos) {
        bad("brackets are for IPv6 addresses");
      }
      if (close + 1 >= text.size() || text[close + 1] != ':') bad("missing :port");
      port_text = std::string_view(text).substr(close + 2);
      for (char c : result.host) {
        if (!(std::isxdigit(static_cast<unsigned char>(c)) || c == ':' || c == '.')) {
          bad("not an IPv6 address");
        }
      }
    } else {
      const auto colon = text.rfind(':');
      if (colon == std::string::npos) bad("missing :port");
      result.host = text.substr(0, colon);
      if (result.host.find(':') != std::string::npos) bad("IPv6 addresses need brackets");
      if (result.host.empty()) bad("missing host");
      for (char c : result.host) {
        if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '-')) {
          bad("invalid character in host");
        }
      }
      port_text = std::string_view(text).substr(colon + 1);
    }
    unsigned long port = 0;
    const auto [end, ec] =
        std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
    if (port_text.empty() || ec != std::errc() || end != port_text.data() + port_text.size() ||
        port > 65535) {
      bad("port must be a number 0..65535");
    }
    result.port = static_cast<std::uint16_t>(port);
    return result;
  }

  // Returns the entries of a list, failing on a non-list; null entries are reported by position.
  [[nodiscard]] std::vector<Entry> ListEntries(const Entry& entry, std::string_view what) const {
    if (!entry.value.IsSequence()) {
      FailValue(entry,
                "expected a list of " + std::string(what) + ", got " + DescribeKind(entry.value));
    }
    std::vector<Entry> items;
    std::size_t index = 0;
    for (const auto& item : entry.value) {
      ++index;
      Entry item_entry{entry.key, entry.key_mark, item};
      if (item.IsNull()) {
        // A null item's own mark is unreliable (see ValueMark); name the entry instead.
        Fail(entry.key_mark, entry.key, "entry " + std::to_string(index) + " is empty");
      }
      if (!item.IsScalar()) {
        FailValue(item_entry, "entry " + std::to_string(index) + ": expected " + std::string(what) +
                                  ", got " + DescribeKind(item));
      }
      items.push_back(std::move(item_entry));
    }
    return items;
  }

  void LoadRoot(const YAML::Node& root) {
    ReadMap(root, "",
            {
                {"postgrid", [this](const Entry& e) { Section(e, PostgridFields()); }},
                {"database", [this](const Entry& e) { Section(e, DatabaseFields()); }},
                {"poll", [this](const Entry& e) { Section(e, PollFields()); }},
                {"webhook", [this](const Entry& e) { Section(e, WebhookFields()); }},
                {"metrics", [this](const Entry& e) { Section(e, MetricsFields()); }},
                {"log", [this](const Entry& e) { Section(e, LogFields()); }},
            });
  }

  std::vector<Field> PostgridFields() {
    PostgridConfig& c = config_.postgrid;
    return {
        {"base_url",
         [this, &c](const Entry& e) {
           std::string url = NonEmptyString(e);
           const bool http = url.rfind("http://", 0) == 0;
           const bool https = url.rfind("https://", 0) == 0;
           const std::size_t host_start = https ? 8 : 7;
           if ((!http && !https) || url.size() <= host_start || url[host_start] == '/' ||
               url.find_first_of(" \t") != std::string::npos) {
             FailValue(e, "expected an http:// or https:// URL with a host, got " + Quoted(url));
           }
           while (url.size() > host_start + 1 && url.back() == '/') url.pop_back();
           c.base_url = std::move(url);
         }},
        {"api_key",
         [this, &c](const Entry& e) {
           // Empty means "not here": the key normally comes from the environment file.
           c.api_key = e.value.IsNull() ? std::string() : Scalar(e, "a string");
           if (Trim(c.api_key) != c.api_key) {
             FailValue(e, "must not start or end with whitespace");
           }
         }},
        {"order_types",
         [this, &c](const Entry& e) {
           std::vector<domain::OrderType> types;
           std::size_t index = 0;
           for (const Entry& item : ListEntries(e, "order types")) {
             ++index;
             const std::string name = item.value.Scalar();
             const auto type = domain::OrderTypeFromEndpoint(name);
             if (!type) {
               FailValue(item, "entry " + std::to_string(index) + ": unknown order type " +
                                   Quoted(name) + " (known: " + OrderTypeList() + ")");
             }
             if (std::find(types.begin(), types.end(), *type) != types.end()) {
               FailValue(item, "entry " + std::to_string(index) + ": " + Quoted(name) +
                                   " is listed twice");
             }
             types.push_back(*type);
           }
           if (types.empty()) FailValue(e, "must list at least one order type");
           c.order_types = std::move(types);
         }},
        {"requests_per_second",
         [this, &c](const Entry& e) {  // Bounded both ways: the rate limiter turns 1/rate into a
                                       // clock duration, which must not
           // overflow.
           c.requests_per_second = Number(e, 0.001, 1e6);
         }},
        {"max_concurrency",
         [this, &c](const Entry& e) { c.max_concurrency = static_cast<int>(Integer(e, 1, 256)); }},
        {"timeout", [this, &c](const Entry& e) { c.timeout = DurationValue(e, false); }},
    };
  }

  static std::string OrderTypeList() {
    std::string list;
    for (domain::OrderType type : domain::kAllOrderTypes) {
      if (!list.empty()) list += ", ";
      list += domain::EndpointName(type);
    }
    return list;
  }

  std::vector<Field> DatabaseFields() {
    return {
        // The URL may hold a password: NonEmptyString never echoes the value.
        {"url", [this](const Entry& e) { config_.database.url = NonEmptyString(e); }},
    };
  }

  std::vector<Field> PollFields() {
    PollConfig& c = config_.poll;
    return {
        {"interval", [this, &c](const Entry& e) { c.interval = DurationValue(e, false); }},
        {"carrier_interval",
         [this, &c](const Entry& e) { c.carrier_interval = DurationValue(e, true); }},
        {"discovery_interval",
         [this, &c](const Entry& e) { c.discovery_interval = DurationValue(e, false); }},
        {"full_scan_interval",
         [this, &c](const Entry& e) { c.full_scan_interval = DurationValue(e, false); }},
        {"completed_grace",
         [this, &c](const Entry& e) { c.completed_grace = DurationValue(e, false); }},
    };
  }

  std::vector<Field> WebhookFields() {
    WebhookConfig& c = config_.webhook;
    return {
        {"listen",
         [this, &c](const Entry& e) {
           c.listen = ListenValue(e);
           webhook_listen_mark_ = e.key_mark;
         }},
        {"path",
         [this, &c](const Entry& e) {
           std::string path = NonEmptyString(e);
           if (path.front() != '/' || path.find_first_of(" \t?#") != std::string::npos) {
             FailValue(e, "expected a URL path starting with '/' (no spaces, '?' or '#'), got " +
                              Quoted(path));
           }
           c.path = std::move(path);
         }},
        {"secrets",
         [this, &c](const Entry& e) {
           std::vector<std::string> secrets;
           std::size_t index = 0;
           for (const Entry& item : ListEntries(e, "strings")) {
             ++index;
             const std::string& secret = item.value.Scalar();
             if (secret.empty()) FailValue(item, "entry " + std::to_string(index) + " is empty");
             if (Trim(secret) != secret) {
               FailValue(item, "entry " + std::to_string(index) +
                                   " must not start or end with whitespace");
             }
             secrets.push_back(secret);
           }
           c.secrets = std::move(secrets);
         }},
        {"max_age", [this, &c](const Entry& e) { c.max_age = DurationValue(e, false); }},
        {"max_body",
         [this, &c](const Entry& e) { c.max_body = SizeValue(e, 1, std::size_t{1} << 30); }},
    };
  }

  std::vector<Field> MetricsFields() {
    return {
        {"listen",
         [this](const Entry& e) {
           config_.metrics.listen = ListenValue(e);
           metrics_listen_mark_ = e.key_mark;
         }},
    };
  }

  std::vector<Field> LogFields() {
    return {
        {"level",
         [this](const Entry& e) {
           const std::string text = Scalar(e, "a log level");
           for (LogLevel level : {LogLevel::kTrace, LogLevel::kDebug, LogLevel::kInfo,
                                  LogLevel::kWarn, LogLevel::kError}) {
             if (LogLevelName(level) == text) {
               config_.log.level = level;
               return;
             }
           }
           FailValue(e, "unknown log level " + Quoted(text) +
                            " (use trace, debug, info, warn or "
                            "error)");
         }},
        {"format",
         [this](const Entry& e) {
           const std::string text = Scalar(e, "a log format");
           if (text == "text") {
             config_.log.format = LogFormat::kText;
           } else if (text == "json") {
             config_.log.format = LogFormat::kJson;
           } else {
             FailValue(e, "unknown log format " + Quoted(text) + " (use text or json)");
           }
         }},
    };
  }

  [[nodiscard]] std::optional<std::string> Env(std::string_view name) const {
    if (!env_) return std::nullopt;
    auto value = env_(std::string(name).c_str());
    if (!value || value->empty()) return std::nullopt;  // empty = not set (EnvironmentFile habit)
    return value;
  }

  void FailEnv(const std::string& key, std::string_view variable, const std::string& problem) {
    throw ConfigError(file_, key, 0, 0, std::string(variable) + ": " + problem);
  }

  void ApplyEnv() {
    if (auto key = Env(kApiKeyEnv)) {
      if (Trim(*key) != *key)
        FailEnv("postgrid.api_key", kApiKeyEnv,
                "must not start or end "
                "with whitespace");
      config_.postgrid.api_key = std::move(*key);
    }
    if (auto url = Env(kDatabaseUrlEnv)) config_.database.url = std::move(*url);
    if (auto secrets = Env(kWebhookSecretsEnv)) {
      std::vector<std::string> parsed;
      std::string_view rest = *secrets;
      for (std::size_t index = 1;; ++index) {
        const auto comma = rest.find(',');
        const std::string_view entry = Trim(rest.substr(0, comma));
        if (entry.empty()) {
          FailEnv(
              "webhook.secrets", kWebhookSecretsEnv,
              "entry " + std::to_string(index) + " is empty (expected comma-separated secrets)");
        }
        parsed.emplace_back(entry);
        if (comma == std::string_view::npos) break;
        rest.remove_prefix(comma + 1);
      }
      config_.webhook.secrets = std::move(parsed);
    }
  }

  void CrossCheck() {
    const HostPort& webhook = config_.webhook.listen;
    const HostPort& metrics = config_.metrics.listen;
    if (webhook == metrics && webhook.port != 0) {
      const YAML::Mark mark =
          metrics_listen_mark_.line >= 0 ? metrics_listen_mark_ : webhook_listen_mark_;
      Fail(mark, "metrics.listen",
           "same address as webhook.listen (" + FormatHostPort(webhook) + ")");
    }
  }

  std::string file_;
  const EnvLookup& env_;
  Config config_;
  YAML::Mark webhook_listen_mark_ = YAML::Mark::null_mark();
  YAML::Mark metrics_listen_mark_ = YAML::Mark::null_mark();
};

// "FILE:LINE:COL: " (or "FILE: " without a position): the prefix of every ConfigError message.
std::string FormatLocation(const std::string& file, int line, int column) {
  std::string text = file;
  if (line > 0) {
    text += ":" + std::to_string(line);
    if (column > 0) text += ":" + std::to_string(column);
  }
  return text + ": ";
}

}  // namespace

ConfigError::ConfigError(std::string file, std::string key, int line, int column,
                         std::string problem)
    : std::runtime_error(FormatLocation(file, line, column) + (key.empty() ? "" : key + ": ") +
                         problem),
      file_(std::move(file)),
      key_(std::move(key)),
      line_(line),
      column_(column),
      problem_(std::move(problem)) {}

std::optional<std::string> GetEnv(const char* name) {
  // NOLINTNEXTLINE(concurrency-mt-unsafe): nothing in mailtrail calls setenv after start-up.
  const char* value = std::getenv(name);
  if (value == nullptr) return std::nullopt;
  return std::string(value);
}

Config LoadConfigFromString(std::string_view yaml, std::string_view display_name,
                            const EnvLookup& env) {
  return Loader(std::string(display_name), env).Load(yaml);
}

Config LoadConfig(const std::filesystem::path& file, const EnvLookup& env) {
  const std::string name = file.string();
  std::error_code ec;
  if (std::filesystem::is_directory(file, ec)) {
    throw ConfigError(name, "", 0, 0, "cannot read the config file: it is a directory");
  }
  std::ifstream in(file, std::ios::binary);
  if (!in) {
    const int error = errno;
    throw ConfigError(name, "", 0, 0,
                      "cannot read the config file: " +
                          (error != 0 ? std::generic_category().message(error) : "open failed"));
  }
  std::ostringstream content;
  content << in.rdbuf();
  if (in.bad()) throw ConfigError(name, "", 0, 0, "cannot read the config file: read error");
  return LoadConfigFromString(content.str(), name, env);
}

void Require(const Config& config, std::initializer_list<Requirement> requirements) {
  for (Requirement requirement : requirements) {
    switch (requirement) {
      case Requirement::kDatabase:
        if (config.database.url.empty()) {
          throw ConfigError(config.source_path, "database.url", 0, 0,
                            "required; set it in the file or via " + std::string(kDatabaseUrlEnv));
        }
        break;
      case Requirement::kApi:
        if (config.postgrid.api_key.empty()) {
          throw ConfigError(config.source_path, "postgrid.api_key", 0, 0,
                            "required by this command; set " + std::string(kApiKeyEnv) +
                                " (e.g. in the service's environment file) or the key in the file");
        }
        break;
      case Requirement::kWebhook:
        if (config.webhook.secrets.empty()) {
          throw ConfigError(config.source_path, "webhook.secrets", 0, 0,
                            "at least one secret is required to accept webhooks; set " +
                                std::string(kWebhookSecretsEnv) +
                                " (comma-separated) or list them in the file");
        }
        break;
    }
  }
}

std::string_view LogLevelName(LogLevel level) {
  switch (level) {
    case LogLevel::kTrace:
      return "trace";
    case LogLevel::kDebug:
      return "debug";
    case LogLevel::kInfo:
      return "info";
    case LogLevel::kWarn:
      return "warn";
    case LogLevel::kError:
      return "error";
  }
  return "info";
}

std::string_view LogFormatName(LogFormat format) {
  return format == LogFormat::kJson ? "json" : "text";
}

std::string FormatHostPort(const HostPort& address) {
  const bool ipv6 = address.host.find(':') != std::string::npos;
  return (ipv6 ? "[" + address.host + "]" : address.host) + ":" + std::to_string(address.port);
}

}  // namespace mailtrail::config
