// Drives the built `mailtrail` binary the way users and the acceptance tests do.
#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>

#include "pg_test_database.hpp"

namespace {

namespace fs = std::filesystem;

struct Result {
  int exit_code = -1;
  std::string output;  // stdout and stderr together
};

Result RunMailtrail(const std::string& args) {
  const std::string command = std::string(MAILTRAIL_BINARY_DIR) + "/mailtrail " + args + " 2>&1";
  Result result;
  FILE* pipe = ::popen(command.c_str(), "r");
  if (pipe == nullptr) throw std::runtime_error("popen failed");
  std::array<char, 4096> buffer{};
  while (std::fgets(buffer.data(), buffer.size(), pipe) != nullptr) result.output += buffer.data();
  const int status = ::pclose(pipe);
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return result;
}

class CliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern = (fs::temp_directory_path() / "mailtrail-cli.XXXXXX").string();
    ASSERT_NE(::mkdtemp(pattern.data()), nullptr);
    dir_ = pattern;
    fs::copy(fs::path(MAILTRAIL_SOURCE_DIR) / "migrations", dir_ / "migrations");
    WriteConfig("database:\n  url: " + database_.dsn() + "\n");
  }
  void TearDown() override { fs::remove_all(dir_); }

  void WriteConfig(const std::string& yaml) { std::ofstream(dir_ / "mailtrail.yaml") << yaml; }
  std::string ConfigArgs() const {
    return "--config " + (dir_ / "mailtrail.yaml").string() + " --migrations " +
           (dir_ / "migrations").string();
  }

  mailtrail::testing::TestDatabase database_;
  fs::path dir_;
};

TEST_F(CliTest, MigrateTwiceSecondRunAppliesNothingAndSaysSo) {
  const Result first = RunMailtrail("migrate " + ConfigArgs());
  EXPECT_EQ(first.exit_code, 0) << first.output;
  EXPECT_NE(first.output.find("applied 0001_schema.sql"), std::string::npos) << first.output;

  const Result second = RunMailtrail("migrate " + ConfigArgs());
  EXPECT_EQ(second.exit_code, 0) << second.output;
  EXPECT_NE(second.output.find("nothing to apply"), std::string::npos) << second.output;
  EXPECT_EQ(second.output.find("applied 0001"), std::string::npos) << second.output;
}

TEST_F(CliTest, EditedAppliedMigrationFailsNamingTheFile) {
  ASSERT_EQ(RunMailtrail("migrate " + ConfigArgs()).exit_code, 0);
  std::ofstream(dir_ / "migrations" / "0001_schema.sql", std::ios::app) << "\n-- edited\n";
  const Result result = RunMailtrail("migrate " + ConfigArgs());
  EXPECT_EQ(result.exit_code, 1) << result.output;
  EXPECT_NE(result.output.find("0001_schema.sql"), std::string::npos) << result.output;
}

// The database part of check-config; with no API key configured the API check fails, and says
// why (the API side is covered against the simulator in tests/e2e/cli).
TEST_F(CliTest, CheckConfigReachesTheDatabase) {
  const Result result = RunMailtrail("check-config " + ConfigArgs());
  EXPECT_EQ(result.exit_code, 1) << result.output;
  EXPECT_NE(result.output.find("postgrid.api_key is not set"), std::string::npos) << result.output;
  EXPECT_NE(result.output.find("reachable (PostgreSQL 15"), std::string::npos) << result.output;
  std::size_t files = 0;
  for (const auto& entry : fs::directory_iterator(dir_ / "migrations")) {
    files += entry.path().extension() == ".sql" ? 1 : 0;
  }
  const std::string expected = "0 applied, " + std::to_string(files) + " pending";
  EXPECT_NE(result.output.find(expected), std::string::npos) << result.output;
}

TEST_F(CliTest, CheckConfigNeverPrintsSecrets) {
  WriteConfig(
      "postgrid:\n  base_url: http://127.0.0.1:1/print-mail/v1\n"
      "  api_key: live_sk_topsecret123\nwebhook:\n"
      "  secrets: [whsec_alsosecret_abcdefghij]\ndatabase:\n  url: " +
      database_.dsn() + "\n");
  const Result result = RunMailtrail("check-config " + ConfigArgs());
  EXPECT_EQ(result.exit_code, 1) << "nothing listens on port 1: the API check fails\n"
                                 << result.output;
  EXPECT_NE(result.output.find("reachable (PostgreSQL 15"), std::string::npos) << result.output;
  EXPECT_EQ(result.output.find("topsecret"), std::string::npos) << result.output;
  EXPECT_EQ(result.output.find("alsosecret"), std::string::npos) << result.output;
}

TEST_F(CliTest, UnreachableDatabaseIsARuntimeFailure) {
  WriteConfig("database:\n  url: postgresql://nobody:pw1234@127.0.0.1:1/none\n");
  const Result result = RunMailtrail("check-config " + ConfigArgs());
  EXPECT_EQ(result.exit_code, 1) << result.output;
  EXPECT_NE(result.output.find("unreachable"), std::string::npos) << result.output;
  EXPECT_EQ(result.output.find("pw1234"), std::string::npos) << result.output;
}

TEST_F(CliTest, TypoInAKeyNamesFileLineAndKey) {
  WriteConfig("database:\n  url: " + database_.dsn() + "\npoll:\n  intervall: 1h\n");
  const Result result = RunMailtrail("check-config " + ConfigArgs());
  EXPECT_EQ(result.exit_code, 2) << result.output;
  const std::string where = (dir_ / "mailtrail.yaml").string() + ":4:";
  EXPECT_NE(result.output.find(where), std::string::npos) << result.output;
  EXPECT_NE(result.output.find("poll.intervall"), std::string::npos) << result.output;
}

TEST_F(CliTest, MissingConfigFileAndBadUsageExitTwo) {
  EXPECT_EQ(RunMailtrail("migrate --config /nonexistent/mailtrail.yaml").exit_code, 2);
  EXPECT_EQ(RunMailtrail("migrate --no-such-flag").exit_code, 2);
  EXPECT_EQ(RunMailtrail("no-such-command").exit_code, 2);
  EXPECT_EQ(RunMailtrail("--help").exit_code, 0);
}

}  // namespace
