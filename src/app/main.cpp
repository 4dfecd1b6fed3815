#include <cstdlib>
#include <iostream>
#include <string>
#include <vector>

#include "app/cli.hpp"
#include "app/commands.hpp"

int main(int argc, char** argv) {
  using namespace mailtrail::app;
  // libpq waits forever on an unanswered connect by default; bound it so a database that hangs
  // turns into an error (and a 503 for webhooks) instead of a stuck daemon. An explicit
  // PGCONNECT_TIMEOUT or connect_timeout in database.url still wins.
  // NOLINTNEXTLINE(concurrency-mt-unsafe): the first statement of main, before any thread.
  ::setenv("PGCONNECT_TIMEOUT", "10", /*overwrite=*/0);
  const std::vector<std::string> args(argv + 1, argv + argc);
  CommandLine line;
  try {
    line = ParseCommandLine(args);
  } catch (const UsageError& e) {
    std::cerr << "mailtrail: " << e.what() << "\n(see `mailtrail --help`)\n";
    return kExitUsage;
  }
  if (line.version) {
    std::cout << "mailtrail " << MAILTRAIL_VERSION << '\n';
    return kExitOk;
  }
  if (line.help) {
    const CommandSpec* spec = FindCommand(line.command);
    std::cout << (spec != nullptr ? CommandHelp(*spec) : GeneralHelp());
    return kExitOk;
  }
  try {
    return RunCommand(line, std::cout, std::cerr);
  } catch (const std::exception& e) {
    std::cerr << "mailtrail: " << e.what() << '\n';
    return kExitFailure;
  }
}
