#pragma once

#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace mailtrail::app {

inline constexpr const char* kDefaultConfigPath = "/etc/mailtrail/mailtrail.yaml";

/// Bad command-line usage; main prints it with a hint and exits 2.
class UsageError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// One subcommand: its name, a one-line summary, its help text, and the options it takes.
struct CommandSpec {
  std::string name;
  std::string summary;
  std::string usage;        ///< e.g. "mailtrail migrate [--config FILE] [--migrations DIR]"
  std::string description;  ///< the paragraphs `mailtrail COMMAND --help` prints
  std::vector<std::string> value_options;  ///< options taking a value, e.g. "--migrations"
  std::vector<std::string> flag_options;   ///< options without a value
  std::size_t min_positionals = 0;
  std::size_t max_positionals = 0;
};

/// The subcommands this binary really implements; only these are listed by --help.
const std::vector<CommandSpec>& Commands();

struct CommandLine {
  std::string command;  ///< empty when only --help/--version was asked for
  bool help = false;
  bool version = false;
  std::string config_path = kDefaultConfigPath;
  std::map<std::string, std::string> values;  ///< value options given, keyed by "--name"
  std::vector<std::string> flags;             ///< flag options given
  std::vector<std::string> positionals;

  bool HasFlag(const std::string& name) const;
  std::optional<std::string> Value(const std::string& name) const;
};

/// Parses argv (without argv[0]). Accepts `--opt VALUE` and `--opt=VALUE`. Throws UsageError
/// for an unknown command or option, a missing value, or a wrong number of arguments.
CommandLine ParseCommandLine(const std::vector<std::string>& args);

/// The text of `mailtrail --help`.
std::string GeneralHelp();
/// The text of `mailtrail COMMAND --help`.
std::string CommandHelp(const CommandSpec& spec);
const CommandSpec* FindCommand(const std::string& name);

}  // namespace mailtrail::app
