#include "metrics/http_server.hpp"

#include <spdlog/spdlog.h>

#include <atomic>
#include <exception>
#include <set>
#include <string_view>

namespace mailtrail::metrics {

using tcp = net::ip::tcp;
using Response = http::response<http::string_body>;

struct HttpServer::State {
  net::any_io_executor executor;
  HttpServerOptions options;
  const Registry* registry = nullptr;
  ReadinessFn readiness;

  // Touched only on `executor` (after Start).
  std::unique_ptr<tcp::acceptor> acceptor;
  std::set<beast::tcp_stream*> sessions;
  bool stopping = false;
  std::atomic<std::uint16_t> port{0};
};

namespace {

using StatePtr = std::shared_ptr<HttpServer::State>;

constexpr std::uint32_t kHeaderLimit = 16 * 1024;
constexpr std::uint64_t kBodyLimit = std::uint64_t{64} * 1024;

void LogIfFailed(const std::exception_ptr& error, const char* what) {
  if (!error) return;
  try {
    std::rethrow_exception(error);
  } catch (const std::exception& e) {
    spdlog::error("metrics: {} ended with an error: {}", what, e.what());
  }
}

Response MakeResponse(http::status status, std::string body, unsigned version, bool keep_alive,
                      std::string_view content_type = "text/plain; charset=utf-8") {
  Response response{status, version};
  response.set(http::field::server, "mailtrail");
  response.set(http::field::content_type, std::string(content_type));
  response.keep_alive(keep_alive);
  response.body() = std::move(body);
  response.prepare_payload();
  return response;
}

Response Route(const HttpServer::State& state, const http::request<http::string_body>& request) {
  const unsigned version = request.version();
  const bool keep_alive = request.keep_alive();
  std::string_view target(request.target().data(), request.target().size());
  target = target.substr(0, target.find('?'));
  const bool known = target == "/metrics" || target == "/healthz" || target == "/readyz";
  if (!known) return MakeResponse(http::status::not_found, "not found\n", version, keep_alive);
  if (request.method() != http::verb::get) {
    Response response =
        MakeResponse(http::status::method_not_allowed, "method not allowed\n", version, keep_alive);
    response.set(http::field::allow, "GET");
    return response;
  }
  if (target == "/metrics") {
    return MakeResponse(http::status::ok, state.registry->Render(), version, keep_alive,
                        "text/plain; version=0.0.4; charset=utf-8");
  }
  if (target == "/healthz") return MakeResponse(http::status::ok, "ok\n", version, keep_alive);

  std::optional<std::string> not_ready;
  try {
    not_ready = state.readiness ? state.readiness() : std::nullopt;
  } catch (const std::exception& e) {
    not_ready = std::string("readiness check failed: ") + e.what();
  }
  if (not_ready) {
    return MakeResponse(http::status::service_unavailable, *not_ready + "\n", version, keep_alive);
  }
  return MakeResponse(http::status::ok, "ready\n", version, keep_alive);
}

class SessionRegistration {
 public:
  SessionRegistration(HttpServer::State* state, beast::tcp_stream* stream)
      : state_(state), stream_(stream) {
    state_->sessions.insert(stream_);
  }
  ~SessionRegistration() { state_->sessions.erase(stream_); }
  SessionRegistration(const SessionRegistration&) = delete;
  SessionRegistration& operator=(const SessionRegistration&) = delete;

 private:
  HttpServer::State* state_;
  beast::tcp_stream* stream_;
};

net::awaitable<void> RunSession(StatePtr state, tcp::socket socket) {
  beast::tcp_stream stream(std::move(socket));
  SessionRegistration registration(state.get(), &stream);
  beast::flat_buffer buffer;

  while (!state->stopping) {
    http::request_parser<http::string_body> parser;
    parser.header_limit(kHeaderLimit);
    parser.body_limit(kBodyLimit);
    beast::error_code ec;
    stream.expires_after(state->options.read_timeout);
    co_await http::async_read(stream, buffer, parser, net::redirect_error(net::use_awaitable, ec));
    if (ec) {
      const bool malformed =
          ec.category() == http::make_error_code(http::error::bad_method).category() &&
          ec != http::error::end_of_stream;
      if (malformed) {
        // Best effort: tell the client why, then close; a failure to write changes nothing.
        Response response = MakeResponse(http::status::bad_request, "bad request\n", 11, false);
        stream.expires_after(state->options.write_timeout);
        co_await http::async_write(stream, response, net::redirect_error(net::use_awaitable, ec));
      }
      break;
    }
    Response response = Route(*state, parser.get());
    const bool close_after = !response.keep_alive();
    stream.expires_after(state->options.write_timeout);
    co_await http::async_write(stream, response, net::redirect_error(net::use_awaitable, ec));
    if (ec || close_after) break;
  }

  beast::error_code ignored;  // the peer may be gone already; nothing left to report
  stream.socket().shutdown(tcp::socket::shutdown_send, ignored);
  stream.socket().close(ignored);
}

net::awaitable<void> AcceptLoop(StatePtr state) {
  while (!state->stopping) {
    beast::error_code ec;
    tcp::socket socket =
        co_await state->acceptor->async_accept(net::redirect_error(net::use_awaitable, ec));
    if (state->stopping || ec == net::error::operation_aborted) break;
    if (ec) {
      spdlog::warn("metrics: accept failed: {}", ec.message());
      net::steady_timer pause(state->executor, std::chrono::milliseconds(100));
      co_await pause.async_wait(net::redirect_error(net::use_awaitable, ec));
      continue;
    }
    net::co_spawn(state->executor, RunSession(state, std::move(socket)),
                  [](const std::exception_ptr& error) { LogIfFailed(error, "session"); });
  }
}

}  // namespace

HttpServer::HttpServer(net::any_io_executor executor, HttpServerOptions options,
                       const Registry& registry, ReadinessFn readiness)
    : state_(std::make_shared<State>()) {
  state_->executor = std::move(executor);
  state_->options = std::move(options);
  state_->registry = &registry;
  state_->readiness = std::move(readiness);
}

HttpServer::~HttpServer() = default;

void HttpServer::Start() {
  const tcp::endpoint endpoint(net::ip::make_address(state_->options.host), state_->options.port);
  auto acceptor = std::make_unique<tcp::acceptor>(state_->executor);
  acceptor->open(endpoint.protocol());
  acceptor->set_option(tcp::acceptor::reuse_address(true));
  acceptor->bind(endpoint);
  acceptor->listen(net::socket_base::max_listen_connections);
  state_->port = acceptor->local_endpoint().port();
  state_->acceptor = std::move(acceptor);
  spdlog::info("metrics: listening on {}:{}", state_->options.host, state_->port.load());
  net::co_spawn(state_->executor, AcceptLoop(state_),
                [](const std::exception_ptr& error) { LogIfFailed(error, "accept loop"); });
}

std::uint16_t HttpServer::Port() const { return state_->port.load(); }

void HttpServer::Stop() {
  net::post(state_->executor, [state = state_] {
    if (state->stopping) return;
    state->stopping = true;
    beast::error_code ignored;  // closing is best effort; a failure leaves nothing to undo
    if (state->acceptor) state->acceptor->close(ignored);
    for (beast::tcp_stream* stream : state->sessions) stream->socket().close(ignored);
  });
}

}  // namespace mailtrail::metrics
