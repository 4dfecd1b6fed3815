#include "support/fake_postgrid.hpp"

#include <algorithm>
#include <nlohmann/json.hpp>

// g++ 12 reports -Wmismatched-new-delete for Asio's awaitable frames (a sized operator delete
// paired with Asio's operator new); it is a false positive of the coroutine lowering.
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"

namespace mailtrail::postgrid::testing {
namespace {

using tcp = net::ip::tcp;

/// Writes raw bytes, ignoring errors: the peer may already be gone, which tests tolerate.
net::awaitable<void> WriteRaw(beast::tcp_stream* stream, std::string bytes) {
  beast::error_code ec;
  stream->expires_after(std::chrono::seconds(10));
  co_await net::async_write(*stream, net::buffer(bytes),
                            net::redirect_error(net::use_awaitable, ec));
}

}  // namespace

FakePostGrid::FakePostGrid(Handler handler) : handler_(std::move(handler)) {
  ioc_ = std::make_unique<net::io_context>(1);
  acceptor_ = std::make_unique<tcp::acceptor>(*ioc_);
  const tcp::endpoint endpoint(net::ip::make_address("127.0.0.1"), 0);
  acceptor_->open(endpoint.protocol());
  acceptor_->set_option(net::socket_base::reuse_address(true));
  acceptor_->bind(endpoint);
  acceptor_->listen();
  port_ = acceptor_->local_endpoint().port();
  net::co_spawn(*ioc_, Accept(), net::detached);
  thread_ = std::thread([this] { ioc_->run(); });
}

FakePostGrid::~FakePostGrid() {
  ioc_->stop();
  thread_.join();
  // Destroying the io_context destroys suspended sessions (their sockets close) before members.
  acceptor_.reset();
  ioc_.reset();
}

std::string FakePostGrid::base_url() const {
  return "http://127.0.0.1:" + std::to_string(port_) + kPrefix;
}

void FakePostGrid::SetHandler(Handler handler) {
  std::lock_guard lock(mutex_);
  handler_ = std::move(handler);
}

std::vector<FakeRequest> FakePostGrid::requests() const {
  std::lock_guard lock(mutex_);
  return requests_;
}

std::size_t FakePostGrid::request_count() const {
  std::lock_guard lock(mutex_);
  return requests_.size();
}

int FakePostGrid::peak_in_flight() const {
  std::lock_guard lock(mutex_);
  return peak_in_flight_;
}

int FakePostGrid::peak_connections() const {
  std::lock_guard lock(mutex_);
  return peak_connections_;
}

std::size_t FakePostGrid::connections_accepted() const {
  std::lock_guard lock(mutex_);
  return accepted_;
}

::testing::AssertionResult FakePostGrid::WaitForRequests(std::size_t count,
                                                         std::chrono::milliseconds timeout) const {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (request_count() >= count) return ::testing::AssertionSuccess();
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return ::testing::AssertionFailure() << "waited " << timeout.count() << " ms for " << count
                                       << " requests, got " << request_count();
}

net::awaitable<void> FakePostGrid::Accept() {
  for (;;) {
    beast::error_code ec;
    tcp::socket socket =
        co_await acceptor_->async_accept(net::redirect_error(net::use_awaitable, ec));
    if (ec) co_return;  // acceptor closed
    std::size_t connection = 0;
    {
      std::lock_guard lock(mutex_);
      connection = ++accepted_;
      peak_connections_ = std::max(peak_connections_, ++connections_);
    }
    net::co_spawn(*ioc_, Session(std::move(socket), connection), net::detached);
  }
}

net::awaitable<void> FakePostGrid::Session(tcp::socket socket, std::size_t connection) {
  beast::tcp_stream stream(std::move(socket));
  beast::flat_buffer buffer;
  for (;;) {
    http::request<http::string_body> request;
    beast::error_code ec;
    stream.expires_after(std::chrono::seconds(30));
    co_await http::async_read(stream, buffer, request, net::redirect_error(net::use_awaitable, ec));
    if (ec) break;

    FakeRequest seen;
    seen.method = std::string(request.method_string());
    seen.target = std::string(request.target());
    if (auto it = request.find("X-API-Key"); it != request.end()) {
      seen.api_key = std::string(it->value());
    }
    seen.connection = connection;
    seen.arrived = std::chrono::steady_clock::now();
    seen.responded = seen.arrived;
    Handler handler;
    std::size_t index = 0;
    {
      std::lock_guard lock(mutex_);
      handler = handler_;
      index = requests_.size();
      requests_.push_back(seen);
      peak_in_flight_ = std::max(peak_in_flight_, ++in_flight_);
    }
    const FakeResponse reply = handler(seen);
    if (reply.delay > std::chrono::milliseconds(0)) {
      net::steady_timer timer(co_await net::this_coro::executor);
      timer.expires_after(reply.delay);
      co_await timer.async_wait(net::redirect_error(net::use_awaitable, ec));
    }
    {
      std::lock_guard lock(mutex_);
      requests_[index].responded = std::chrono::steady_clock::now();
      requests_[index].status = reply.action == FakeAction::kRespond ? reply.status : 0;
    }

    bool keep_going = false;
    switch (reply.action) {
      case FakeAction::kRespond: {
        http::response<http::string_body> response(static_cast<http::status>(reply.status),
                                                   request.version());
        response.set(http::field::content_type, "application/json");
        for (const auto& [name, value] : reply.headers) response.set(name, value);
        response.body() = reply.body;
        response.keep_alive(request.keep_alive() && !reply.close);
        response.prepare_payload();
        stream.expires_after(std::chrono::seconds(10));
        co_await http::async_write(stream, response, net::redirect_error(net::use_awaitable, ec));
        keep_going = !ec && response.keep_alive() && !reply.silent_close;
        break;
      }
      case FakeAction::kResetMidResponse: {
        const std::string head = "HTTP/1.1 " + std::to_string(reply.status) +
                                 " OK\r\nContent-Type: application/json\r\nContent-Length: " +
                                 std::to_string(reply.body.size()) + "\r\n\r\n";
        co_await WriteRaw(&stream, head + reply.body.substr(0, reply.body.size() / 2));
        // Linger 0 turns close() into a TCP reset.
        stream.socket().set_option(net::socket_base::linger(true, 0), ec);
        stream.socket().close(ec);
        break;
      }
      case FakeAction::kCloseWithoutResponse:
        stream.socket().close(ec);
        break;
    }
    {
      std::lock_guard lock(mutex_);
      --in_flight_;
    }
    if (!keep_going) {
      break;
    }
  }
  beast::error_code ignored;
  stream.socket().shutdown(tcp::socket::shutdown_both, ignored);
  stream.socket().close(ignored);
  std::lock_guard lock(mutex_);
  --connections_;
}

std::string OrderJson(const std::string& id, const std::string& object) {
  nlohmann::json order = {
      {"id", id},
      {"object", object},
      {"live", false},
      {"status", "ready"},
      {"mailingClass", "first_class"},
      {"sendDate", "2026-01-05T00:00:00.000Z"},
      {"createdAt", "2026-01-01T10:00:00.000Z"},
      {"updatedAt", "2026-01-01T10:00:00.000Z"},
  };
  return order.dump();
}

std::string ListJson(const std::vector<std::string>& ids, int skip, int limit) {
  nlohmann::json data = nlohmann::json::array();
  for (int i = skip; i < skip + limit && i < static_cast<int>(ids.size()); ++i) {
    data.push_back(nlohmann::json::parse(OrderJson(ids[static_cast<std::size_t>(i)])));
  }
  return nlohmann::json{{"object", "list"},
                        {"skip", skip},
                        {"limit", limit},
                        {"totalCount", ids.size()},
                        {"data", data}}
      .dump();
}

std::string QueryParam(const std::string& target, const std::string& name) {
  const auto query_start = target.find('?');
  if (query_start == std::string::npos) return "";
  std::string query = target.substr(query_start + 1);
  std::size_t pos = 0;
  while (pos <= query.size()) {
    const auto end = std::min(query.find('&', pos), query.size());
    const std::string pair = query.substr(pos, end - pos);
    const auto eq = pair.find('=');
    if (pair.substr(0, eq) == name) return eq == std::string::npos ? "" : pair.substr(eq + 1);
    pos = end + 1;
  }
  return "";
}

std::string PathOf(const std::string& target) { return target.substr(0, target.find('?')); }

}  // namespace mailtrail::postgrid::testing
