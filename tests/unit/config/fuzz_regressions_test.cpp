// Every input the config fuzzer found that once hung or crashed the loader
// (fuzz/regressions/config) must now be refused with ConfigError. A hang fails by CTest's timeout.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "config/config.hpp"

namespace mailtrail::config {
namespace {

TEST(FuzzRegressions, ConfigLoaderRefusesEveryFoundInputWithConfigError) {
  const auto directory =
      std::filesystem::path(MAILTRAIL_SOURCE_DIR) / "fuzz" / "regressions" / "config";
  std::size_t inputs = 0;
  for (const auto& entry : std::filesystem::directory_iterator(directory)) {
    std::ifstream in(entry.path(), std::ios::binary);
    std::ostringstream bytes;
    bytes << in.rdbuf();
    ++inputs;
    EXPECT_THROW(LoadConfigFromString(bytes.str(), "fuzz.yaml",
                                      [](const char*) { return std::optional<std::string>(); }),
                 ConfigError)
        << entry.path();
  }
  EXPECT_GE(inputs, 1u) << "no regression inputs found in " << directory;
}

}  // namespace
}  // namespace mailtrail::config
