#pragma once

#include <iosfwd>

#include "app/cli.hpp"

namespace mailtrail::app {

/// Process exit codes of contract.md.
enum ExitCode : int { kExitOk = 0, kExitFailure = 1, kExitUsage = 2 };

/// Runs the parsed command, writing its report to `out` and problems to `err`; returns the exit
/// code. Config errors give 2; runtime failures (database unreachable, a migration failing) give 1.
int RunCommand(const CommandLine& line, std::ostream& out, std::ostream& err);

}  // namespace mailtrail::app
