#include "mailtrail_process.hpp"

#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <optional>
#include <sstream>
#include <stdexcept>

namespace mailtrail::e2e {
namespace fs = std::filesystem;

TempDir::TempDir() {
  std::string pattern = (fs::temp_directory_path() / "mailtrail-e2e.XXXXXX").string();
  if (::mkdtemp(pattern.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
  path_ = pattern;
}

TempDir::~TempDir() {
  std::error_code ignored;
  fs::remove_all(path_, ignored);
}

fs::path TempDir::Write(const std::string& name, const std::string& contents) const {
  const fs::path file = path_ / name;
  std::ofstream(file, std::ios::binary) << contents;
  return file;
}

std::uint16_t FreePort() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) throw std::runtime_error("socket failed");
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  address.sin_port = 0;
  socklen_t length = sizeof address;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length) != 0) {
    ::close(fd);
    throw std::runtime_error("could not find a free port");
  }
  ::close(fd);
  return ntohs(address.sin_port);
}

std::string MailtrailBinary() {
  // scripts/test.sh's sanitized pass runs these drivers against build-asan's daemon.
  if (const char* path = std::getenv("MAILTRAIL_TEST_DAEMON"); path != nullptr && *path != '\0') {
    return path;
  }
  return std::string(MAILTRAIL_BINARY_DIR) + "/mailtrail";
}

namespace {

pid_t Spawn(const std::vector<std::string>& args, const fs::path& output) {
  const pid_t pid = ::fork();
  if (pid < 0) throw std::runtime_error("fork failed");
  if (pid == 0) {
    const int fd = ::open(output.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0600);
    if (fd >= 0) {
      ::dup2(fd, STDOUT_FILENO);
      ::dup2(fd, STDERR_FILENO);
      ::close(fd);
    }
    std::vector<char*> argv;
    std::string binary = MailtrailBinary();
    argv.push_back(binary.data());
    std::vector<std::string> copy = args;
    for (auto& arg : copy) argv.push_back(arg.data());
    argv.push_back(nullptr);
    ::execv(binary.c_str(), argv.data());
    ::_exit(127);
  }
  return pid;
}

std::string ReadFile(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

// Waits for `pid` up to `timeout`; returns the raw status, or nullopt if still running.
std::optional<int> WaitFor(pid_t pid, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (true) {
    int status = 0;
    const pid_t done = ::waitpid(pid, &status, WNOHANG);
    if (done == pid) return status;
    if (done < 0) return std::nullopt;
    if (std::chrono::steady_clock::now() >= deadline) return std::nullopt;
    std::this_thread::sleep_for(20ms);
  }
}

}  // namespace

CommandResult RunMailtrail(const std::vector<std::string>& args,
                           std::chrono::milliseconds timeout) {
  TempDir dir;
  const fs::path output = dir.path() / "output";
  const pid_t pid = Spawn(args, output);
  CommandResult result;
  const auto status = WaitFor(pid, timeout);
  if (!status) {
    ::kill(pid, SIGKILL);
    ::waitpid(pid, nullptr, 0);
    result.output = ReadFile(output) + "\n[killed after timeout]";
    return result;
  }
  result.exit_code = WIFEXITED(*status) ? WEXITSTATUS(*status) : -1;
  result.output = ReadFile(output);
  return result;
}

DaemonProcess::DaemonProcess(std::vector<std::string> args, fs::path log_path)
    : log_path_(std::move(log_path)) {
  pid_ = Spawn(args, log_path_);
}

DaemonProcess::~DaemonProcess() {
  if (pid_ > 0) Kill();
}

bool DaemonProcess::running() {
  if (pid_ <= 0) return false;
  int status = 0;
  const pid_t done = ::waitpid(pid_, &status, WNOHANG);
  if (done == pid_) {
    pid_ = -1;
    return false;
  }
  return true;
}

int DaemonProcess::Terminate(std::chrono::milliseconds timeout) {
  if (pid_ <= 0) return -1;
  ::kill(pid_, SIGTERM);
  const auto status = WaitFor(pid_, timeout);
  if (!status) {
    Kill();
    return -1;
  }
  pid_ = -1;
  return WIFEXITED(*status) ? WEXITSTATUS(*status) : -1;
}

void DaemonProcess::Kill() {
  if (pid_ <= 0) return;
  ::kill(pid_, SIGKILL);
  ::waitpid(pid_, nullptr, 0);
  pid_ = -1;
}

std::string DaemonProcess::Log() const { return ReadFile(log_path_); }

}  // namespace mailtrail::e2e
