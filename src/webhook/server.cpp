#include "webhook/server.hpp"

#include <spdlog/spdlog.h>

#include <atomic>
#include <deque>
#include <exception>
#include <mutex>
#include <nlohmann/json.hpp>
#include <set>
#include <string_view>

#include "webhook/verify.hpp"

namespace mailtrail::webhook {

using tcp = net::ip::tcp;
using Response = http::response<http::string_body>;

struct Server::State {
  net::any_io_executor executor;
  ServerOptions options;
  TriggerFn trigger;
  GroupCommit group_commit;

  /// A delivery waiting for its batch. `done` never expires by itself: the flusher cancels it.
  struct Pending {
    explicit Pending(const net::any_io_executor& executor) : done(executor) {}
    domain::WebhookDelivery delivery;
    std::optional<RecordOutcome> outcome;
    net::steady_timer done;
  };
  // Touched only on `executor`.
  std::deque<std::shared_ptr<Pending>> pending;
  bool flushing = false;
  std::atomic<std::size_t> waiting{0};  // pending.size(), readable from any thread

  // Touched only on `executor` (after Start).
  std::unique_ptr<tcp::acceptor> acceptor;
  std::set<beast::tcp_stream*> sessions;
  bool stopping = false;

  std::atomic<std::uint16_t> port{0};
  mutable std::mutex counts_mutex;
  std::map<std::string, std::uint64_t> counts;
  std::map<std::string, std::uint64_t> refusals;

  void Count(const std::string& result) {
    std::lock_guard lock(counts_mutex);
    ++counts[result];
  }
  void CountRefusal(const std::string& reason, int status) {
    std::lock_guard lock(counts_mutex);
    ++counts[status == 401 ? "refused_401" : "refused_400"];
    ++refusals[reason];
  }
  domain::Timestamp Now() const {
    if (options.clock) return options.clock();
    return std::chrono::time_point_cast<std::chrono::microseconds>(
        std::chrono::system_clock::now());
  }
};

namespace {

using StatePtr = std::shared_ptr<Server::State>;

/// Request headers beyond this are refused (431-worthy; answered 400): PostGrid sends a handful.
constexpr std::uint32_t kHeaderLimit = 16 * 1024;
/// A session's read buffer: a delivery (JWT or JSON, about 2 KB with its headers) in one read.
constexpr std::size_t kReadBufferBytes = 4 * 1024;

void LogIfFailed(const std::exception_ptr& error, const char* what) {
  if (!error) return;
  try {
    std::rethrow_exception(error);
  } catch (const std::exception& e) {
    spdlog::error("webhook: {} ended with an error: {}", what, e.what());
  }
}

Response MakeResponse(http::status status, std::string body, unsigned version, bool keep_alive) {
  Response response{status, version};
  response.set(http::field::server, "mailtrail");
  response.set(http::field::content_type, "text/plain; charset=utf-8");
  response.keep_alive(keep_alive);
  response.body() = std::move(body);
  response.body().push_back('\n');
  response.prepare_payload();
  return response;
}

/// What of a refused body can be kept in the `payload jsonb` column: the body itself when it is
/// JSON, otherwise the body as a JSON string (a refused JWT stays readable for audits). Invalid
/// UTF-8 is replaced, so the text is always valid JSON.
std::optional<std::string> RefusedPayload(const std::string& body) {
  if (body.empty()) return std::nullopt;
  if (nlohmann::json::accept(body)) return body;
  return nlohmann::json(body).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

/// Stores queued deliveries batch by batch until none is left: whatever arrived while one batch
/// was being stored forms the next (group commit). Runs on the state's executor, one at a time.
net::awaitable<void> FlushPending(StatePtr state) {
  while (!state->pending.empty()) {
    const std::size_t take =
        std::min(state->pending.size(), std::max<std::size_t>(state->group_commit.max_batch, 1));
    std::vector<std::shared_ptr<Server::State::Pending>> batch(
        state->pending.begin(), state->pending.begin() + static_cast<std::ptrdiff_t>(take));
    state->pending.erase(state->pending.begin(),
                         state->pending.begin() + static_cast<std::ptrdiff_t>(take));
    state->waiting = state->pending.size();
    std::vector<domain::WebhookDelivery> deliveries;
    deliveries.reserve(batch.size());
    for (auto& p : batch) deliveries.push_back(std::move(p->delivery));
    std::vector<RecordOutcome> outcomes;
    try {
      outcomes = co_await state->group_commit.record(std::move(deliveries));
      if (outcomes.size() != batch.size()) {
        spdlog::error("webhook: group commit returned {} outcomes for {} deliveries",
                      outcomes.size(), batch.size());
        outcomes.clear();
      }
    } catch (const std::exception& e) {
      spdlog::error("webhook: recording a batch of {} deliveries failed: {}", batch.size(),
                    e.what());
      outcomes.clear();
    }
    for (std::size_t i = 0; i < batch.size(); ++i) {
      batch[i]->outcome =
          outcomes.empty() ? RecordOutcome{RecordStatus::kUnavailable, 0} : outcomes[i];
      batch[i]->done.cancel();
    }
  }
  state->flushing = false;
}

/// Records one delivery: a place in the next group-commit batch.
net::awaitable<RecordOutcome> RecordOne(StatePtr state, domain::WebhookDelivery delivery) {
  auto pending = std::make_shared<Server::State::Pending>(state->executor);
  pending->delivery = std::move(delivery);
  pending->done.expires_at(net::steady_timer::time_point::max());
  state->pending.push_back(pending);
  state->waiting = state->pending.size();
  if (!state->flushing) {
    state->flushing = true;
    net::co_spawn(state->executor, FlushPending(state), [state](const std::exception_ptr& error) {
      state->flushing = false;
      if (!error) return;
      LogIfFailed(error, "group commit");
      // Whoever still waits is answered 503 (their batch was not stored) rather than never.
      for (auto& p : state->pending) p->done.cancel();
      state->pending.clear();
      state->waiting = 0;
    });
  }
  // Single-threaded executor: the flusher cannot run between this check and the wait.
  if (!pending->outcome) {
    beast::error_code ec;  // operation_aborted: the flusher is done with this delivery
    co_await pending->done.async_wait(net::redirect_error(net::use_awaitable, ec));
  }
  if (!pending->outcome) co_return RecordOutcome{RecordStatus::kUnavailable, 0};
  co_return *pending->outcome;
}

struct Handled {
  Response response;
  std::string result;  // the counter key
};

/// Verifies, records and answers one delivery. Parameters by value: the coroutine outlives none
/// of its caller's locals.
net::awaitable<Response> HandleDelivery(StatePtr state, Headers headers, std::string body,
                                        unsigned version, bool keep_alive) {
  const domain::Timestamp now = state->Now();
  VerifyResult verified =
      Verify(headers, body, state->options.secrets, now, state->options.max_age);

  domain::WebhookDelivery delivery;
  delivery.received_at = now;
  delivery.body_sha256 = Sha256Hex(body);
  if (verified.format) delivery.payload_format = std::string(PayloadFormatName(*verified.format));
  delivery.verified = verified.ok;

  Event event;
  if (verified.ok) {
    event = ParseEvent(verified.payload);
    delivery.event_id = event.event_id;
    if (!event.type.empty()) delivery.event_type = event.type;
    if (event.order) delivery.order_id = event.order->id;
    // The event's own text (the JSON format's body, the JWT's claims), not a re-serialisation.
    delivery.payload = std::move(verified.payload_text);
  } else {
    delivery.rejection_reason = verified.reason;
    delivery.payload = RefusedPayload(body);
  }

  RecordOutcome outcome;
  try {
    outcome = co_await RecordOne(state, std::move(delivery));
  } catch (const std::exception& e) {
    spdlog::error("webhook: recording a delivery failed: {}", e.what());
    outcome = RecordOutcome{RecordStatus::kUnavailable, 0};
  }

  const char* format = verified.format ? PayloadFormatName(*verified.format).data() : "unknown";
  if (outcome.status == RecordStatus::kUnavailable) {
    state->Count("unavailable");
    spdlog::error("webhook: delivery not recorded (database unavailable); answering 503");
    co_return MakeResponse(http::status::service_unavailable, "unavailable", version, keep_alive);
  }
  if (!verified.ok) {
    state->CountRefusal(verified.reason, verified.status);
    spdlog::warn("webhook: refused delivery {} (format {}): {} -> {}", outcome.delivery_id, format,
                 verified.reason, verified.status);
    co_return MakeResponse(static_cast<http::status>(verified.status), verified.reason, version,
                           keep_alive);
  }
  if (outcome.status == RecordStatus::kDuplicate) {
    state->Count("duplicate");
    spdlog::info("webhook: replay of delivery {} ({}), nothing triggered", outcome.delivery_id,
                 event.type);
    co_return MakeResponse(http::status::ok, "duplicate", version, keep_alive);
  }
  if (!event.order) {
    state->Count("ignored");
    spdlog::debug("webhook: delivery {} ({}) recorded, no order to refresh", outcome.delivery_id,
                  event.type);
    co_return MakeResponse(http::status::ok, "ignored", version, keep_alive);
  }
  state->Count("accepted");
  spdlog::debug("webhook: delivery {} ({} {}) accepted", outcome.delivery_id, event.type,
                event.order->id);
  try {
    if (state->trigger) state->trigger(*event.order, outcome.delivery_id);
  } catch (const std::exception& e) {
    // Recorded already, so the delivery is not lost: the sync picks unprocessed deliveries up.
    spdlog::error("webhook: refresh trigger for {} failed: {}", event.order->id, e.what());
  }
  co_return MakeResponse(http::status::ok, "ok", version, keep_alive);
}

/// Removes a session's stream from the registry however the session ends.
class SessionRegistration {
 public:
  SessionRegistration(Server::State* state, beast::tcp_stream* stream)
      : state_(state), stream_(stream) {
    state_->sessions.insert(stream_);
  }
  ~SessionRegistration() { state_->sessions.erase(stream_); }
  SessionRegistration(const SessionRegistration&) = delete;
  SessionRegistration& operator=(const SessionRegistration&) = delete;

 private:
  Server::State* state_;
  beast::tcp_stream* stream_;
};

bool IsParseError(const beast::error_code& ec) {
  return ec.category() == http::make_error_code(http::error::bad_method).category();
}

net::awaitable<void> RunSession(StatePtr state, tcp::socket socket) {
  beast::tcp_stream stream(std::move(socket));
  SessionRegistration registration(state.get(), &stream);
  beast::flat_buffer buffer;
  // Beast reads max(512, spare capacity) bytes at a time and the parser empties the buffer as it
  // goes, so without this a 2 KB delivery took four reads through the parser.
  buffer.reserve(kReadBufferBytes);
  const ServerOptions& options = state->options;

  while (!state->stopping) {
    http::request_parser<http::string_body> parser;
    parser.header_limit(kHeaderLimit);
    parser.body_limit(options.max_body);
    beast::error_code ec;

    stream.expires_after(options.header_timeout);
    co_await http::async_read_header(stream, buffer, parser,
                                     net::redirect_error(net::use_awaitable, ec));
    std::optional<Response> response;
    bool close_after = false;
    if (ec == http::error::body_limit) {
      state->Count("too_large");
      response = MakeResponse(http::status::payload_too_large, "too_large", 11, false);
      close_after = true;
    } else if (IsParseError(ec) && ec != http::error::end_of_stream) {
      state->Count("bad_request");
      response = MakeResponse(http::status::bad_request, "bad_request", 11, false);
      close_after = true;
    } else if (ec) {
      // The peer left, went quiet past the deadline, or we are stopping.
      if (ec == beast::error::timeout) spdlog::debug("webhook: closing an idle or slow client");
      break;
    }

    if (!response) {
      const auto& header = parser.get();
      const unsigned version = header.version();
      std::string_view target(header.target().data(), header.target().size());
      target = target.substr(0, target.find('?'));
      const bool on_path = target == options.path;
      const bool is_post = header.method() == http::verb::post;
      if (on_path && is_post) {
        if (!parser.is_done() && beast::iequals(header[http::field::expect], "100-continue")) {
          // curl and some HTTP libraries wait (curl: 1 s) for this before sending the body.
          http::response<http::empty_body> go_on{http::status::continue_, version};
          stream.expires_after(options.write_timeout);
          co_await http::async_write(stream, go_on, net::redirect_error(net::use_awaitable, ec));
          if (ec) break;
        }
        stream.expires_after(options.body_timeout);
        co_await http::async_read(stream, buffer, parser,
                                  net::redirect_error(net::use_awaitable, ec));
        if (ec == http::error::body_limit) {
          state->Count("too_large");
          response = MakeResponse(http::status::payload_too_large, "too_large", version, false);
          close_after = true;
        } else if (IsParseError(ec) && ec != http::error::end_of_stream) {
          state->Count("bad_request");
          response = MakeResponse(http::status::bad_request, "bad_request", version, false);
          close_after = true;
        } else if (ec) {
          break;
        } else {
          auto request = parser.release();
          Headers headers;
          for (const auto& field : request) {
            headers.push_back(Header{std::string(field.name_string()), std::string(field.value())});
          }
          close_after = !request.keep_alive();
          // Recording may take a while (the DB hop); the socket has no deadline meanwhile.
          stream.expires_never();
          response = co_await HandleDelivery(state, std::move(headers), std::move(request.body()),
                                             version, !close_after);
        }
      } else {
        // The body of a stray request is not read; unless there is none, the connection closes.
        close_after = !parser.is_done() || !header.keep_alive();
        if (!on_path) {
          state->Count("not_found");
          response = MakeResponse(http::status::not_found, "not_found", version, !close_after);
        } else {
          state->Count("method_not_allowed");
          response = MakeResponse(http::status::method_not_allowed, "method_not_allowed", version,
                                  !close_after);
          response->set(http::field::allow, "POST");
        }
      }
    }

    stream.expires_after(options.write_timeout);
    co_await http::async_write(stream, *response, net::redirect_error(net::use_awaitable, ec));
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
      // E.g. out of file descriptors: wait a little instead of spinning on the error.
      spdlog::warn("webhook: accept failed: {}", ec.message());
      net::steady_timer pause(state->executor, std::chrono::milliseconds(100));
      co_await pause.async_wait(net::redirect_error(net::use_awaitable, ec));
      continue;
    }
    beast::error_code ignored;  // no_delay is an optimisation; a failure is harmless
    socket.set_option(tcp::no_delay(true), ignored);
    net::co_spawn(state->executor, RunSession(state, std::move(socket)),
                  [](const std::exception_ptr& error) { LogIfFailed(error, "session"); });
  }
}

}  // namespace

Server::Server(net::any_io_executor executor, ServerOptions options, GroupCommit record,
               TriggerFn trigger)
    : state_(std::make_shared<State>()) {
  state_->executor = std::move(executor);
  state_->options = std::move(options);
  state_->group_commit = std::move(record);
  state_->trigger = std::move(trigger);
}

Server::~Server() = default;

void Server::Start() {
  const auto address = net::ip::make_address(state_->options.host);
  const tcp::endpoint endpoint(address, state_->options.port);
  auto acceptor = std::make_unique<tcp::acceptor>(state_->executor);
  acceptor->open(endpoint.protocol());
  acceptor->set_option(tcp::acceptor::reuse_address(true));
  acceptor->bind(endpoint);
  acceptor->listen(net::socket_base::max_listen_connections);
  state_->port = acceptor->local_endpoint().port();
  state_->acceptor = std::move(acceptor);
  spdlog::info("webhook: listening on {}:{}{}", state_->options.host, state_->port.load(),
               state_->options.path);
  net::co_spawn(state_->executor, AcceptLoop(state_),
                [](const std::exception_ptr& error) { LogIfFailed(error, "accept loop"); });
}

std::uint16_t Server::Port() const { return state_->port.load(); }

void Server::Stop() {
  net::post(state_->executor, [state = state_] {
    if (state->stopping) return;
    state->stopping = true;
    beast::error_code ignored;  // closing is best effort; a failure leaves nothing to undo
    if (state->acceptor) state->acceptor->close(ignored);
    for (beast::tcp_stream* stream : state->sessions) stream->socket().close(ignored);
  });
}

std::map<std::string, std::uint64_t> Server::Counts() const {
  std::lock_guard lock(state_->counts_mutex);
  return state_->counts;
}

std::size_t Server::WaitingForRecording() const { return state_->waiting.load(); }

std::map<std::string, std::uint64_t> Server::RefusalCounts() const {
  std::lock_guard lock(state_->counts_mutex);
  return state_->refusals;
}

}  // namespace mailtrail::webhook
