#include <gtest/gtest.h>
#include <yaml-cpp/yaml.h>

#include <string>

#include "config/config.hpp"
#include "config_printer.hpp"

namespace mailtrail::config {
namespace {

std::optional<std::string> NoEnv(const char* /*name*/) { return std::nullopt; }

struct RedactCase {
  std::string url;
  std::string expected;
};

TEST(RedactDatabaseUrlTest, HidesEveryPasswordForm) {
  const RedactCase cases[] = {
      {"postgresql://mailtrail@/mailtrail", "postgresql://mailtrail@/mailtrail"},
      {"postgresql://u:hunter2@db.local:5432/m", "postgresql://u:<redacted>@db.local:5432/m"},
      {"postgres://u:hunter2@h/m", "postgres://u:<redacted>@h/m"},
      {"POSTGRESQL://u:hunter2@h/m", "POSTGRESQL://u:<redacted>@h/m"},
      {"postgresql://u:hu@nt/er?2@h/m", "postgresql://u:<redacted>@h/m"},
      {"postgresql://u:@h/m", "postgresql://u:<redacted>@h/m"},
      {"postgresql://h:5432/m", "postgresql://h:5432/m"},
      {"postgresql://u@h:5432/m", "postgresql://u@h:5432/m"},
      {"postgresql:///m?host=/tmp&password=hunter2&sslmode=disable",
       "postgresql:///m?host=/tmp&password=<redacted>&sslmode=disable"},
      {"postgresql://u:pw1@h/m?password=hunter2",
       "postgresql://u:<redacted>@h/m?password=<redacted>"},
      {"host=/tmp dbname=m password=hunter2 user=u",
       "host=/tmp dbname=m password=<redacted> user=u"},
      {"password=hunter2", "password=<redacted>"},
      {"host=h password = hunter2", "host=h password = <redacted>"},
      {"host=h password='hunter 2' user=u", "host=h password=<redacted> user=u"},
      {"host=h password='hun\\'ter2' user=u", "host=h password=<redacted> user=u"},
      {"host=h PASSWORD=hunter2", "host=h PASSWORD=<redacted>"},
      {"host=h passwordfile=x", "host=h passwordfile=x"},
      {"host=h mypassword=x", "host=h mypassword=x"},
  };
  for (const auto& c : cases) {
    EXPECT_EQ(RedactDatabaseUrl(c.url), c.expected) << c.url;
    if (c.url.find("hunter") != std::string::npos) {
      EXPECT_EQ(RedactDatabaseUrl(c.url).find("hunter"), std::string::npos) << c.url;
    }
  }
}

TEST(DescribeRedactedTest, NeverContainsASecret) {
  const char* urls[] = {
      "postgresql://mailtrail:db_pass_9@localhost:5432/mailtrail?sslmode=require",
      "postgresql://mailtrail@localhost/mailtrail?password=db_pass_9",
      "host=localhost dbname=mailtrail user=mailtrail password=db_pass_9",
      "host=localhost password='db_pass_9 with space' dbname=mailtrail",
  };
  for (const char* url : urls) {
    SCOPED_TRACE(url);
    const Config config = LoadConfigFromString(
        "postgrid: {api_key: live_sk_api_secret_1}\n"
        "webhook: {secrets: [whsec_first_secret, whsec_second_secret]}\n",
        "t.yaml", [url](const char* name) -> std::optional<std::string> {
          if (std::string(name) == "MAILTRAIL_DATABASE_URL") return url;
          return std::nullopt;
        });
    ASSERT_EQ(config.database.url, url);
    const std::string text = DescribeRedacted(config);
    for (const char* secret :
         {"live_sk_api_secret_1", "whsec_first_secret", "whsec_second_secret", "db_pass_9"}) {
      EXPECT_EQ(text.find(secret), std::string::npos) << secret << " in:\n" << text;
    }
    const YAML::Node node = YAML::Load(text);
    EXPECT_EQ(node["postgrid"]["api_key"].as<std::string>(), "<redacted>");
    ASSERT_EQ(node["webhook"]["secrets"].size(), 2u);
    EXPECT_EQ(node["webhook"]["secrets"][0].as<std::string>(), "<redacted>");
    EXPECT_NE(node["database"]["url"].as<std::string>().find("<redacted>"), std::string::npos);
  }
}

TEST(DescribeRedactedTest, SaysUnsetForAMissingApiKey) {
  const Config config = LoadConfigFromString("{}\n", "t.yaml", NoEnv);
  const YAML::Node node = YAML::Load(DescribeRedacted(config));
  EXPECT_EQ(node["postgrid"]["api_key"].as<std::string>(), "<unset>");
  EXPECT_EQ(node["webhook"]["secrets"].size(), 0u);
  EXPECT_EQ(node["database"]["url"].as<std::string>(), "postgresql://mailtrail@/mailtrail");
}

// Everything that is not a secret reads back to the same value, so check-config shows the truth.
TEST(DescribeRedactedTest, RendersTheEffectiveValues) {
  const Config config = LoadConfigFromString(
      "postgrid:\n"
      "  base_url: http://127.0.0.1:4010/print-mail/v1\n"
      "  order_types: [cheques, boxes]\n"
      "  requests_per_second: 12.5\n"
      "  max_concurrency: 3\n"
      "  timeout: 1500ms\n"
      "poll: {interval: 2s, carrier_interval: 0, discovery_interval: 90m, "
      "full_scan_interval: 2d, completed_grace: 1d}\n"
      "webhook: {listen: '[::1]:0', path: /h, max_age: 1m, max_body: 3KiB}\n"
      "metrics: {listen: 'localhost:1'}\n"
      "log: {level: error, format: json}\n",
      "t.yaml", NoEnv);
  YAML::Node node = YAML::Load(DescribeRedacted(config));
  node["postgrid"].remove("api_key");
  node["webhook"].remove("secrets");
  YAML::Emitter out;
  out << node;
  EXPECT_EQ(LoadConfigFromString(out.c_str(), "t.yaml", NoEnv), config) << out.c_str();
  EXPECT_EQ(node["poll"]["carrier_interval"].as<std::string>(), "0");
  EXPECT_EQ(node["webhook"]["listen"].as<std::string>(), "[::1]:0");
}

}  // namespace
}  // namespace mailtrail::config
