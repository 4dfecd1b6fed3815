#include "app/paths.hpp"

#include <cstdlib>
#include <vector>

namespace mailtrail::app {

std::filesystem::path ResolveMigrationsDir(const std::optional<std::string>& flag) {
  if (flag) return *flag;
  // NOLINTNEXTLINE(concurrency-mt-unsafe): nothing in mailtrail calls setenv after start-up.
  if (const char* env = std::getenv("MAILTRAIL_MIGRATIONS_DIR"); env != nullptr && *env != '\0') {
    return env;
  }
  std::vector<std::filesystem::path> candidates;
  std::error_code error;
  const auto exe = std::filesystem::read_symlink("/proc/self/exe", error);
  if (!error) {
    candidates.push_back(exe.parent_path().parent_path() / "share" / "mailtrail" / "migrations");
  }
  candidates.emplace_back(MAILTRAIL_SOURCE_MIGRATIONS_DIR);
  candidates.emplace_back(MAILTRAIL_INSTALLED_MIGRATIONS_DIR);
  for (const auto& candidate : candidates) {
    if (std::filesystem::is_directory(candidate, error)) return candidate;
  }
  return candidates.back();
}

}  // namespace mailtrail::app
