#pragma once

#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "net/net.hpp"

namespace mailtrail::postgrid::testing {

/// One request as the fake server saw it.
struct FakeRequest {
  std::string method;
  std::string target;
  std::string api_key;         ///< X-API-Key as received ("" if absent).
  std::size_t connection = 0;  ///< 1-based index of the TCP connection it came on.
  std::chrono::steady_clock::time_point arrived;
  /// When the response (or the reset/close) started going out; arrived if never answered.
  std::chrono::steady_clock::time_point responded;
  int status = 0;  ///< Status sent; 0 if the connection was reset or closed instead.
};

/// What to do with one request.
enum class FakeAction {
  kRespond,               ///< Send `status`, `headers`, `body`.
  kResetMidResponse,      ///< Send the head and half the body, then reset the connection (RST).
  kCloseWithoutResponse,  ///< Close the connection without a byte of response.
};

struct FakeResponse {
  int status = 200;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body = "{}";
  std::chrono::milliseconds delay{0};  ///< Wait this long before answering (timeouts).
  FakeAction action = FakeAction::kRespond;
  bool close = false;  ///< Send `Connection: close` and close after the response.
  /// Promise keep-alive but close right after the response (a server dropping idle connections).
  bool silent_close = false;
};

/// An in-process scripted HTTP/1.1 server on 127.0.0.1:0 (Envoy's fake upstream, in small): each
/// request is recorded and answered by the handler. It runs on its own thread and io_context, so
/// the client under test can run on the test thread. Handlers run on the server thread, one at a
/// time; everything else is thread-safe.
class FakePostGrid {
 public:
  using Handler = std::function<FakeResponse(const FakeRequest&)>;

  explicit FakePostGrid(Handler handler);
  ~FakePostGrid();
  FakePostGrid(const FakePostGrid&) = delete;
  FakePostGrid& operator=(const FakePostGrid&) = delete;

  std::uint16_t port() const { return port_; }
  /// `http://127.0.0.1:<port>/print-mail/v1`.
  std::string base_url() const;
  static constexpr const char* kPrefix = "/print-mail/v1";

  void SetHandler(Handler handler);
  std::vector<FakeRequest> requests() const;
  std::size_t request_count() const;
  /// Most requests that were being handled at the same moment (read but not yet answered).
  int peak_in_flight() const;
  /// Most TCP connections open at the same moment.
  int peak_connections() const;
  std::size_t connections_accepted() const;

  /// Waits (with a deadline) until at least `count` requests have arrived.
  ::testing::AssertionResult WaitForRequests(std::size_t count,
                                             std::chrono::milliseconds timeout) const;

 private:
  net::awaitable<void> Accept();
  net::awaitable<void> Session(net::ip::tcp::socket socket, std::size_t connection);

  mutable std::mutex mutex_;
  Handler handler_;
  std::vector<FakeRequest> requests_;
  int in_flight_ = 0;
  int peak_in_flight_ = 0;
  int connections_ = 0;
  int peak_connections_ = 0;
  std::size_t accepted_ = 0;

  std::unique_ptr<net::io_context> ioc_;
  std::unique_ptr<net::ip::tcp::acceptor> acceptor_;
  std::uint16_t port_ = 0;
  std::thread thread_;
};

/// A PostGrid-style order object for `id` (enough for the client; not a full fixture).
std::string OrderJson(const std::string& id, const std::string& object = "letter");
/// A PostGrid list envelope over `ids[skip, skip+limit)`.
std::string ListJson(const std::vector<std::string>& ids, int skip, int limit);
/// Reads `name=value` from a request target's query string ("" if absent).
std::string QueryParam(const std::string& target, const std::string& name);
/// The path part of a target (before `?`).
std::string PathOf(const std::string& target);

}  // namespace mailtrail::postgrid::testing
