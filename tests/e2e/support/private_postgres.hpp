#pragma once

// A PostgreSQL server of one test's own, for tests that stop and start the database: stopping
// the shared scripts/pg_tmp.sh server would break the tests CTest runs alongside (-j 2).
// Header-only; uses the binaries and the run-as prefix pg_tmp.sh exports.

#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <string>

#include "mailtrail_process.hpp"

namespace mailtrail::e2e {

/// initdb into a temp dir and start a server on a free 127.0.0.1 port (fsync off). Stop() and
/// Start() take it down (immediate mode, like a crash) and bring it back on the same port.
/// The destructor stops it and removes the directory. Needs MAILTRAIL_PG_BIN (and, when root,
/// MAILTRAIL_PG_RUNAS) as scripts/pg_tmp.sh exports them; throws std::runtime_error otherwise.
class PrivatePostgres {
 public:
  PrivatePostgres() {
    const char* bin = std::getenv("MAILTRAIL_PG_BIN");
    if (bin == nullptr || *bin == '\0') {
      throw std::runtime_error("MAILTRAIL_PG_BIN is not set: run the test under scripts/pg_tmp.sh");
    }
    bin_ = bin;
    const char* runas = std::getenv("MAILTRAIL_PG_RUNAS");
    runas_ = runas == nullptr ? "" : runas;
    if (runas_.empty() && ::geteuid() == 0) runas_ = "runuser -u postgres --";
    // The server runs as the postgres user when we are root: it must own its directory.
    if (!runas_.empty()) Shell("chown postgres: " + dir_.path().string());
    Shell(runas_ + " " + bin_ + "/initdb -D " + data() + " -U postgres -A trust -E UTF8 " +
          "--locale=C.UTF-8 >" + dir_.path().string() + "/initdb.log 2>&1");
    port_ = FreePort();
    Start();
  }
  ~PrivatePostgres() {
    if (running_)
      Shell(runas_ + " " + bin_ + "/pg_ctl -D " + data() + " -m immediate -w stop >/dev/null 2>&1",
            false);
  }
  PrivatePostgres(const PrivatePostgres&) = delete;
  PrivatePostgres& operator=(const PrivatePostgres&) = delete;

  /// A libpq URI for `database` on this server (superuser, trust auth).
  std::string dsn(const std::string& database = "postgres") const {
    return "postgresql://postgres@127.0.0.1:" + std::to_string(port_) + "/" + database;
  }
  std::uint16_t port() const { return port_; }

  /// Stops the server at once (`pg_ctl stop -m immediate`): clients lose their connections.
  void Stop() {
    Shell(runas_ + " " + bin_ + "/pg_ctl -D " + data() + " -m immediate -w stop >/dev/null");
    running_ = false;
  }
  /// Starts it again on the same port; waits until it accepts connections.
  void Start() {
    Shell(runas_ + " " + bin_ + "/pg_ctl -D " + data() + " -l " + dir_.path().string() +
          "/server.log -w -t 60 -o \"-c port=" + std::to_string(port_) +
          " -c listen_addresses=127.0.0.1 -c unix_socket_directories=" + dir_.path().string() +
          " -c fsync=off -c synchronous_commit=off -c full_page_writes=off\" start >/dev/null");
    running_ = true;
  }
  std::string Log() const {
    std::ifstream in(dir_.path() / "server.log");
    std::ostringstream text;
    text << in.rdbuf();
    return text.str();
  }

 private:
  std::string data() const { return (dir_.path() / "data").string(); }
  static void Shell(const std::string& command, bool check = true) {
    const int status = std::system(command.c_str());
    if (check && status != 0) {
      throw std::runtime_error("command failed (" + std::to_string(status) + "): " + command);
    }
  }

  TempDir dir_;
  std::string bin_;
  std::string runas_;
  std::uint16_t port_ = 0;
  bool running_ = false;
};

}  // namespace mailtrail::e2e
