#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

namespace mailtrail::e2e {

using namespace std::chrono_literals;

/// A temporary directory removed with everything in it on destruction.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::filesystem::path& path() const { return path_; }
  std::filesystem::path Write(const std::string& name, const std::string& contents) const;

 private:
  std::filesystem::path path_;
};

/// A free TCP port on 127.0.0.1 (bound and released, so a race is possible but rare).
std::uint16_t FreePort();

/// The built `mailtrail` binary, or $MAILTRAIL_TEST_DAEMON when set (e.g. a sanitized build).
std::string MailtrailBinary();

/// Result of running `mailtrail ARGS` to completion.
struct CommandResult {
  int exit_code = -1;
  std::string output;  ///< stdout and stderr together
};
/// Runs the mailtrail binary with `args` and waits (killing it after `timeout`).
CommandResult RunMailtrail(const std::vector<std::string>& args,
                           std::chrono::milliseconds timeout = 120s);

/// `mailtrail run` as a child process, its output in `log_path`. The destructor kills it.
class DaemonProcess {
 public:
  DaemonProcess(std::vector<std::string> args, std::filesystem::path log_path);
  ~DaemonProcess();
  DaemonProcess(const DaemonProcess&) = delete;
  DaemonProcess& operator=(const DaemonProcess&) = delete;

  pid_t pid() const { return pid_; }
  bool running();
  /// SIGTERM, then waits up to `timeout`; returns the exit code, or -1 when it had to be killed
  /// (or died of a signal).
  int Terminate(std::chrono::milliseconds timeout = 15s);
  /// SIGKILL and reap, as a crash would.
  void Kill();
  std::string Log() const;

 private:
  pid_t pid_ = -1;
  std::filesystem::path log_path_;
};

/// Polls `condition` every 100 ms until it is true or `timeout` passes; returns its last value.
template <typename Condition>
bool WaitUntil(Condition condition, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (true) {
    if (condition()) return true;
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(100ms);
  }
}

}  // namespace mailtrail::e2e
