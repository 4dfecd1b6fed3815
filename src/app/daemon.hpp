#pragma once

#include "app/cli.hpp"
#include "config/config.hpp"

namespace mailtrail::app {

/// `mailtrail run`: the daemon. Returns the exit code: 0 after SIGTERM/SIGINT, 1 when it cannot
/// start (a listener address in use, a migration refused). It does not exit because PostgreSQL
/// or PostGrid went away: it waits, reports not-ready, and catches up.
int RunDaemon(const config::Config& config, const CommandLine& line);

}  // namespace mailtrail::app
