#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "metrics/registry.hpp"
#include "net/net.hpp"

namespace mailtrail::metrics {

/// Returns why the process is not ready (e.g. "database unreachable"), or nullopt when it is.
/// Called on the server's executor for every `/readyz`: must be cheap and never block (read a
/// state the app keeps current; never run SQL here).
using ReadinessFn = std::function<std::optional<std::string>()>;

struct HttpServerOptions {
  std::string host = "127.0.0.1";
  std::uint16_t port = 9464;  ///< 0 picks a free port; see HttpServer::Port().
  /// Deadline for a whole request (header included), counted from the start of the wait; it also
  /// bounds how long an idle keep-alive connection stays open.
  std::chrono::milliseconds read_timeout = std::chrono::seconds(10);
  std::chrono::milliseconds write_timeout = std::chrono::seconds(10);
};

/// The observability listener (contract.md "Metrics listener"), HTTP/1.1 with keep-alive:
///  - `GET /metrics`: `registry.Render()`, `text/plain; version=0.0.4; charset=utf-8`;
///  - `GET /healthz`: 200 `ok` while the process runs;
///  - `GET /readyz`: 200 `ready`, or 503 with the reason from `readiness`;
///  - other paths 404, other methods on these paths 405. Request bodies are capped at 64 KiB.
///
/// Thread affinity: construct, Start, Stop and Port from any thread; sessions run on `executor`,
/// which must be single-threaded (or a strand). `registry` must outlive the server's sessions.
/// Start throws boost::system::system_error when the address cannot be bound.
class HttpServer {
 public:
  HttpServer(net::any_io_executor executor, HttpServerOptions options, const Registry& registry,
             ReadinessFn readiness);
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  void Start();
  /// The bound port; 0 before Start.
  std::uint16_t Port() const;
  /// Stops accepting and closes open connections (posted to the executor). Idempotent.
  void Stop();

  struct State;

 private:
  std::shared_ptr<State> state_;
};

}  // namespace mailtrail::metrics
