#include "sim_process.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

// clang-format off
// Boost.Asio 1.74's awaitable.hpp uses std::exchange without including <utility>.
#include <utility>
#include <boost/asio.hpp>
#include <boost/beast.hpp>
// clang-format on
#include <condition_variable>
#include <deque>
#include <iostream>
#include <mutex>
#include <stdexcept>
#include <thread>
#include <utility>

namespace mailtrail::sim::testing {
namespace {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = net::ip::tcp;

std::string Lower(std::string s) {
  for (char& c : s) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return s;
}

net::awaitable<void> DoRequest(std::string host, uint16_t port, std::string method,
                               std::string target, std::string body, Headers headers,
                               std::chrono::milliseconds timeout, HttpResult* out) {
  boost::system::error_code ec;
  beast::tcp_stream stream(co_await net::this_coro::executor);
  stream.expires_after(timeout);
  const auto address = net::ip::make_address(host == "localhost" ? "127.0.0.1" : host, ec);
  if (ec) {
    out->error = "bad host " + host;
    co_return;
  }
  co_await stream.async_connect(tcp::endpoint(address, port),
                                net::redirect_error(net::use_awaitable, ec));
  if (ec) {
    out->error = "connect: " + ec.message();
    co_return;
  }
  http::request<http::string_body> req{http::string_to_verb(method), target, 11};
  req.set(http::field::host, host + ":" + std::to_string(port));
  bool has_type = false;
  for (const auto& [k, v] : headers) {
    req.set(k, v);
    if (Lower(k) == "content-type") has_type = true;
  }
  if (!body.empty() && !has_type) req.set(http::field::content_type, "application/json");
  req.body() = std::move(body);
  req.keep_alive(false);
  req.prepare_payload();
  co_await http::async_write(stream, req, net::redirect_error(net::use_awaitable, ec));
  if (ec) {
    out->error = "write: " + ec.message();
    co_return;
  }
  beast::flat_buffer buffer;
  http::response_parser<http::string_body> parser;
  parser.body_limit(256 << 20);
  co_await http::async_read(stream, buffer, parser, net::redirect_error(net::use_awaitable, ec));
  if (ec) {
    out->error = "read: " + ec.message();
    out->body = parser.get().body();
    co_return;
  }
  out->status = parser.get().result_int();
  out->body = parser.get().body();
  for (const auto& field : parser.get()) {
    out->headers[Lower(std::string(field.name_string()))] = std::string(field.value());
  }
  stream.socket().shutdown(tcp::socket::shutdown_both, ec);
}

}  // namespace

HttpResult HttpRequest(const std::string& host, uint16_t port, const std::string& method,
                       const std::string& target, const std::string& body, const Headers& headers,
                       std::chrono::milliseconds timeout) {
  HttpResult result;
  try {
    net::io_context ioc;
    net::co_spawn(ioc, DoRequest(host, port, method, target, body, headers, timeout, &result),
                  [&result](std::exception_ptr e) {
                    if (!e) return;
                    try {
                      std::rethrow_exception(e);
                    } catch (const std::exception& ex) {
                      result.status = 0;
                      result.error = ex.what();
                    }
                  });
    ioc.run_for(timeout + 1s);
  } catch (const std::exception& ex) {
    result.status = 0;
    result.error = ex.what();
  }
  return result;
}

// --- SimProcess -------------------------------------------------------------------------------

std::string SimProcess::BinaryPath() { return POSTGRID_SIM_BINARY; }

SimProcess::SimProcess(std::vector<std::string> args, std::chrono::milliseconds startup_timeout) {
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) throw std::runtime_error("pipe2 failed");
  const std::string binary = BinaryPath();
  std::vector<char*> argv;
  argv.push_back(const_cast<char*>(binary.c_str()));
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_ = fork();
  if (pid_ < 0) {
    close(fds[0]);
    close(fds[1]);
    throw std::runtime_error("fork failed");
  }
  if (pid_ == 0) {
    dup2(fds[1], STDOUT_FILENO);
    execv(binary.c_str(), argv.data());
    _exit(127);
  }
  close(fds[1]);
  stdout_fd_ = fds[0];
  std::string line;
  const auto deadline = std::chrono::steady_clock::now() + startup_timeout;
  while (line.find('\n') == std::string::npos) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      Stop(1s);
      throw std::runtime_error("postgrid-sim did not report its address in time");
    }
    pollfd p{stdout_fd_, POLLIN, 0};
    const int ready = poll(&p, 1, static_cast<int>(left.count()));
    if (ready <= 0) continue;
    char buf[256];
    const ssize_t n = read(stdout_fd_, buf, sizeof buf);
    if (n <= 0) {
      Stop(1s);
      throw std::runtime_error("postgrid-sim exited before reporting its address (" + binary + ")");
    }
    line.append(buf, static_cast<size_t>(n));
  }
  line.resize(line.find('\n'));
  constexpr std::string_view kPrefix = "listening on ";
  const size_t colon = line.rfind(':');
  if (line.rfind(kPrefix, 0) != 0 || colon == std::string::npos) {
    Stop(1s);
    throw std::runtime_error("unexpected first line from postgrid-sim: " + line);
  }
  host_ = line.substr(kPrefix.size(), colon - kPrefix.size());
  port_ = static_cast<uint16_t>(std::stoi(line.substr(colon + 1)));
}

SimProcess::~SimProcess() {
  if (pid_ > 0) Stop(5s);
  if (stdout_fd_ >= 0) close(stdout_fd_);
}

std::string SimProcess::base_url() const { return "http://" + host_ + ":" + std::to_string(port_); }

HttpResult SimProcess::Get(const std::string& target) const {
  return HttpRequest(host_, port_, "GET", target);
}
HttpResult SimProcess::Post(const std::string& target, const std::string& json_body) const {
  return HttpRequest(host_, port_, "POST", target, json_body);
}
HttpResult SimProcess::Delete(const std::string& target) const {
  return HttpRequest(host_, port_, "DELETE", target);
}
HttpResult SimProcess::Api(const std::string& method, const std::string& target,
                           const std::string& key, const std::string& body) const {
  return HttpRequest(host_, port_, method, "/print-mail/v1" + target, body, {{"X-API-Key", key}});
}

int SimProcess::Stop(std::chrono::milliseconds timeout) {
  if (pid_ <= 0) return -1;
  kill(pid_, SIGTERM);
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  int status = 0;
  while (std::chrono::steady_clock::now() < deadline) {
    const pid_t r = waitpid(pid_, &status, WNOHANG);
    if (r == pid_) {
      pid_ = -1;
      return status;
    }
    if (r < 0) {
      pid_ = -1;
      return -1;
    }
    std::this_thread::sleep_for(10ms);
  }
  kill(pid_, SIGKILL);
  waitpid(pid_, &status, 0);
  pid_ = -1;
  return -1;
}

// --- WebhookReceiver --------------------------------------------------------------------------

struct WebhookReceiver::Impl {
  net::io_context ioc;
  tcp::acceptor acceptor{ioc};
  std::thread thread;
  mutable std::mutex mutex;
  mutable std::condition_variable cv;
  std::vector<Received> received;
  std::deque<int> queued;
  int default_status = 200;
  uint16_t port = 0;

  int NextStatus() {
    std::lock_guard lock(mutex);
    if (queued.empty()) return default_status;
    const int s = queued.front();
    queued.pop_front();
    return s;
  }

  net::awaitable<void> Session(tcp::socket socket) {
    beast::tcp_stream stream(std::move(socket));
    beast::flat_buffer buffer;
    boost::system::error_code ec;
    for (;;) {
      http::request_parser<http::string_body> parser;
      parser.body_limit(64 << 20);
      stream.expires_after(30s);
      co_await http::async_read(stream, buffer, parser,
                                net::redirect_error(net::use_awaitable, ec));
      if (ec) break;
      auto req = parser.release();
      Received r;
      r.method = std::string(req.method_string());
      r.target = std::string(req.target());
      r.body = req.body();
      for (const auto& field : req) {
        r.headers[Lower(std::string(field.name_string()))] = std::string(field.value());
      }
      const int status = NextStatus();
      {
        std::lock_guard lock(mutex);
        received.push_back(std::move(r));
      }
      cv.notify_all();
      http::response<http::string_body> res{static_cast<http::status>(status), 11};
      res.set(http::field::content_type, "text/plain");
      res.body() = "ok";
      res.keep_alive(req.keep_alive());
      res.prepare_payload();
      co_await http::async_write(stream, res, net::redirect_error(net::use_awaitable, ec));
      if (ec || !res.keep_alive()) break;
    }
    stream.socket().shutdown(tcp::socket::shutdown_both, ec);
  }

  net::awaitable<void> Accept() {
    for (;;) {
      boost::system::error_code ec;
      tcp::socket socket(ioc);
      co_await acceptor.async_accept(socket, net::redirect_error(net::use_awaitable, ec));
      if (ec) co_return;
      net::co_spawn(ioc, Session(std::move(socket)), net::detached);
    }
  }
};

WebhookReceiver::WebhookReceiver() : impl_(std::make_unique<Impl>()) {
  const tcp::endpoint endpoint(net::ip::make_address("127.0.0.1"), 0);
  impl_->acceptor.open(endpoint.protocol());
  impl_->acceptor.bind(endpoint);
  impl_->acceptor.listen();
  impl_->port = impl_->acceptor.local_endpoint().port();
  net::co_spawn(impl_->ioc, impl_->Accept(), net::detached);
  impl_->thread = std::thread([this] { impl_->ioc.run(); });
}

WebhookReceiver::~WebhookReceiver() {
  impl_->ioc.stop();
  if (impl_->thread.joinable()) impl_->thread.join();
}

uint16_t WebhookReceiver::port() const { return impl_->port; }

std::string WebhookReceiver::url(const std::string& path) const {
  return "http://127.0.0.1:" + std::to_string(port()) + path;
}

void WebhookReceiver::SetDefaultStatus(int status) {
  std::lock_guard lock(impl_->mutex);
  impl_->default_status = status;
}

void WebhookReceiver::QueueStatuses(const std::vector<int>& statuses) {
  std::lock_guard lock(impl_->mutex);
  impl_->queued.insert(impl_->queued.end(), statuses.begin(), statuses.end());
}

std::vector<WebhookReceiver::Received> WebhookReceiver::requests() const {
  std::lock_guard lock(impl_->mutex);
  return impl_->received;
}

size_t WebhookReceiver::count() const {
  std::lock_guard lock(impl_->mutex);
  return impl_->received.size();
}

bool WebhookReceiver::WaitForCount(size_t n, std::chrono::milliseconds timeout) const {
  std::unique_lock lock(impl_->mutex);
  return impl_->cv.wait_for(lock, timeout, [&] { return impl_->received.size() >= n; });
}

}  // namespace mailtrail::sim::testing
