#pragma once

#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>

namespace mailtrail::metrics::testing {

/// Pipes `exposition` through `promtool check metrics` (Debian package `prometheus`, listed in
/// scripts/install-deps.sh). Fails, never skips, when promtool is missing. The text goes through a
/// mkdtemp file so the exit status and promtool's complaints can both be reported.
inline ::testing::AssertionResult PromtoolAccepts(const std::string& exposition) {
  if (std::system("command -v promtool >/dev/null 2>&1") != 0) {
    return ::testing::AssertionFailure()
           << "promtool not found: install Debian's prometheus package (scripts/install-deps.sh)";
  }
  namespace fs = std::filesystem;
  std::string dir = (fs::temp_directory_path() / "mailtrail-promtool.XXXXXX").string();
  if (::mkdtemp(dir.data()) == nullptr) return ::testing::AssertionFailure() << "mkdtemp failed";
  const fs::path input = fs::path(dir) / "metrics.txt";
  std::ofstream(input, std::ios::binary) << exposition;

  const std::string command = "promtool check metrics < '" + input.string() + "' 2>&1";
  FILE* pipe = ::popen(command.c_str(), "r");
  std::string output;
  int status = -1;
  if (pipe != nullptr) {
    char chunk[512];
    while (std::fgets(chunk, sizeof(chunk), pipe) != nullptr) output += chunk;
    status = ::pclose(pipe);
  }
  std::error_code ignored;
  fs::remove_all(dir, ignored);
  if (status == -1) return ::testing::AssertionFailure() << "could not run promtool";
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    return ::testing::AssertionFailure()
           << "promtool check metrics failed (status " << status << "):\n"
           << output << "\n--- input ---\n"
           << exposition;
  }
  return ::testing::AssertionSuccess();
}

}  // namespace mailtrail::metrics::testing
