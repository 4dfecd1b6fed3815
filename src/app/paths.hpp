#pragma once

#include <filesystem>
#include <optional>
#include <string>

namespace mailtrail::app {

/// Where the migrations are: `flag` (--migrations) if given, else $MAILTRAIL_MIGRATIONS_DIR,
/// else `<binary dir>/../share/mailtrail/migrations` (an installed tree), else the source tree's
/// `migrations/` (a build tree), else the configured install directory. Returns the first that
/// exists, or the last candidate so the error names a real path.
std::filesystem::path ResolveMigrationsDir(const std::optional<std::string>& flag);

}  // namespace mailtrail::app
