#include "config/config.hpp"

#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>
#include <yaml-cpp/yaml.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "config_printer.hpp"

namespace mailtrail::config {
namespace {

using std::chrono::hours;
using std::chrono::milliseconds;
using std::chrono::minutes;
using std::chrono::seconds;

constexpr char kName[] = "test.yaml";

}  // namespace

namespace {

// An environment with nothing set, so the tests never see the machine's variables.
std::optional<std::string> NoEnv(const char* /*name*/) { return std::nullopt; }

EnvLookup FakeEnv(std::map<std::string, std::string> values) {
  return [values = std::move(values)](const char* name) -> std::optional<std::string> {
    const auto it = values.find(name);
    if (it == values.end()) return std::nullopt;
    return it->second;
  };
}

Config Defaults() {
  Config config;
  config.source_path = kName;
  return config;
}

Config Load(const std::string& yaml, const EnvLookup& env = NoEnv) {
  return LoadConfigFromString(yaml, kName, env);
}

TEST(ConfigDefaultsTest, MatchTheContract) {
  const Config c;
  EXPECT_EQ(c.postgrid.base_url, "https://api.postgrid.com/print-mail/v1");
  EXPECT_EQ(c.postgrid.api_key, "");
  const std::vector<domain::OrderType> all_types = {domain::OrderType::kLetter,
                                                    domain::OrderType::kPostcard,
                                                    domain::OrderType::kCheque,
                                                    domain::OrderType::kSelfMailer,
                                                    domain::OrderType::kBox,
                                                    domain::OrderType::kSnapPack,
                                                    domain::OrderType::kReturnEnvelopeOrder};
  EXPECT_EQ(c.postgrid.order_types, all_types);
  EXPECT_EQ(c.postgrid.requests_per_second, 50);
  EXPECT_EQ(c.postgrid.max_concurrency, 8);
  EXPECT_EQ(c.postgrid.timeout, seconds(10));
  EXPECT_EQ(c.database.url, "postgresql://mailtrail@/mailtrail");
  EXPECT_EQ(c.poll.interval, hours(1));
  EXPECT_EQ(c.poll.carrier_interval, hours(6));
  EXPECT_EQ(c.poll.discovery_interval, minutes(5));
  EXPECT_EQ(c.poll.full_scan_interval, hours(24));
  EXPECT_EQ(c.poll.completed_grace, hours(14 * 24));
  EXPECT_EQ(c.webhook.listen, (HostPort{"127.0.0.1", 8080}));
  EXPECT_EQ(c.webhook.path, "/webhooks/postgrid");
  EXPECT_TRUE(c.webhook.secrets.empty());
  EXPECT_EQ(c.webhook.max_age, minutes(10));
  EXPECT_EQ(c.webhook.max_body, 1024u * 1024u);
  EXPECT_EQ(c.metrics.listen, (HostPort{"127.0.0.1", 9464}));
  EXPECT_EQ(c.log.level, LogLevel::kInfo);
  EXPECT_EQ(c.log.format, LogFormat::kText);
}

struct GoodCase {
  std::string name;
  std::string yaml;
  std::function<void(Config&)> expect;  // applied to the defaults to get the expected config
};

TEST(LoadConfigTest, GoodInputs) {
  const GoodCase cases[] = {
      {"empty map", "{}\n", [](Config&) {}},
      {"empty sections", "postgrid:\ndatabase:\npoll:\nwebhook:\nmetrics:\nlog:\n", [](Config&) {}},
      {"comments and an explicit document start", "# mailtrail\n---\npoll: {}  # nothing\n",
       [](Config&) {}},
      {"every key",
       "postgrid:\n"
       "  base_url: http://127.0.0.1:4010/print-mail/v1/\n"
       "  api_key: test_sk_abc\n"
       "  order_types: [letters, return_envelope_orders]\n"
       "  requests_per_second: 2.5\n"
       "  max_concurrency: 256\n"
       "  timeout: 500ms\n"
       "database:\n"
       "  url: postgresql://u:p@localhost:5433/db\n"
       "poll:\n"
       "  interval: 1s\n"
       "  carrier_interval: 0\n"
       "  discovery_interval: 2s\n"
       "  full_scan_interval: 1m\n"
       "  completed_grace: 3d\n"
       "webhook:\n"
       "  listen: '[::1]:0'\n"
       "  path: /hook\n"
       "  secrets:\n"
       "    - whsec_one\n"
       "    - \"whsec_two\"\n"
       "  max_age: 30s\n"
       "  max_body: 64KiB\n"
       "metrics:\n"
       "  listen: localhost:65535\n"
       "log:\n"
       "  level: trace\n"
       "  format: json\n",
       [](Config& c) {
         c.postgrid.base_url = "http://127.0.0.1:4010/print-mail/v1";  // trailing '/' stripped
         c.postgrid.api_key = "test_sk_abc";
         c.postgrid.order_types = {domain::OrderType::kLetter,
                                   domain::OrderType::kReturnEnvelopeOrder};
         c.postgrid.requests_per_second = 2.5;
         c.postgrid.max_concurrency = 256;
         c.postgrid.timeout = milliseconds(500);
         c.database.url = "postgresql://u:p@localhost:5433/db";
         c.poll = {seconds(1), Duration::zero(), seconds(2), minutes(1), hours(72)};
         c.webhook.listen = {"::1", 0};
         c.webhook.path = "/hook";
         c.webhook.secrets = {"whsec_one", "whsec_two"};
         c.webhook.max_age = seconds(30);
         c.webhook.max_body = 64 * 1024;
         c.metrics.listen = {"localhost", 65535};
         c.log = {LogLevel::kTrace, LogFormat::kJson};
       }},
      {"quoted durations and sizes", "postgrid: {timeout: \"2s\"}\nwebhook: {max_body: '1B'}\n",
       [](Config& c) {
         c.postgrid.timeout = seconds(2);
         c.webhook.max_body = 1;
       }},
      {"largest integer rate", "postgrid: {requests_per_second: 1000000}\n",
       [](Config& c) { c.postgrid.requests_per_second = 1e6; }},
      {"smallest rate and concurrency",
       "postgrid:\n  requests_per_second: 0.001\n  max_concurrency: 1\n",
       [](Config& c) {
         c.postgrid.requests_per_second = 0.001;
         c.postgrid.max_concurrency = 1;
       }},
      {"block list of order types", "postgrid:\n  order_types:\n    - boxes\n    - snap_packs\n",
       [](Config& c) {
         c.postgrid.order_types = {domain::OrderType::kBox, domain::OrderType::kSnapPack};
       }},
      {"empty api key and no secrets", "postgrid: {api_key: ''}\nwebhook: {secrets: []}\n",
       [](Config&) {}},
      {"null api key", "postgrid:\n  api_key:\n", [](Config&) {}},
      {"every log level", "log: {level: warn}\n", [](Config& c) { c.log.level = LogLevel::kWarn; }},
      {"port 0 on both listeners",
       "webhook: {listen: '127.0.0.1:0'}\nmetrics: {listen: '127.0.0.1:0'}\n",
       [](Config& c) {
         c.webhook.listen.port = 0;
         c.metrics.listen.port = 0;
       }},
      {"https base url with only a host", "postgrid: {base_url: 'https://h/'}\n",
       [](Config& c) { c.postgrid.base_url = "https://h"; }},
      {"key=value database DSN", "database: {url: 'host=/tmp dbname=m password=x'}\n",
       [](Config& c) { c.database.url = "host=/tmp dbname=m password=x"; }},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    Config expected = Defaults();
    c.expect(expected);
    try {
      EXPECT_EQ(Load(c.yaml), expected);
    } catch (const ConfigError& e) {
      ADD_FAILURE() << "unexpected error: " << e.what();
    }
  }
}

struct BadCase {
  std::string name;
  std::string yaml;
  std::string message;  // the exact what()
};

TEST(LoadConfigTest, BadInputsNameFileLineAndKey) {
  const BadCase cases[] = {
      {"empty file", "",
       "test.yaml: the file is empty; expected a YAML map with the sections "
       "postgrid, database, poll, webhook, metrics, log"},
      {"only comments", "# nothing here\n",
       "test.yaml: the file is empty; expected a YAML map with the sections postgrid, database, "
       "poll, webhook, metrics, log"},
      {"a list document", "- postgrid\n",
       "test.yaml:1:1: expected a YAML map at the top level, got a list"},
      {"a scalar document", "hello\n",
       "test.yaml:1:1: expected a YAML map at the top level, got a scalar"},
      // yaml-cpp 0.7's LoadAll never returns on this one (fuzz/regressions/config).
      {"leading comma before a flow map", ",{a",
       "test.yaml:1:1: expected one YAML document, found more than one"},
      {"two documents", "poll: {}\n---\nlog: {}\n",
       "test.yaml:2:1: expected one YAML document, found more than one"},  // at the ---
      {"malformed flow list", "postgrid:\n  order_types: [letters\n",
       "test.yaml:3:1: malformed YAML: end of sequence flow not found"},
      {"bad indentation", "postgrid:\n  timeout: 1s\n   max_concurrency: 2\n",
       "test.yaml:3:19: malformed YAML: illegal map value"},
      {"tab indentation", "poll:\n\tinterval: 1h\n",
       "test.yaml:2:10: malformed YAML: illegal map value"},
      {"nested too deeply", "poll: " + std::string(600, '[') + std::string(600, ']') + "\n",
       "test.yaml:1:1207: malformed YAML: nested too deeply"},
      {"alias cycle", "postgrid:\n  order_types: &b [letters, *b]\n",
       "test.yaml:2:16: postgrid.order_types: entry 2: expected order types, got a list"},
      {"merge keys are not supported", "base: &b {level: info}\nlog:\n  <<: *b\n",
       "test.yaml:1:1: base: unknown key; known keys here: postgrid, database, poll, webhook, "
       "metrics, log"},
      {"control characters are escaped", std::string("poll:\n  interval: \"\\0 1h\"\n"),
       "test.yaml:2:13: poll.interval: invalid duration \"\\x00 1h\": no spaces allowed; write "
       "500ms, 2s, 15m, 1h or 14d"},
      {"long values are cut", "log:\n  level: " + std::string(100, 'v') + "\n",
       "test.yaml:2:10: log.level: unknown log level \"" + std::string(80, 'v') +
           "\"... (use trace, debug, info, warn or error)"},
      {"unknown top-level key", "postgrid: {}\npolling: {}\n",
       "test.yaml:2:1: polling: unknown key (did you mean poll?); known keys here: postgrid, "
       "database, poll, webhook, metrics, log"},
      {"typo in a nested key", "postgrid:\n  timeout: 1s\n  api_kye: x\n",
       "test.yaml:3:3: postgrid.api_kye: unknown key (did you mean api_key?); known keys here: "
       "base_url, api_key, order_types, requests_per_second, max_concurrency, timeout"},
      {"unknown key far from any", "log:\n  colour: true\n",
       "test.yaml:2:3: log.colour: unknown key; known keys here: level, format"},
      {"duplicate key", "poll:\n  interval: 1h\n  interval: 2h\n",
       "test.yaml:3:3: poll.interval: duplicate key (first set on line 2)"},
      {"duplicate section", "log: {}\nlog: {}\n",
       "test.yaml:2:1: log: duplicate key (first set on line 1)"},
      {"complex key", "? [a]\n: 1\n",
       "test.yaml:1:3: (top level): keys must be plain names, got a list"},
      {"section is a scalar", "webhook: yes\n",
       "test.yaml:1:10: webhook: expected a map, got a "
       "scalar"},
      {"section is a list", "metrics:\n  - listen\n",
       "test.yaml:2:3: metrics: expected a map, got a list"},
      {"string for an integer", "postgrid:\n  max_concurrency: \"8\"\n",
       "test.yaml:2:20: postgrid.max_concurrency: expected an integer, got the string \"8\" (drop "
       "the quotes)"},
      {"word for an integer", "postgrid:\n  max_concurrency: eight\n",
       "test.yaml:2:20: postgrid.max_concurrency: expected an integer, got \"eight\""},
      {"fraction for an integer", "postgrid:\n  max_concurrency: 2.5\n",
       "test.yaml:2:20: postgrid.max_concurrency: expected an integer, got \"2.5\""},
      {"map for an integer", "postgrid:\n  max_concurrency: {a: 1}\n",
       "test.yaml:2:20: postgrid.max_concurrency: expected an integer, got a map"},
      {"concurrency 0", "postgrid:\n  max_concurrency: 0\n",
       "test.yaml:2:20: postgrid.max_concurrency: out of range: 0 (allowed 1..256)"},
      {"concurrency 257", "postgrid:\n  max_concurrency: 257\n",
       "test.yaml:2:20: postgrid.max_concurrency: out of range: 257 (allowed 1..256)"},
      {"concurrency overflow", "postgrid:\n  max_concurrency: 99999999999999999999\n",
       "test.yaml:2:20: postgrid.max_concurrency: expected an integer, got "
       "\"99999999999999999999\""},
      {"rate 0", "postgrid:\n  requests_per_second: 0\n",
       "test.yaml:2:24: postgrid.requests_per_second: out of range: 0 (allowed 0.001..1e+06)"},
      {"rate too small", "postgrid:\n  requests_per_second: 1e-300\n",
       "test.yaml:2:24: postgrid.requests_per_second: out of range: 1e-300 (allowed 0.001..1e+06)"},
      {"rate too large", "postgrid:\n  requests_per_second: 1000001\n",
       "test.yaml:2:24: postgrid.requests_per_second: out of range: 1000001 (allowed "
       "0.001..1e+06)"},
      {"negative rate", "postgrid:\n  requests_per_second: -5\n",
       "test.yaml:2:24: postgrid.requests_per_second: out of range: -5 (allowed 0.001..1e+06)"},
      {"infinite rate", "postgrid:\n  requests_per_second: .inf\n",
       "test.yaml:2:24: postgrid.requests_per_second: expected a number, got \".inf\""},
      {"nan rate", "postgrid:\n  requests_per_second: nan\n",
       "test.yaml:2:24: postgrid.requests_per_second: expected a number, got \"nan\""},
      {"quoted rate", "postgrid:\n  requests_per_second: '50'\n",
       "test.yaml:2:24: postgrid.requests_per_second: expected a number, got the string \"50\" "
       "(drop the quotes)"},
      {"null timeout", "postgrid:\n  timeout:\n  max_concurrency: 2\n",
       "test.yaml:2:3: postgrid.timeout: expected a duration such as 500ms, 2s, 15m, 1h or 14d, "
       "got nothing"},
      {"duration without unit", "postgrid:\n  timeout: 10\n",
       "test.yaml:2:12: postgrid.timeout: invalid duration \"10\": missing unit (d, h, m, s, ms), "
       "e.g. 500ms, 2s, 15m, 1h or 14d"},
      {"zero timeout", "postgrid:\n  timeout: 0s\n",
       "test.yaml:2:12: postgrid.timeout: must be greater than 0"},
      {"zero poll interval", "poll:\n  interval: 0\n",
       "test.yaml:2:13: poll.interval: must be greater than 0"},
      {"zero grace", "poll: {completed_grace: 0d}\n",
       "test.yaml:1:25: poll.completed_grace: must be greater than 0"},
      {"negative duration", "poll:\n  carrier_interval: -1h\n",
       "test.yaml:2:21: poll.carrier_interval: invalid duration \"-1h\": negative values are not "
       "allowed"},
      {"unknown duration unit", "webhook:\n  max_age: 10min\n",
       "test.yaml:2:12: webhook.max_age: invalid duration \"10min\": unknown unit \"min\" (use d, "
       "h, m, s, ms)"},
      {"duration list", "poll:\n  interval: [1h]\n",
       "test.yaml:2:13: poll.interval: expected a duration such as 500ms, 2s, 15m, 1h or 14d, got "
       "a list"},
      {"size without unit", "webhook:\n  max_body: 1048576\n",
       "test.yaml:2:13: webhook.max_body: invalid size \"1048576\": missing unit (GiB, MiB, KiB, "
       "GB, MB, KB, B), e.g. 64B, 512KiB or 1MiB"},
      {"size zero", "webhook:\n  max_body: 0B\n",
       "test.yaml:2:13: webhook.max_body: out of range: 0B (allowed 1B..1GiB)"},
      {"size too big", "webhook:\n  max_body: 2GiB\n",
       "test.yaml:2:13: webhook.max_body: out of range: 2GiB (allowed 1B..1GiB)"},
      {"order_types not a list", "postgrid:\n  order_types: letters\n",
       "test.yaml:2:16: postgrid.order_types: expected a list of order types, got a scalar"},
      {"unknown order type", "postgrid:\n  order_types: [letters, flyers]\n",
       "test.yaml:2:26: postgrid.order_types: entry 2: unknown order type \"flyers\" (known: "
       "letters, postcards, cheques, self_mailers, boxes, snap_packs, return_envelope_orders)"},
      {"singular order type", "postgrid:\n  order_types:\n    - letter\n",
       "test.yaml:3:7: postgrid.order_types: entry 1: unknown order type \"letter\" (known: "
       "letters, postcards, cheques, self_mailers, boxes, snap_packs, return_envelope_orders)"},
      {"duplicate order type", "postgrid:\n  order_types: [boxes, boxes]\n",
       "test.yaml:2:24: postgrid.order_types: entry 2: \"boxes\" is listed twice"},
      {"empty order types", "postgrid:\n  order_types: []\n",
       "test.yaml:2:16: postgrid.order_types: must list at least one order type"},
      {"nested list in order types", "postgrid:\n  order_types: [[letters]]\n",
       "test.yaml:2:17: postgrid.order_types: entry 1: expected order types, got a list"},
      {"null entry in order types", "postgrid:\n  order_types:\n    - letters\n    -\n",
       "test.yaml:2:3: postgrid.order_types: entry 2 is empty"},
      {"base url without scheme", "postgrid:\n  base_url: api.postgrid.com\n",
       "test.yaml:2:13: postgrid.base_url: expected an http:// or https:// URL with a host, got "
       "\"api.postgrid.com\""},
      {"base url without host", "postgrid:\n  base_url: https:///v1\n",
       "test.yaml:2:13: postgrid.base_url: expected an http:// or https:// URL with a host, got "
       "\"https:///v1\""},
      {"empty base url", "postgrid:\n  base_url: ''\n",
       "test.yaml:2:13: postgrid.base_url: must not be empty"},
      {"api key as a map never echoes it", "postgrid:\n  api_key: {live_sk_secret: 1}\n",
       "test.yaml:2:12: postgrid.api_key: expected a string, got a map"},
      {"api key with a trailing space", "postgrid:\n  api_key: 'live_sk_secret '\n",
       "test.yaml:2:12: postgrid.api_key: must not start or end with whitespace"},
      {"database url as a list", "database:\n  url: [postgresql://u:secret@h/db]\n",
       "test.yaml:2:8: database.url: expected a string, got a list"},
      {"empty database url", "database:\n  url: \"\"\n",
       "test.yaml:2:8: database.url: must not be empty"},
      {"secrets not a list", "webhook:\n  secrets: whsec_secret\n",
       "test.yaml:2:12: webhook.secrets: expected a list of strings, got a scalar"},
      {"empty secret", "webhook:\n  secrets: [whsec_secret, '']\n",
       "test.yaml:2:27: webhook.secrets: entry 2 is empty"},
      {"secret as a map", "webhook:\n  secrets:\n    - {whsec_secret: 1}\n",
       "test.yaml:3:7: webhook.secrets: entry 1: expected strings, got a map"},
      {"listen without port", "webhook:\n  listen: 127.0.0.1\n",
       "test.yaml:2:11: webhook.listen: invalid listen address \"127.0.0.1\": missing :port (write "
       "host:port, e.g. 127.0.0.1:8080 or [::1]:8080)"},
      {"listen port too big", "webhook:\n  listen: 127.0.0.1:65536\n",
       "test.yaml:2:11: webhook.listen: invalid listen address \"127.0.0.1:65536\": port must be a "
       "number 0..65535 (write host:port, e.g. 127.0.0.1:8080 or [::1]:8080)"},
      {"listen negative port", "webhook:\n  listen: 127.0.0.1:-1\n",
       "test.yaml:2:11: webhook.listen: invalid listen address \"127.0.0.1:-1\": port must be a "
       "number 0..65535 (write host:port, e.g. 127.0.0.1:8080 or [::1]:8080)"},
      {"listen empty port", "webhook:\n  listen: '127.0.0.1:'\n",
       "test.yaml:2:11: webhook.listen: invalid listen address \"127.0.0.1:\": port must be a "
       "number 0..65535 (write host:port, e.g. 127.0.0.1:8080 or [::1]:8080)"},
      {"listen without host", "metrics:\n  listen: ':9464'\n",
       "test.yaml:2:11: metrics.listen: invalid listen address \":9464\": missing host (write "
       "host:port, e.g. 127.0.0.1:8080 or [::1]:8080)"},
      {"bare IPv6 listen", "metrics:\n  listen: '::1:9464'\n",
       "test.yaml:2:11: metrics.listen: invalid listen address \"::1:9464\": IPv6 addresses need "
       "brackets (write host:port, e.g. 127.0.0.1:8080 or [::1]:8080)"},
      {"unclosed bracket", "metrics:\n  listen: '[::1:9464'\n",
       "test.yaml:2:11: metrics.listen: invalid listen address \"[::1:9464\": missing ']' (write "
       "host:port, e.g. 127.0.0.1:8080 or [::1]:8080)"},
      {"bracketed IPv4", "metrics:\n  listen: '[127.0.0.1]:9464'\n",
       "test.yaml:2:11: metrics.listen: invalid listen address \"[127.0.0.1]:9464\": brackets are "
       "for IPv6 addresses (write host:port, e.g. 127.0.0.1:8080 or [::1]:8080)"},
      {"listen as a number", "metrics:\n  listen: 9464\n",
       "test.yaml:2:11: metrics.listen: invalid listen address \"9464\": missing :port (write "
       "host:port, e.g. 127.0.0.1:8080 or [::1]:8080)"},
      {"listen with a path", "metrics:\n  listen: 127.0.0.1/x:80\n",
       "test.yaml:2:11: metrics.listen: invalid listen address \"127.0.0.1/x:80\": invalid "
       "character in host (write host:port, e.g. 127.0.0.1:8080 or [::1]:8080)"},
      {"same listen address twice",
       "webhook:\n  listen: 127.0.0.1:9000\nmetrics:\n  listen: 127.0.0.1:9000\n",
       "test.yaml:4:3: metrics.listen: same address as webhook.listen (127.0.0.1:9000)"},
      {"default metrics port for the webhook", "webhook:\n  listen: 127.0.0.1:9464\n",
       "test.yaml:2:3: metrics.listen: same address as webhook.listen (127.0.0.1:9464)"},
      {"webhook path without slash", "webhook:\n  path: webhooks\n",
       "test.yaml:2:9: webhook.path: expected a URL path starting with '/' (no spaces, '?' or "
       "'#'), "
       "got \"webhooks\""},
      {"webhook path with query", "webhook:\n  path: /hook?x=1\n",
       "test.yaml:2:9: webhook.path: expected a URL path starting with '/' (no spaces, '?' or "
       "'#'), "
       "got \"/hook?x=1\""},
      {"unknown log level", "log:\n  level: verbose\n",
       "test.yaml:2:10: log.level: unknown log level \"verbose\" (use trace, debug, info, warn or "
       "error)"},
      {"log level in capitals", "log:\n  level: INFO\n",
       "test.yaml:2:10: log.level: unknown log level \"INFO\" (use trace, debug, info, warn or "
       "error)"},
      {"unknown log format", "log:\n  format: logfmt\n",
       "test.yaml:2:11: log.format: unknown log format \"logfmt\" (use text or json)"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    try {
      Load(c.yaml);
      ADD_FAILURE() << "accepted:\n" << c.yaml;
    } catch (const ConfigError& e) {
      EXPECT_EQ(std::string(e.what()), c.message);
      EXPECT_EQ(e.file(), kName);
      for (const char* secret : {"whsec_secret", "live_sk_secret", "u:secret"}) {
        EXPECT_EQ(std::string(e.what()).find(secret), std::string::npos) << "leaks " << secret;
      }
    } catch (const std::exception& e) {
      ADD_FAILURE() << "not a ConfigError: " << e.what();
    }
  }
}

TEST(LoadConfigTest, ErrorAccessorsCarryThePosition) {
  try {
    Load("log:\n  level: info\n  colour: true\n");
    FAIL() << "accepted an unknown key";
  } catch (const ConfigError& e) {
    EXPECT_EQ(e.file(), "test.yaml");
    EXPECT_EQ(e.key(), "log.colour");
    EXPECT_EQ(e.line(), 3);
    EXPECT_EQ(e.column(), 3);
    EXPECT_EQ(e.problem(), "unknown key; known keys here: level, format");
  }
}

TEST(LoadConfigTest, EnvironmentOverridesTheFile) {
  const std::string yaml =
      "postgrid: {api_key: from_file}\n"
      "database: {url: 'postgresql://file@/db'}\n"
      "webhook: {secrets: [file_secret]}\n";
  const Config config = Load(yaml, FakeEnv({{"MAILTRAIL_POSTGRID_API_KEY", "test_sk_env"},
                                            {"MAILTRAIL_DATABASE_URL", "postgresql://env@/db"},
                                            {"MAILTRAIL_WEBHOOK_SECRETS", " a , b,c "}}));
  EXPECT_EQ(config.postgrid.api_key, "test_sk_env");
  EXPECT_EQ(config.database.url, "postgresql://env@/db");
  EXPECT_EQ(config.webhook.secrets, (std::vector<std::string>{"a", "b", "c"}));

  const Config file_only = Load(yaml);
  EXPECT_EQ(file_only.postgrid.api_key, "from_file");
  EXPECT_EQ(file_only.database.url, "postgresql://file@/db");
  EXPECT_EQ(file_only.webhook.secrets, (std::vector<std::string>{"file_secret"}));
}

TEST(LoadConfigTest, EmptyEnvironmentVariablesOverrideNothing) {
  const Config config =
      Load("postgrid: {api_key: from_file}\n", FakeEnv({{"MAILTRAIL_POSTGRID_API_KEY", ""},
                                                        {"MAILTRAIL_DATABASE_URL", ""},
                                                        {"MAILTRAIL_WEBHOOK_SECRETS", ""}}));
  EXPECT_EQ(config.postgrid.api_key, "from_file");
  EXPECT_EQ(config.database.url, Config().database.url);
  EXPECT_TRUE(config.webhook.secrets.empty());
}

TEST(LoadConfigTest, EnvironmentSecretsRejectEmptyEntries) {
  const std::pair<std::string, std::string> cases[] = {
      {"a,,b",
       "test.yaml: webhook.secrets: MAILTRAIL_WEBHOOK_SECRETS: entry 2 is empty (expected "
       "comma-separated secrets)"},
      {"a,",
       "test.yaml: webhook.secrets: MAILTRAIL_WEBHOOK_SECRETS: entry 2 is empty (expected "
       "comma-separated secrets)"},
      {" ,a",
       "test.yaml: webhook.secrets: MAILTRAIL_WEBHOOK_SECRETS: entry 1 is empty (expected "
       "comma-separated secrets)"},
  };
  for (const auto& [value, message] : cases) {
    try {
      Load("{}\n", FakeEnv({{"MAILTRAIL_WEBHOOK_SECRETS", value}}));
      ADD_FAILURE() << "accepted " << value;
    } catch (const ConfigError& e) {
      EXPECT_EQ(std::string(e.what()), message) << value;
      EXPECT_EQ(e.key(), "webhook.secrets");
      EXPECT_EQ(e.line(), 0);
    }
  }
  try {
    Load("{}\n", FakeEnv({{"MAILTRAIL_POSTGRID_API_KEY", "live_sk_x\n"}}));
    ADD_FAILURE() << "accepted an API key with a newline";
  } catch (const ConfigError& e) {
    EXPECT_EQ(std::string(e.what()),
              "test.yaml: postgrid.api_key: MAILTRAIL_POSTGRID_API_KEY: must not start or end "
              "with whitespace");
  }
}

TEST(LoadConfigTest, EnvironmentCanSupplyWhatTheFileLacks) {
  const Config config = Load(
      "{}\n", FakeEnv({{"MAILTRAIL_POSTGRID_API_KEY", "k"}, {"MAILTRAIL_WEBHOOK_SECRETS", "s1"}}));
  EXPECT_NO_THROW(
      Require(config, {Requirement::kDatabase, Requirement::kApi, Requirement::kWebhook}));
}

TEST(RequireTest, NamesTheMissingKeyAndItsVariable) {
  const Config config = Load("{}\n");
  EXPECT_NO_THROW(Require(config, {Requirement::kDatabase}));
  try {
    Require(config, {Requirement::kDatabase, Requirement::kApi});
    FAIL() << "no api key accepted";
  } catch (const ConfigError& e) {
    EXPECT_EQ(std::string(e.what()),
              "test.yaml: postgrid.api_key: required by this command; set "
              "MAILTRAIL_POSTGRID_API_KEY (e.g. in the service's environment file) or the key in "
              "the file");
  }
  try {
    Require(config, {Requirement::kWebhook});
    FAIL() << "no webhook secret accepted";
  } catch (const ConfigError& e) {
    EXPECT_EQ(std::string(e.what()),
              "test.yaml: webhook.secrets: at least one secret is required to accept webhooks; set "
              "MAILTRAIL_WEBHOOK_SECRETS (comma-separated) or list them in the file");
  }
  Config no_db = config;
  no_db.database.url.clear();
  EXPECT_THROW(Require(no_db, {Requirement::kDatabase}), ConfigError);
}

class TempDir {
 public:
  TempDir() {
    std::string pattern = (std::filesystem::temp_directory_path() / "mailtrail-config-XXXXXX");
    if (::mkdtemp(pattern.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
    path_ = pattern;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

TEST(LoadConfigFileTest, ReadsAFile) {
  TempDir dir;
  const auto file = dir.path() / "m.yaml";
  std::ofstream(file) << "log:\n  level: debug\n";
  const Config config = LoadConfig(file, NoEnv);
  EXPECT_EQ(config.log.level, LogLevel::kDebug);
  EXPECT_EQ(config.source_path, file.string());
}

TEST(LoadConfigFileTest, ErrorsNameTheFile) {
  TempDir dir;
  const auto file = dir.path() / "typo.yaml";
  std::ofstream(file) << "poll:\n  intervall: 1h\n";
  try {
    LoadConfig(file, NoEnv);
    FAIL() << "typo accepted";
  } catch (const ConfigError& e) {
    EXPECT_EQ(std::string(e.what()),
              file.string() +
                  ":2:3: poll.intervall: unknown key (did you mean interval?); known keys here: "
                  "interval, carrier_interval, discovery_interval, full_scan_interval, "
                  "completed_grace");
  }
}

TEST(LoadConfigFileTest, MissingFileAndDirectory) {
  TempDir dir;
  const auto missing = dir.path() / "absent.yaml";
  try {
    LoadConfig(missing, NoEnv);
    FAIL() << "missing file accepted";
  } catch (const ConfigError& e) {
    EXPECT_EQ(std::string(e.what()),
              missing.string() + ": cannot read the config file: No such file or directory");
    EXPECT_EQ(e.file(), missing.string());
  }
  try {
    LoadConfig(dir.path(), NoEnv);
    FAIL() << "directory accepted";
  } catch (const ConfigError& e) {
    EXPECT_EQ(std::string(e.what()),
              dir.path().string() + ": cannot read the config file: it is a directory");
  }
}

TEST(ShippedConfigTest, LoadsAndEqualsTheDefaults) {
  const std::filesystem::path file =
      std::filesystem::path(MAILTRAIL_SOURCE_DIR) / "config" / "mailtrail.yaml";
  Config expected;
  expected.source_path = file.string();
  EXPECT_EQ(LoadConfig(file, NoEnv), expected);
}

TEST(ShippedConfigTest, MentionsEveryKeyAndEnvironmentVariable) {
  const std::filesystem::path file =
      std::filesystem::path(MAILTRAIL_SOURCE_DIR) / "config" / "mailtrail.yaml";
  const YAML::Node root = YAML::LoadFile(file.string());
  const std::map<std::string, std::vector<std::string>> keys = {
      {"postgrid",
       {"base_url", "api_key", "order_types", "requests_per_second", "max_concurrency", "timeout"}},
      {"database", {"url"}},
      {"poll",
       {"interval", "carrier_interval", "discovery_interval", "full_scan_interval",
        "completed_grace"}},
      {"webhook", {"listen", "path", "secrets", "max_age", "max_body"}},
      {"metrics", {"listen"}},
      {"log", {"level", "format"}},
  };
  for (const auto& [section, names] : keys) {
    ASSERT_TRUE(root[section].IsMap()) << section;
    EXPECT_EQ(root[section].size(), names.size()) << section;
    for (const auto& name : names) EXPECT_TRUE(root[section][name]) << section << "." << name;
  }
  std::ifstream in(file);
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  for (const char* variable :
       {"MAILTRAIL_POSTGRID_API_KEY", "MAILTRAIL_DATABASE_URL", "MAILTRAIL_WEBHOOK_SECRETS"}) {
    EXPECT_NE(text.find(variable), std::string::npos) << variable;
  }
}

}  // namespace
}  // namespace mailtrail::config
