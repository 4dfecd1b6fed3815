#pragma once

#include <chrono>
#include <cstddef>
#include <memory>

#include "net/net.hpp"
#include "net/url.hpp"

namespace mailtrail::netio {

/// A TLS client context for talking to public HTTPS servers: the system's default trust store,
/// `verify_peer`, TLS 1.2 or newer. Host name verification and SNI are set per connection by
/// HttpConnection::Connect. Throws boost::system::system_error if OpenSSL cannot be set up.
ssl::context MakeClientTlsContext();

/// One HTTP/1.1 client connection over plain TCP (`http://`, the simulator) or TLS (`https://`).
///
/// Every step (resolve, connect, handshake, write, read) has its own deadline; a response body is
/// capped. After a response that allows keep-alive the connection can carry the next request
/// (Reusable()). Any failure closes the connection: the caller drops it and connects anew.
///
/// Thread affinity: use from one coroutine at a time on the executor it was created on. Errors are
/// thrown as boost::system::system_error (beast::error::timeout for an expired deadline,
/// http::error::body_limit for an oversized body, connection errors as reported by Asio).
class HttpConnection {
 public:
  using Request = http::request<http::string_body>;
  using Response = http::response<http::string_body>;

  HttpConnection(const HttpConnection&) = delete;
  HttpConnection& operator=(const HttpConnection&) = delete;
  ~HttpConnection();

  /// Resolves `url.host`, connects, and for https performs the TLS handshake with SNI and host
  /// name verification against `tls` (which must outlive the connection; may be null for http).
  /// Throws std::invalid_argument for an https URL without a TLS context.
  static net::awaitable<std::unique_ptr<HttpConnection>> Connect(Url url, ssl::context* tls,
                                                                 std::chrono::milliseconds timeout);

  /// Writes `request` and reads the whole response, each step within `timeout`. The caller sets
  /// the target, method, and its own headers; Host is filled in when absent.
  net::awaitable<Response> Send(Request request, std::chrono::milliseconds timeout,
                                std::size_t body_limit);

  /// True while the connection is open and the last response allowed keep-alive.
  bool Reusable() const { return open_ && keep_alive_; }
  /// Number of requests written on this connection (1 after the first Send).
  std::size_t RequestsSent() const { return requests_sent_; }
  /// Closes the socket at once (no TLS close_notify: that would need its own deadline).
  void Close();

 private:
  HttpConnection(Url url, std::unique_ptr<beast::tcp_stream> plain,
                 std::unique_ptr<beast::ssl_stream<beast::tcp_stream>> tls);

  template <class Stream>
  net::awaitable<Response> SendOn(Stream* stream, Request request,
                                  std::chrono::milliseconds timeout, std::size_t body_limit);

  static constexpr std::size_t kReadBufferBytes = 16 * 1024;

  Url url_;
  std::unique_ptr<beast::tcp_stream> plain_;
  std::unique_ptr<beast::ssl_stream<beast::tcp_stream>> tls_;
  beast::flat_buffer buffer_;
  bool open_ = true;
  bool keep_alive_ = true;
  std::size_t requests_sent_ = 0;
};

}  // namespace mailtrail::netio
