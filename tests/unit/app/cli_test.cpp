#include "app/cli.hpp"

#include <gtest/gtest.h>

namespace mailtrail::app {
namespace {

TEST(CliTest, CommandWithConfigInBothSpellings) {
  const auto a = ParseCommandLine({"migrate", "--config", "/tmp/a.yaml"});
  EXPECT_EQ(a.command, "migrate");
  EXPECT_EQ(a.config_path, "/tmp/a.yaml");
  const auto b = ParseCommandLine({"--config=/tmp/b.yaml", "check-config"});
  EXPECT_EQ(b.command, "check-config");
  EXPECT_EQ(b.config_path, "/tmp/b.yaml");
}

TEST(CliTest, DefaultConfigPathIsTheContractOne) {
  EXPECT_EQ(ParseCommandLine({"migrate"}).config_path, "/etc/mailtrail/mailtrail.yaml");
}

TEST(CliTest, CommandOptionsAreParsed) {
  const auto line = ParseCommandLine({"migrate", "--migrations", "/srv/m"});
  EXPECT_EQ(line.Value("--migrations"), "/srv/m");
  EXPECT_EQ(line.Value("--other"), std::nullopt);
}

TEST(CliTest, HelpAndVersion) {
  EXPECT_TRUE(ParseCommandLine({"--help"}).help);
  EXPECT_TRUE(ParseCommandLine({"-h"}).help);
  EXPECT_TRUE(ParseCommandLine({"help"}).help);
  EXPECT_TRUE(ParseCommandLine({"--version"}).version);
  const auto line = ParseCommandLine({"migrate", "--help"});
  EXPECT_TRUE(line.help);
  EXPECT_EQ(line.command, "migrate");
}

struct BadUsage {
  std::vector<std::string> args;
  std::string message;
};

TEST(CliTest, BadUsageIsRefusedWithAClearMessage) {
  const BadUsage cases[] = {
      {{}, "no command given"},
      {{"frobnicate"}, "unknown command 'frobnicate'"},
      {{"migrate", "--bogus"}, "unknown option --bogus for migrate"},
      {{"--bogus"}, "unknown option --bogus"},
      {{"migrate", "--config"}, "option --config needs a value"},
      {{"migrate", "--config="}, "option --config needs a non-empty value"},
      {{"migrate", "--config", "a", "--config", "b"}, "--config given twice"},
      {{"migrate", "extra"}, "migrate: unexpected argument 'extra'"},
      {{"migrate", "-x"}, "unknown option -x"},
  };
  for (const auto& c : cases) {
    try {
      ParseCommandLine(c.args);
      ADD_FAILURE() << "accepted: " << testing::PrintToString(c.args);
    } catch (const UsageError& e) {
      EXPECT_EQ(std::string(e.what()), c.message);
    }
  }
}

TEST(CliTest, HelpListsExactlyTheImplementedCommands) {
  const std::string help = GeneralHelp();
  for (const auto& spec : Commands()) {
    EXPECT_NE(help.find("  " + spec.name + " "), std::string::npos) << spec.name;
    EXPECT_NE(CommandHelp(spec).find(spec.usage), std::string::npos) << spec.name;
  }
  // Commands that do not work yet must not be advertised.
  for (const char* missing : {"  run ", "  sync ", "  backfill "}) {
    if (FindCommand(std::string(missing).substr(2, std::string(missing).size() - 3)) == nullptr) {
      EXPECT_EQ(help.find(missing), std::string::npos) << missing;
    }
  }
}

}  // namespace
}  // namespace mailtrail::app
