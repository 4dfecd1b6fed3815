#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

/// Test support for suites that need a PostGrid simulator: a child-process wrapper, blocking
/// HTTP helpers, and a webhook receiver. Deliberately free of Beast/Asio includes.
namespace mailtrail::sim::testing {

using namespace std::chrono_literals;

/// One HTTP response (status 0 and `error` set when there was none).
struct HttpResult {
  int status = 0;
  std::string body;
  std::map<std::string, std::string> headers;  ///< names lower-cased
  std::string error;
};

using Headers = std::vector<std::pair<std::string, std::string>>;

/// Blocking HTTP/1.1 request to host:port (loopback), one connection, with an overall timeout.
/// Never throws: failures come back as status 0 with `error`. Any thread.
HttpResult HttpRequest(const std::string& host, uint16_t port, const std::string& method,
                       const std::string& target, const std::string& body = "",
                       const Headers& headers = {}, std::chrono::milliseconds timeout = 10s);

/// Runs `${PROJECT_BINARY_DIR}/postgrid-sim` with `args` (add `--listen 127.0.0.1:0` yourself or
/// rely on the default), waits for its `listening on HOST:PORT` line, and kills and reaps it in
/// the destructor. Throws std::runtime_error when it cannot start or does not report in time.
class SimProcess {
 public:
  explicit SimProcess(std::vector<std::string> args,
                      std::chrono::milliseconds startup_timeout = 60s);
  ~SimProcess();
  SimProcess(const SimProcess&) = delete;
  SimProcess& operator=(const SimProcess&) = delete;

  /// The simulator binary this library was built against.
  static std::string BinaryPath();

  const std::string& host() const { return host_; }
  uint16_t port() const { return port_; }
  /// `http://HOST:PORT`
  std::string base_url() const;
  /// `http://HOST:PORT/print-mail/v1`, what mailtrail's `postgrid.base_url` should be.
  std::string api_url() const { return base_url() + "/print-mail/v1"; }
  pid_t pid() const { return pid_; }

  /// Control API helpers (`target` starts with /__sim/...).
  HttpResult Get(const std::string& target) const;
  HttpResult Post(const std::string& target, const std::string& json_body = "") const;
  HttpResult Delete(const std::string& target) const;
  /// API helper: `target` below /print-mail/v1, with X-API-Key.
  HttpResult Api(const std::string& method, const std::string& target, const std::string& key,
                 const std::string& body = "") const;

  /// Sends SIGTERM and reaps; returns the exit status (as waitpid reports it), or -1 when it
  /// had to be killed with SIGKILL after `timeout`.
  int Stop(std::chrono::milliseconds timeout = 10s);

 private:
  pid_t pid_ = -1;
  int stdout_fd_ = -1;
  std::string host_;
  uint16_t port_ = 0;
};

/// A tiny HTTP server on 127.0.0.1:0 that records every request (for webhook deliveries) and
/// answers with a configurable status. Runs its own thread; methods are thread-safe.
class WebhookReceiver {
 public:
  struct Received {
    std::string method, target, body;
    std::map<std::string, std::string> headers;  ///< names lower-cased
  };
  WebhookReceiver();
  ~WebhookReceiver();
  WebhookReceiver(const WebhookReceiver&) = delete;
  WebhookReceiver& operator=(const WebhookReceiver&) = delete;

  uint16_t port() const;
  std::string url(const std::string& path = "/hook") const;
  /// The status for requests once the queued ones are used up (default 200).
  void SetDefaultStatus(int status);
  /// Statuses for the next requests, in order.
  void QueueStatuses(const std::vector<int>& statuses);
  std::vector<Received> requests() const;
  size_t count() const;
  /// True once at least `n` requests arrived; false after `timeout`.
  bool WaitForCount(size_t n, std::chrono::milliseconds timeout) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace mailtrail::sim::testing
