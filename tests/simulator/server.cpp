#include "server.hpp"

#include <algorithm>
#include <iostream>
#include <sstream>

#include "signing.hpp"

namespace mailtrail::sim {
namespace {

using tcp = net::ip::tcp;
using Json = nlohmann::json;
constexpr std::string_view kApiPrefix = "/print-mail/v1";
constexpr std::string_view kSimPrefix = "/__sim";

std::vector<std::string_view> Split(std::string_view path) {
  std::vector<std::string_view> out;
  while (!path.empty()) {
    if (path[0] == '/') {
      path.remove_prefix(1);
      continue;
    }
    const size_t slash = path.find('/');
    out.push_back(path.substr(0, slash));
    if (slash == std::string_view::npos) break;
    path.remove_prefix(slash);
  }
  return out;
}

std::map<std::string, std::string> QueryMap(std::string_view query) {
  std::map<std::string, std::string> out;
  for (auto& [k, v] : ParseQuery(query)) out[k] = v;
  return out;
}

/// Non-negative integer, digits only.
std::optional<uint64_t> ParseCount(const std::string& text) {
  if (text.empty() || text.size() > 15) return std::nullopt;
  uint64_t value = 0;
  for (const char c : text) {
    if (c < '0' || c > '9') return std::nullopt;
    value = value * 10 + static_cast<uint64_t>(c - '0');
  }
  return value;
}

std::string ErrorBody(std::string_view type, std::string_view message) {
  std::string out = "{\"object\":\"error\",\"error\":{\"type\":";
  AppendJsonString(out, type);
  out += ",\"message\":";
  AppendJsonString(out, message);
  out += "}}";
  return out;
}

bool IsLoopbackHost(std::string_view host) {
  return host == "localhost" || host.substr(0, 4) == "127.";
}

struct Url {
  std::string host;
  uint16_t port = 80;
  std::string target = "/";
};

std::optional<Url> ParseUrl(std::string_view url) {
  constexpr std::string_view kScheme = "http://";
  if (url.substr(0, kScheme.size()) != kScheme) return std::nullopt;
  url.remove_prefix(kScheme.size());
  const size_t slash = url.find('/');
  std::string_view authority = url.substr(0, slash);
  Url out;
  if (slash != std::string_view::npos) out.target = std::string(url.substr(slash));
  const size_t colon = authority.rfind(':');
  if (colon != std::string_view::npos) {
    const auto port = ParseCount(std::string(authority.substr(colon + 1)));
    if (!port || *port == 0 || *port > 65535) return std::nullopt;
    out.port = static_cast<uint16_t>(*port);
    authority = authority.substr(0, colon);
  }
  out.host = std::string(authority);
  if (out.host.empty()) return std::nullopt;
  return out;
}

void AppendList(std::string& out, uint64_t limit, uint64_t skip, uint64_t total,
                std::string_view data) {
  out += "{\"object\":\"list\",\"limit\":";
  out += std::to_string(limit);
  out += ",\"skip\":";
  out += std::to_string(skip);
  out += ",\"totalCount\":";
  out += std::to_string(total);
  out += ",\"data\":[";
  out += data;
  out += "]}";
}

/// Walks a dotted path (`metadata.campaignID`) through a JSON object.
const Json* Walk(const Json& root, std::string_view path) {
  const Json* node = &root;
  while (!path.empty()) {
    const size_t dot = path.find('.');
    const std::string key(path.substr(0, dot));
    if (!node->is_object()) return nullptr;
    const auto it = node->find(key);
    if (it == node->end()) return nullptr;
    node = &*it;
    if (dot == std::string_view::npos) break;
    path.remove_prefix(dot + 1);
  }
  return node;
}

bool BodyBool(const Json& body, const char* key, bool fallback) {
  if (!body.contains(key) || body[key].is_null()) return fallback;
  if (body[key].is_boolean()) return body[key].get<bool>();
  if (body[key].is_string()) return body[key].get<std::string>() == "true";
  throw std::invalid_argument(std::string(key) + " must be a boolean");
}

std::string BodyString(const Json& body, const char* key, std::string fallback) {
  if (!body.contains(key) || body[key].is_null()) return fallback;
  if (!body[key].is_string()) throw std::invalid_argument(std::string(key) + " must be a string");
  return body[key].get<std::string>();
}

int64_t BodyDuration(const Json& body, const char* key, int64_t fallback) {
  if (!body.contains(key) || body[key].is_null()) return fallback;
  if (body[key].is_number()) return body[key].get<int64_t>();
  if (body[key].is_string()) {
    const auto d = ParseDurationMs(body[key].get<std::string>());
    if (d) return *d;
  }
  throw std::invalid_argument(std::string(key) + " must be a duration like 90s, 2h or 3d, or ms");
}

/// Parses a JSON body, or a form-encoded one (`a=1&b=2`, repeated keys become arrays).
Json ParseBody(const std::string& body, std::string_view content_type) {
  if (body.empty()) return Json::object();
  if (content_type.find("application/x-www-form-urlencoded") != std::string_view::npos) {
    Json out = Json::object();
    for (auto& [k, v] : ParseQuery(body)) {
      std::string key = k;
      if (key.size() > 2 && key.substr(key.size() - 2) == "[]") key.resize(key.size() - 2);
      if (key.find('[') != std::string::npos) key = key.substr(0, key.find('['));
      if (out.contains(key)) {
        if (!out[key].is_array()) out[key] = Json::array({out[key]});
        out[key].push_back(v);
      } else {
        out[key] = v;
      }
    }
    return out;
  }
  return Json::parse(body);  // throws Json::parse_error
}

}  // namespace

Server::Server(net::io_context& ioc, World& world, ServerOptions options, uint64_t fault_seed)
    : ioc_(ioc),
      world_(world),
      options_(std::move(options)),
      faults_(fault_seed),
      acceptor_(ioc),
      tick_timer_(ioc) {
  world_.SetEventListener([this](uint64_t seq) { OnEvent(seq); });
}

void Server::Start() {
  const tcp::endpoint endpoint(net::ip::make_address(options_.host), options_.port);
  acceptor_.open(endpoint.protocol());
  acceptor_.set_option(net::socket_base::reuse_address(true));
  acceptor_.bind(endpoint);
  acceptor_.listen(net::socket_base::max_listen_connections);
  port_ = acceptor_.local_endpoint().port();
  const auto log_error = [](std::exception_ptr e) {
    if (!e) return;
    try {
      std::rethrow_exception(e);
    } catch (const std::exception& ex) {
      std::cerr << "postgrid-sim: background task failed: " << ex.what() << std::endl;
    }
  };
  net::co_spawn(ioc_, Accept(), log_error);
  net::co_spawn(ioc_, Tick(), log_error);
}

void Server::Stop() {
  stopped_ = true;
  boost::system::error_code ec;
  acceptor_.close(ec);
  tick_timer_.cancel();
}

std::string Server::AddTarget(WebhookTarget target) {
  if (target.id.empty()) target.id = "simhook_" + std::to_string(targets_.size() + 1);
  target.created_ms = target.updated_ms = world_.clock().Now();
  targets_.push_back(std::move(target));
  return targets_.back().id;
}

net::awaitable<void> Server::Accept() {
  for (;;) {
    boost::system::error_code ec;
    tcp::socket socket(ioc_);
    co_await acceptor_.async_accept(socket, net::redirect_error(net::use_awaitable, ec));
    if (stopped_) co_return;
    if (ec) {
      if (ec == net::error::operation_aborted) co_return;
      std::cerr << "postgrid-sim: accept failed: " << ec.message() << std::endl;
      continue;
    }
    socket.set_option(tcp::no_delay(true), ec);
    net::co_spawn(ioc_, Session(beast::tcp_stream(std::move(socket))), [](std::exception_ptr e) {
      if (!e) return;
      try {
        std::rethrow_exception(e);
      } catch (const std::exception& ex) {
        std::cerr << "postgrid-sim: session failed: " << ex.what() << std::endl;
      }
    });
  }
}

net::awaitable<void> Server::Tick() {
  while (!stopped_) {
    boost::system::error_code ec;
    tick_timer_.expires_after(std::chrono::milliseconds(options_.tick_ms));
    co_await tick_timer_.async_wait(net::redirect_error(net::use_awaitable, ec));
    if (stopped_) co_return;
    try {
      world_.CatchUp();
      const int64_t now = world_.clock().Now();
      while (!retries_.empty() && retries_.begin()->first <= now) {
        queue_.push_back(retries_.begin()->second);
        retries_.erase(retries_.begin());
      }
      StartWorkers();
    } catch (const std::exception& ex) {
      std::cerr << "postgrid-sim: tick failed: " << ex.what() << std::endl;
    }
  }
}

net::awaitable<void> Server::Session(beast::tcp_stream stream) {
  beast::flat_buffer buffer;
  boost::system::error_code ec;
  for (;;) {
    http::request_parser<http::string_body> parser;
    parser.body_limit(options_.body_limit);
    stream.expires_after(std::chrono::seconds(30));
    co_await http::async_read(stream, buffer, parser, net::redirect_error(net::use_awaitable, ec));
    if (ec == http::error::body_limit) {
      http::response<http::string_body> res{http::status::payload_too_large, 11};
      res.set(http::field::content_type, "application/json");
      res.body() = ErrorBody("validation_error", "request body too large");
      res.keep_alive(false);
      res.prepare_payload();
      stream.expires_after(std::chrono::seconds(10));
      co_await http::async_write(stream, res, net::redirect_error(net::use_awaitable, ec));
      break;
    }
    if (ec) break;
    Request req = parser.release();
    Response r;
    try {
      r = co_await Handle(req);
    } catch (const std::exception& ex) {
      std::cerr << "postgrid-sim: " << req.method_string() << " " << req.target()
                << " failed: " << ex.what() << std::endl;
      r.res = http::response<http::string_body>{http::status::internal_server_error, 11};
      r.res.set(http::field::content_type, "application/json");
      r.res.body() = ErrorBody("internal_server_error", ex.what());
    }
    if (r.latency_ms > 0) {
      net::steady_timer timer(ioc_);
      timer.expires_after(std::chrono::milliseconds(r.latency_ms));
      co_await timer.async_wait(net::redirect_error(net::use_awaitable, ec));
    }
    if (r.mode == Response::Mode::kDrop) {
      stream.socket().set_option(net::socket_base::linger(true, 0), ec);
      stream.socket().close(ec);
      co_return;
    }
    if (r.mode == Response::Mode::kTruncate) r.res.body().resize(r.res.body().size() / 2);
    r.res.keep_alive(req.keep_alive());
    r.res.prepare_payload();
    if (r.mode == Response::Mode::kReset) {
      // Send the head and half the body, then reset: the client sees a short read.
      std::ostringstream text;
      text << r.res;
      const std::string wire = text.str();
      const size_t cut = wire.size() - r.res.body().size() / 2;
      stream.expires_after(std::chrono::seconds(10));
      co_await net::async_write(stream, net::buffer(wire.data(), cut),
                                net::redirect_error(net::use_awaitable, ec));
      stream.socket().set_option(net::socket_base::linger(true, 0), ec);
      stream.socket().close(ec);
      co_return;
    }
    stream.expires_after(std::chrono::seconds(30));
    co_await http::async_write(stream, r.res, net::redirect_error(net::use_awaitable, ec));
    if (ec || !r.res.keep_alive()) break;
  }
  stream.socket().shutdown(tcp::socket::shutdown_send, ec);
}

void Server::Count(const std::string& route, int status) { ++counters_[{route, status}]; }

namespace {

std::string ApiRoute(std::string_view method, const std::vector<std::string_view>& seg) {
  std::string route(method);
  route += ' ';
  if (seg.empty()) return route + "/";
  route += '/';
  route += seg[0];
  if (seg[0] == "return_envelopes") {
    static constexpr std::string_view kParts[] = {"/{id}", "/orders", "/{id}", "/"};
    for (size_t i = 1; i < seg.size() && i < 5; ++i) {
      if (i == 4) {
        route += '/';
        route += seg[4];
      } else {
        route += kParts[i - 1];
      }
    }
    if (seg.size() > 5) route += "/...";
    return route;
  }
  if (seg.size() >= 2) route += "/{id}";
  if (seg.size() >= 3) {
    route += '/';
    route += seg[2];
  }
  if (seg.size() > 3) route += "/...";
  return route;
}

}  // namespace

net::awaitable<Server::Response> Server::Handle(Request& req) {
  const std::string_view target = Sv(req.target());
  const size_t qmark = target.find('?');
  const std::string_view path = target.substr(0, qmark);
  const std::string_view query =
      qmark == std::string_view::npos ? std::string_view() : target.substr(qmark + 1);
  std::string route;
  Response r;
  if (path == kSimPrefix || path.substr(0, kSimPrefix.size() + 1) == "/__sim/") {
    r = co_await HandleControl(req, path.substr(kSimPrefix.size()), query, route);
  } else if (path.substr(0, kApiPrefix.size()) == kApiPrefix &&
             (path.size() == kApiPrefix.size() || path[kApiPrefix.size()] == '/')) {
    const std::string_view sub = path.substr(kApiPrefix.size());
    route = ApiRoute(Sv(req.method_string()), Split(sub));
    const FaultDecision decision = faults_.Decide(Sv(req.method_string()), sub);
    r.latency_ms = decision.latency_ms;
    const auto& f = decision.action;
    if (f && f->kind == FaultKind::kRateLimit) {
      r.res = http::response<http::string_body>{http::status::too_many_requests, 11};
      r.res.set(http::field::content_type, "application/json");
      if (f->retry_after_s) r.res.set(http::field::retry_after, std::to_string(*f->retry_after_s));
      if (f->retry_after_ms) r.res.set("retry-after-ms", std::to_string(*f->retry_after_ms));
      r.res.body() = ErrorBody("rate_limit_exceeded_error", "Too many requests. Slow down.");
    } else if (f && f->kind == FaultKind::kError) {
      r.res = http::response<http::string_body>{static_cast<http::status>(f->status), 11};
      if (f->status == 502) {
        r.res.set(http::field::content_type, "text/html");
        r.res.body() =
            "<html><head><title>502 Bad Gateway</title></head><body>"
            "<center><h1>502 Bad Gateway</h1></center></body></html>\n";
      } else {
        r.res.set(http::field::content_type, "application/json");
        r.res.body() = f->status == 503
                           ? ErrorBody("service_unavailable_error", "Service unavailable")
                           : ErrorBody("internal_server_error", "Internal server error");
      }
    } else if (f && f->kind == FaultKind::kOutage) {
      r.mode = Response::Mode::kDrop;
    } else {
      const auto latency = r.latency_ms;
      r = HandleApi(req, sub, query);
      r.latency_ms = latency;
      if (f && f->kind == FaultKind::kReset) r.mode = Response::Mode::kReset;
      if (f && f->kind == FaultKind::kTruncate) r.mode = Response::Mode::kTruncate;
    }
  } else {
    route = std::string(req.method_string()) + " (unknown)";
    r.res = http::response<http::string_body>{http::status::not_found, 11};
    r.res.set(http::field::content_type, "application/json");
    r.res.body() = ErrorBody("not_found_error", "No route for " + std::string(path));
  }
  const int status = r.mode == Response::Mode::kDrop ? 0 : r.res.result_int();
  Count(route, status);
  if (route.find(" /__sim") == std::string::npos) {
    recent_.push_back(Seen{std::string(req.method_string()), std::string(target),
                           std::string(req["X-API-Key"]), route, status, world_.clock().Now()});
    if (recent_.size() > 10000) recent_.pop_front();
  }
  co_return r;
}

// --- the PostGrid API -----------------------------------------------------------------------

Server::Response Server::HandleApi(const Request& req, std::string_view path,
                                   std::string_view query) {
  Response r;
  r.res = http::response<http::string_body>{http::status::ok, 11};
  r.res.set(http::field::content_type, "application/json; charset=utf-8");
  const auto fail = [&r](http::status status, std::string_view type, std::string_view message) {
    r.res.result(status);
    r.res.body() = ErrorBody(type, message);
    return r;
  };
  const std::string_view key = Sv(req["X-API-Key"]);
  if (key.empty()) {
    return fail(http::status::unauthorized, "missing_auth_error",
                "Missing API key. Supply it in the x-api-key header.");
  }
  int mode = -1;
  if (key == options_.test_key) mode = 0;
  if (key == options_.live_key) mode = 1;
  if (mode < 0) {
    return fail(http::status::unauthorized, "permission_missing_error", "Invalid API key.");
  }
  const bool live = mode == 1;
  world_.CatchUp();
  const auto seg = Split(path);
  const auto q = QueryMap(query);
  const auto method = req.method();
  const auto not_found = [&](std::string_view what) {
    return fail(http::status::not_found, "not_found_error", std::string(what) + " not found.");
  };
  if (seg.empty()) return not_found("Route");

  if (seg[0] == "events") {
    if (seg.size() != 1 || method != http::verb::get) return not_found("Route");
    return ListEvents(mode, q);
  }
  if (seg[0] == "webhooks") {
    return WebhooksApi(req, mode, seg, q);
  }
  if (seg[0] == "return_envelopes") {
    if (seg.size() == 1) {
      if (method != http::verb::get) return not_found("Route");
      // Reuse the order list paging on envelope indices.
      const auto& envs = world_.EnvelopeList(live);
      uint64_t skip = 0;
      uint64_t limit = 10;
      if (q.count("skip")) {
        const auto v = ParseCount(q.at("skip"));
        if (!v)
          return fail(http::status::bad_request, "validation_error",
                      "skip must be a non-negative integer");
        skip = *v;
      }
      if (q.count("limit")) {
        const auto v = ParseCount(q.at("limit"));
        if (!v)
          return fail(http::status::bad_request, "validation_error",
                      "limit must be a non-negative integer");
        limit = std::min<uint64_t>(*v, 100);
      }
      std::string data;
      for (uint64_t i = skip; i < envs.size() && i < skip + limit; ++i) {
        if (!data.empty()) data.push_back(',');
        world_.RenderEnvelope(data, envs[envs.size() - 1 - i]);
      }
      std::string out;
      AppendList(out, limit, skip, envs.size(), data);
      r.res.body() = std::move(out);
      return r;
    }
    const auto env = world_.FindEnvelope(seg[1]);
    if (!env || world_.envelopes()[*env].live != live) return not_found("Return envelope");
    if (seg.size() == 2) {
      if (method != http::verb::get) return not_found("Route");
      std::string out;
      world_.RenderEnvelope(out, *env);
      r.res.body() = std::move(out);
      return r;
    }
    if (seg[2] != "orders") return not_found("Route");
    if (seg.size() == 3) {
      if (method != http::verb::get) return not_found("Route");
      return ListOrders(world_.envelopes()[*env].orders, q);
    }
    const auto index = world_.FindOrder(seg[3]);
    if (!index || world_.order(*index).kind != Kind::kReo || world_.order(*index).live != live ||
        world_.order(*index).envelope != *env) {
      return not_found("Return envelope order");
    }
    if (seg.size() == 4 && method == http::verb::get) {
      std::string out;
      world_.RenderOrder(out, *index, world_.StateOf(*index), true);
      r.res.body() = std::move(out);
      return r;
    }
    if (seg.size() == 4 && method == http::verb::delete_) {
      if (world_.Cancel(*index, "", false) != ActionResult::kOk) {
        return fail(http::status::unprocessable_entity, "invalid_cancellation_error",
                    "Only placed return envelope orders can be cancelled.");
      }
    } else if (seg.size() == 5 && seg[4] == "fills" && method == http::verb::post) {
      if (live) {
        return fail(http::status::unauthorized, "permission_missing_error",
                    "Fills are only available with a test API key.");
      }
      if (world_.Fill(*index) != ActionResult::kOk) {
        return fail(http::status::unprocessable_entity, "invalid_fill_error",
                    "Only placed return envelope orders can be filled.");
      }
    } else {
      return not_found("Route");
    }
    std::string out;
    world_.RenderOrder(out, *index, world_.StateOf(*index), true);
    r.res.body() = std::move(out);
    return r;
  }

  const auto kind = KindFromEndpoint(seg[0]);
  if (!kind || *kind == Kind::kReo) return not_found("Route");
  if (seg.size() == 1) {
    if (method != http::verb::get) return not_found("Route");
    return ListOrders(world_.List(live, *kind), q);
  }
  const auto index = world_.FindOrder(seg[1]);
  if (!index || world_.order(*index).kind != *kind || world_.order(*index).live != live) {
    return fail(http::status::not_found, "not_found_error",
                "Could not find " + std::string(InfoOf(*kind).object) + " with ID " +
                    std::string(seg[1]) + ".");
  }
  if (seg.size() == 2 && method == http::verb::get) {
    std::string out;
    world_.RenderOrder(out, *index, world_.StateOf(*index), true);
    r.res.body() = std::move(out);
    return r;
  }
  const bool cancel_delete = seg.size() == 2 && method == http::verb::delete_;
  const bool cancel_post =
      seg.size() == 3 && seg[2] == "cancellation" && method == http::verb::post &&
      (*kind == Kind::kLetter || *kind == Kind::kPostcard || *kind == Kind::kCheque);
  if (cancel_delete || cancel_post) {
    std::string note;
    bool with_note = false;
    if (cancel_post && !req.body().empty()) {
      try {
        const Json body = ParseBody(req.body(), Sv(req[http::field::content_type]));
        if (body.contains("note") && body["note"].is_string()) {
          note = body["note"].get<std::string>();
          with_note = true;
        }
      } catch (const std::exception& ex) {
        return fail(http::status::bad_request, "validation_error",
                    std::string("Invalid request body: ") + ex.what());
      }
    }
    if (world_.Cancel(*index, note, with_note) != ActionResult::kOk) {
      return fail(http::status::unprocessable_entity, "invalid_cancellation_error",
                  "Only orders with status ready can be cancelled.");
    }
  } else if (seg.size() == 3 && seg[2] == "progressions" && method == http::verb::post) {
    if (live) {
      return fail(http::status::unauthorized, "permission_missing_error",
                  "Progressions are only available with a test API key.");
    }
    if (world_.Progress(*index) != ActionResult::kOk) {
      return fail(http::status::unprocessable_entity, "invalid_progression_error",
                  "Cannot progress an order whose status is " +
                      std::string(world_.pool().Get(world_.StateOf(*index).status)) + ".");
    }
  } else {
    return not_found("Route");
  }
  std::string out;
  world_.RenderOrder(out, *index, world_.StateOf(*index), true);
  r.res.body() = std::move(out);
  return r;
}

Server::Response Server::ListOrders(const std::vector<uint32_t>& ids,
                                    const std::map<std::string, std::string>& q) {
  Response r;
  r.res = http::response<http::string_body>{http::status::ok, 11};
  r.res.set(http::field::content_type, "application/json; charset=utf-8");
  uint64_t skip = 0;
  uint64_t limit = 10;
  if (const auto it = q.find("skip"); it != q.end()) {
    const auto v = ParseCount(it->second);
    if (!v) {
      r.res.result(http::status::bad_request);
      r.res.body() = ErrorBody("validation_error", "skip must be a non-negative integer.");
      return r;
    }
    skip = *v;
  }
  if (const auto it = q.find("limit"); it != q.end()) {
    const auto v = ParseCount(it->second);
    if (!v) {
      r.res.result(http::status::bad_request);
      r.res.body() = ErrorBody("validation_error", "limit must be a non-negative integer.");
      return r;
    }
    limit = std::min<uint64_t>(*v, 100);
  }
  std::string data;
  uint64_t total = 0;
  const auto search_it = q.find("search");
  const std::string search = search_it == q.end() ? "" : search_it->second;
  if (search.empty()) {
    total = ids.size();
    for (uint64_t i = skip; i < total && i < skip + limit; ++i) {
      if (!data.empty()) data.push_back(',');
      const uint32_t index = ids[total - 1 - i];
      world_.RenderOrder(data, index, world_.StateOf(index), false);
    }
  } else {
    std::optional<Json> criteria;
    if (search.front() == '{') {
      try {
        criteria = Json::parse(search);
        if (!criteria->is_object()) criteria.reset();
      } catch (const Json::parse_error&) {
        criteria.reset();  // not JSON after all: free text
      }
    }
    const std::string needle = AsciiLower(search);
    for (size_t n = ids.size(); n-- > 0;) {
      const uint32_t index = ids[n];
      bool match = true;
      std::string rendered;
      if (criteria) {
        world_.RenderOrder(rendered, index, world_.StateOf(index), false);
        const Json order = Json::parse(rendered);
        for (const auto& [k, v] : criteria->items()) {
          const Json* found = Walk(order, k);
          if (found == nullptr || *found != v) {
            match = false;
            break;
          }
        }
      } else {
        const auto desc = world_.DescriptionOf(index);
        match = AsciiLower(world_.OrderId(index)).find(needle) != std::string::npos ||
                (desc && AsciiLower(*desc).find(needle) != std::string::npos);
      }
      if (!match) continue;
      if (total >= skip && total < skip + limit) {
        if (!data.empty()) data.push_back(',');
        if (rendered.empty()) {
          world_.RenderOrder(data, index, world_.StateOf(index), false);
        } else {
          data += rendered;
        }
      }
      ++total;
    }
  }
  std::string out;
  out.reserve(data.size() + 100);
  AppendList(out, limit, skip, total, data);
  r.res.body() = std::move(out);
  return r;
}

Server::Response Server::ListEvents(int mode, const std::map<std::string, std::string>& q) {
  Response r;
  r.res = http::response<http::string_body>{http::status::ok, 11};
  r.res.set(http::field::content_type, "application/json; charset=utf-8");
  uint64_t skip = 0;
  uint64_t limit = 10;
  for (const char* name : {"skip", "limit"}) {
    const auto it = q.find(name);
    if (it == q.end()) continue;
    const auto v = ParseCount(it->second);
    if (!v) {
      r.res.result(http::status::bad_request);
      r.res.body() =
          ErrorBody("validation_error", std::string(name) + " must be a non-negative integer.");
      return r;
    }
    if (name[0] == 's') {
      skip = *v;
    } else {
      limit = std::min<uint64_t>(*v, 100);
    }
  }
  std::vector<const std::vector<uint32_t>*> lists;
  const bool live = mode == 1;
  if (const auto it = q.find("type"); it != q.end() && !it->second.empty()) {
    std::string_view types = it->second;
    while (!types.empty()) {
      const size_t comma = types.find(',');
      const std::string_view type = types.substr(0, comma);
      const size_t dot = type.rfind('.');
      if (dot != std::string_view::npos) {
        const auto kind = KindFromObject(type.substr(0, dot));
        const auto action = type.substr(dot + 1);
        if (kind && (action == "created" || action == "updated")) {
          const auto* list = &world_.EventIndex(live, *kind, action == "updated");
          if (std::find(lists.begin(), lists.end(), list) == lists.end()) lists.push_back(list);
        }
      }
      if (comma == std::string_view::npos) break;
      types.remove_prefix(comma + 1);
    }
  } else {
    for (int k = 0; k < kKindCount; ++k) {
      for (int u = 0; u < 2; ++u)
        lists.push_back(&world_.EventIndex(live, static_cast<Kind>(k), u));
    }
  }
  uint64_t total = 0;
  std::vector<size_t> pos;  // next position from the end of each list
  for (const auto* l : lists) {
    total += l->size();
    pos.push_back(l->size());
  }
  std::string data;
  // Newest first: a k-way merge from the ends of the per-type sequence lists.
  for (uint64_t taken = 0; taken < skip + limit; ++taken) {
    int best = -1;
    uint32_t best_seq = 0;
    for (size_t i = 0; i < lists.size(); ++i) {
      if (pos[i] == 0) continue;
      const uint32_t seq = (*lists[i])[pos[i] - 1];
      if (best < 0 || seq > best_seq) {
        best = static_cast<int>(i);
        best_seq = seq;
      }
    }
    if (best < 0) break;
    --pos[static_cast<size_t>(best)];
    if (taken < skip) continue;
    if (!data.empty()) data.push_back(',');
    world_.RenderEvent(data, best_seq);
  }
  std::string out;
  AppendList(out, limit, skip, total, data);
  r.res.body() = std::move(out);
  return r;
}

// --- webhooks -------------------------------------------------------------------------------

void Server::RenderTarget(std::string& out, const WebhookTarget& t) const {
  Json j = {{"id", t.id},
            {"object", "webhook"},
            {"live", t.mode == 1},
            {"description", t.description},
            {"enabled", t.enabled},
            {"enabledEvents", t.events},
            {"payloadFormat", t.jwt ? "jwt" : "json"},
            {"url", t.url},
            {"secret", t.secret},
            {"createdAt", FormatIso(t.created_ms)},
            {"updatedAt", FormatIso(t.updated_ms)}};
  if (!t.api_managed) {
    j["mode"] = t.mode == 0 ? "test" : t.mode == 1 ? "live" : "both";
    j["timestampUnit"] = t.seconds_timestamp ? "s" : "ms";
    j["invocationCount"] = t.invocations.size();
  }
  out += j.dump();
}

void Server::RenderInvocation(std::string& out, const WebhookTarget& t,
                              const WebhookTarget::Invocation& inv) const {
  const Event& e = world_.events()[inv.event_seq];
  Json j = {{"id", inv.id},
            {"object", "webhook_invocation"},
            {"webhook", t.id},
            {"type", world_.EventType(e)},
            {"event", world_.EventId(inv.event_seq)},
            {"orderID", world_.OrderId(e.order)},
            {"statusCode", inv.status_code},
            {"attempt", inv.attempt},
            {"createdAt", FormatIso(inv.sim_ms)},
            {"sentAt", FormatIso(inv.wall_ms)}};
  if (!inv.error.empty()) j["error"] = inv.error;
  out += j.dump();
}

Server::Response Server::WebhooksApi(const Request& req, int mode,
                                     const std::vector<std::string_view>& seg,
                                     const std::map<std::string, std::string>& q) {
  Response r;
  r.res = http::response<http::string_body>{http::status::ok, 11};
  r.res.set(http::field::content_type, "application/json; charset=utf-8");
  const auto fail = [&r](http::status status, std::string_view type, std::string_view message) {
    r.res.result(status);
    r.res.body() = ErrorBody(type, message);
    return r;
  };
  const auto paging = [&](uint64_t& skip, uint64_t& limit) -> bool {
    skip = 0;
    limit = 10;
    for (const char* name : {"skip", "limit"}) {
      const auto it = q.find(name);
      if (it == q.end()) continue;
      const auto v = ParseCount(it->second);
      if (!v) return false;
      if (name[0] == 's') {
        skip = *v;
      } else {
        limit = std::min<uint64_t>(*v, 100);
      }
    }
    return true;
  };
  const auto apply = [&](WebhookTarget& t, const Json& body, bool creating) -> std::string {
    if (body.contains("url")) {
      if (!body["url"].is_string() || !ParseUrl(body["url"].get<std::string>())) {
        return "url must be an http:// URL";
      }
      t.url = body["url"].get<std::string>();
    } else if (creating) {
      return "url is required";
    }
    if (body.contains("secret")) {
      if (!body["secret"].is_string() || body["secret"].get<std::string>().size() < 20) {
        return "secret must be a string of at least 20 characters";
      }
      t.secret = body["secret"].get<std::string>();
    }
    if (body.contains("payloadFormat")) {
      const auto f =
          body["payloadFormat"].is_string() ? body["payloadFormat"].get<std::string>() : "";
      if (f != "jwt" && f != "json") return "payloadFormat must be jwt or json";
      t.jwt = f == "jwt";
    }
    if (body.contains("enabledEvents")) {
      Json events = body["enabledEvents"];
      if (events.is_string()) events = Json::array({events});
      if (!events.is_array()) return "enabledEvents must be an array of event types";
      t.events.clear();
      for (const auto& e : events) {
        if (!e.is_string()) return "enabledEvents must be an array of event types";
        t.events.push_back(e.get<std::string>());
      }
    } else if (creating) {
      return "enabledEvents is required";
    }
    if (body.contains("enabled")) t.enabled = BodyBool(body, "enabled", true);
    if (body.contains("description")) t.description = BodyString(body, "description", "");
    return "";
  };
  const auto find = [&](std::string_view id) -> WebhookTarget* {
    for (auto& t : targets_) {
      if (t.api_managed && !t.deleted && t.id == id && t.mode == mode) return &t;
    }
    return nullptr;
  };
  const auto method = req.method();
  Json body;
  if (method == http::verb::post) {
    try {
      body = ParseBody(req.body(), Sv(req[http::field::content_type]));
    } catch (const std::exception& ex) {
      return fail(http::status::bad_request, "validation_error",
                  std::string("Invalid request body: ") + ex.what());
    }
  }
  if (seg.size() == 1 && method == http::verb::post) {
    WebhookTarget t;
    t.api_managed = true;
    t.mode = mode;
    t.id = "webhook_" + Base62Encode64(Mix64(++webhook_counter_ ^ world_.seed()));
    t.secret = "webhook_secret_" + Base62Encode64(Mix64(webhook_counter_ * 7 + world_.seed()));
    try {
      if (const auto error = apply(t, body, true); !error.empty()) {
        return fail(http::status::bad_request, "validation_error", error);
      }
    } catch (const std::exception& ex) {
      return fail(http::status::bad_request, "validation_error", ex.what());
    }
    AddTarget(std::move(t));
    std::string out;
    RenderTarget(out, targets_.back());
    r.res.result(http::status::created);
    r.res.body() = std::move(out);
    return r;
  }
  if (seg.size() == 1 && method == http::verb::get) {
    uint64_t skip = 0;
    uint64_t limit = 0;
    if (!paging(skip, limit)) {
      return fail(http::status::bad_request, "validation_error",
                  "skip and limit must be non-negative integers.");
    }
    std::vector<const WebhookTarget*> mine;
    for (auto it = targets_.rbegin(); it != targets_.rend(); ++it) {
      if (it->api_managed && !it->deleted && it->mode == mode) mine.push_back(&*it);
    }
    std::string data;
    for (uint64_t i = skip; i < mine.size() && i < skip + limit; ++i) {
      if (!data.empty()) data.push_back(',');
      RenderTarget(data, *mine[i]);
    }
    std::string out;
    AppendList(out, limit, skip, mine.size(), data);
    r.res.body() = std::move(out);
    return r;
  }
  if (seg.size() < 2) return fail(http::status::not_found, "not_found_error", "Route not found.");
  WebhookTarget* t = find(seg[1]);
  if (t == nullptr) return fail(http::status::not_found, "not_found_error", "Webhook not found.");
  if (seg.size() == 2) {
    if (method == http::verb::post) {
      try {
        if (const auto error = apply(*t, body, false); !error.empty()) {
          return fail(http::status::bad_request, "validation_error", error);
        }
      } catch (const std::exception& ex) {
        return fail(http::status::bad_request, "validation_error", ex.what());
      }
      t->updated_ms = world_.clock().Now();
    } else if (method == http::verb::delete_) {
      t->deleted = true;
      Json j = {{"id", t->id}, {"object", "webhook"}, {"deleted", true}};
      r.res.body() = j.dump();
      return r;
    } else if (method != http::verb::get) {
      return fail(http::status::not_found, "not_found_error", "Route not found.");
    }
    std::string out;
    RenderTarget(out, *t);
    r.res.body() = std::move(out);
    return r;
  }
  if (seg.size() == 3 && seg[2] == "invocations" && method == http::verb::get) {
    uint64_t skip = 0;
    uint64_t limit = 0;
    if (!paging(skip, limit)) {
      return fail(http::status::bad_request, "validation_error",
                  "skip and limit must be non-negative integers.");
    }
    const auto& inv = t->invocations;
    std::string data;
    for (uint64_t i = skip; i < inv.size() && i < skip + limit; ++i) {
      if (!data.empty()) data.push_back(',');
      RenderInvocation(data, *t, inv[inv.size() - 1 - i]);
    }
    std::string out;
    AppendList(out, limit, skip, inv.size(), data);
    r.res.body() = std::move(out);
    return r;
  }
  return fail(http::status::not_found, "not_found_error", "Route not found.");
}

void Server::OnEvent(uint64_t seq) {
  if (targets_.empty()) return;
  const Event& e = world_.events()[seq];
  const Order& o = world_.order(e.order);
  const std::string type = world_.EventType(e);
  for (size_t i = 0; i < targets_.size(); ++i) {
    const auto& t = targets_[i];
    if (t.deleted || !t.enabled) continue;
    if (t.mode != 2 && (t.mode == 1) != o.live) continue;
    if (!t.events.empty() && std::find(t.events.begin(), t.events.end(), type) == t.events.end()) {
      continue;
    }
    queue_.push_back(Delivery{i, seq, 0});
  }
  StartWorkers();
}

void Server::StartWorkers() {
  while (!stopped_ && workers_ < options_.webhook_concurrency && workers_ < queue_.size()) {
    ++workers_;
    net::co_spawn(ioc_, WebhookWorker(), [](std::exception_ptr e) {
      if (!e) return;
      try {
        std::rethrow_exception(e);
      } catch (const std::exception& ex) {
        std::cerr << "postgrid-sim: webhook worker failed: " << ex.what() << std::endl;
      }
    });
  }
}

std::string Server::BuildDeliveryBody(const WebhookTarget& t, uint64_t seq, int64_t wall_ms,
                                      std::string& signature_header) {
  const Event& e = world_.events()[seq];
  std::string body;
  if (t.jwt) {
    std::string claims = "{\"type\":\"" + world_.EventType(e) + "\",\"data\":";
    world_.RenderOrder(claims, e.order, world_.StateAt(e.order, e.rec_end), true);
    claims += ",\"iat\":" + std::to_string(wall_ms / 1000) + "}";
    body = MakeJwtHs256(kJwtHeaderHs256, claims, t.secret);
    signature_header.clear();
  } else {
    world_.RenderEvent(body, seq);
    signature_header =
        PostGridSignature(t.secret, t.seconds_timestamp ? wall_ms / 1000 : wall_ms, body);
  }
  return body;
}

net::awaitable<void> Server::WebhookWorker() {
  while (!queue_.empty() && !stopped_) {
    const Delivery d = queue_.front();
    queue_.pop_front();
    if (targets_[d.target].deleted || !targets_[d.target].enabled) continue;
    const int64_t wall = WallNowMs();
    std::string signature;
    std::string body = BuildDeliveryBody(targets_[d.target], d.seq, wall, signature);
    std::vector<std::pair<std::string, std::string>> headers;
    headers.emplace_back("Content-Type",
                         targets_[d.target].jwt ? "application/jwt" : "application/json");
    if (!signature.empty()) headers.emplace_back("PostGrid-Signature", signature);
    const std::string url = targets_[d.target].url;
    PostResult result;
    try {
      result = co_await Post(url, std::move(headers), std::move(body));
    } catch (const std::exception& ex) {
      result.status = 0;
      result.error = ex.what();
    }
    ++deliveries_sent_;
    auto& t = targets_[d.target];
    WebhookTarget::Invocation inv;
    inv.id = "webhook_invocation_" + Base62Encode64(Mix64(++invocation_counter_ ^ world_.seed()));
    inv.event_seq = d.seq;
    inv.status_code = result.status;
    inv.attempt = d.attempt;
    inv.sim_ms = world_.clock().Now();
    inv.wall_ms = wall;
    inv.error = result.error;
    t.invocations.push_back(std::move(inv));
    if (result.status != 200 && static_cast<size_t>(d.attempt) < options_.retry_delays_ms.size()) {
      retries_.emplace(
          world_.clock().Now() + options_.retry_delays_ms[static_cast<size_t>(d.attempt)],
          Delivery{d.target, d.seq, d.attempt + 1});
    }
  }
  --workers_;
}

net::awaitable<PostResult> Server::Post(std::string url,
                                        std::vector<std::pair<std::string, std::string>> headers,
                                        std::string body) {
  PostResult result;
  const auto parsed = ParseUrl(url);
  if (!parsed) {
    result.error = "unsupported URL (only http:// is delivered)";
    co_return result;
  }
  if (!IsLoopbackHost(parsed->host)) {
    result.error = "non-loopback target refused by the simulator";
    co_return result;
  }
  boost::system::error_code ec;
  const auto address =
      net::ip::make_address(parsed->host == "localhost" ? "127.0.0.1" : parsed->host, ec);
  if (ec) {
    result.error = "bad host: " + ec.message();
    co_return result;
  }
  beast::tcp_stream stream(ioc_);
  const auto timeout = std::chrono::milliseconds(options_.webhook_timeout_ms);
  stream.expires_after(timeout);
  co_await stream.async_connect(tcp::endpoint(address, parsed->port),
                                net::redirect_error(net::use_awaitable, ec));
  if (ec) {
    result.error = "connect: " + ec.message();
    co_return result;
  }
  http::request<http::string_body> req{http::verb::post, parsed->target, 11};
  req.set(http::field::host, parsed->host + ":" + std::to_string(parsed->port));
  req.set(http::field::user_agent, "PostGrid-Webhooks (postgrid-sim)");
  for (auto& [k, v] : headers) req.set(k, v);
  req.body() = std::move(body);
  req.keep_alive(false);
  req.prepare_payload();
  stream.expires_after(timeout);
  co_await http::async_write(stream, req, net::redirect_error(net::use_awaitable, ec));
  if (ec) {
    result.error = "write: " + ec.message();
    co_return result;
  }
  beast::flat_buffer buffer;
  http::response_parser<http::string_body> parser;
  parser.body_limit(1 << 20);
  stream.expires_after(timeout);
  co_await http::async_read(stream, buffer, parser, net::redirect_error(net::use_awaitable, ec));
  if (ec) {
    result.error = "read: " + ec.message();
    co_return result;
  }
  result.status = parser.get().result_int();
  result.body = parser.get().body();
  stream.socket().shutdown(tcp::socket::shutdown_both, ec);
  co_return result;
}

// --- forged deliveries --------------------------------------------------------------------------

net::awaitable<Server::Response> Server::Forge(const Json& body) {
  Response r;
  r.res = http::response<http::string_body>{http::status::ok, 11};
  r.res.set(http::field::content_type, "application/json");
  const std::string url = BodyString(body, "url", "");
  const std::string secret = BodyString(body, "secret", "");
  const std::string kind = BodyString(body, "kind", "valid");
  static const std::vector<std::string> kJsonOnly = {"missing_header", "malformed_header"};
  const bool json_kind = std::find(kJsonOnly.begin(), kJsonOnly.end(), kind) != kJsonOnly.end();
  const std::string format = BodyString(body, "format", json_kind ? "json" : "jwt");
  const bool seconds = BodyString(body, "timestampUnit", "ms") == "s";
  const int64_t age_ms = BodyDuration(body, "age", 3'600'000);
  if (url.empty() || secret.empty()) throw std::invalid_argument("url and secret are required");
  if (format != "jwt" && format != "json")
    throw std::invalid_argument("format must be jwt or json");
  // The order: given by id, or the newest test letter.
  uint32_t index = 0;
  if (body.contains("orderId")) {
    const auto found = world_.FindOrder(BodyString(body, "orderId", ""));
    if (!found) throw std::invalid_argument("unknown orderId");
    index = *found;
  } else if (!world_.List(false, Kind::kLetter).empty()) {
    index = world_.List(false, Kind::kLetter).back();
  } else if (world_.order_count() == 0) {
    throw std::invalid_argument("the world has no orders to put in a delivery");
  }
  const std::string type =
      BodyString(body, "type", std::string(InfoOf(world_.order(index).kind).object) + ".updated");
  int64_t wall = WallNowMs();
  if (kind == "expired") wall -= age_ms;
  if (kind == "future") wall += age_ms;
  const std::string signing_secret = kind == "wrong_secret" ? secret + "-wrong" : secret;

  std::string order;
  world_.RenderOrder(order, index, world_.StateOf(index), true);
  std::string payload;
  std::vector<std::pair<std::string, std::string>> headers;
  if (format == "jwt") {
    std::string claims = "{\"type\":" + Json(type).dump() + ",\"data\":" + order +
                         ",\"iat\":" + std::to_string(wall / 1000) + "}";
    if (kind == "oversize") {
      const auto size = static_cast<size_t>(BodyDuration(body, "size", 2 << 20));
      claims.insert(claims.size() - 1, ",\"padding\":\"" + std::string(size, 'x') + "\"");
    }
    if (kind == "alg_none") {
      payload =
          Base64UrlEncode(R"({"alg":"none","typ":"JWT"})") + "." + Base64UrlEncode(claims) + ".";
    } else if (kind == "alg_rs256") {
      payload = MakeJwtHs256(R"({"alg":"RS256","typ":"JWT"})", claims, signing_secret);
    } else if (kind == "alg_hs512") {
      const std::string input =
          Base64UrlEncode(R"({"alg":"HS512","typ":"JWT"})") + "." + Base64UrlEncode(claims);
      payload = input + "." + Base64UrlEncode(HmacSha512(signing_secret, input));
    } else {
      payload = MakeJwtHs256(kJwtHeaderHs256, claims, signing_secret);
    }
    if (kind == "modified_body") {
      // Swap the claims segment for a different one, keeping the original signature.
      const size_t a = payload.find('.');
      const size_t b = payload.find('.', a + 1);
      std::string altered = claims;
      altered.replace(altered.find("\"type\":") + 8, 0, "x");
      payload = payload.substr(0, a + 1) + Base64UrlEncode(altered) + payload.substr(b);
    }
    if (kind == "truncated_token") payload.resize(payload.size() - 10);
    headers.emplace_back("Content-Type", "application/jwt");
  } else {
    payload = "{\"id\":\"event_forged" + std::to_string(WallNowMs() % 1000000) +
              "\",\"object\":\"event\",\"type\":" + Json(type).dump() +
              ",\"live\":" + (world_.order(index).live ? "true" : "false") + ",\"createdAt\":\"" +
              FormatIso(world_.clock().Now()) + "\",\"data\":" + order + ",\"updatedFields\":{}";
    if (kind == "oversize") {
      const auto size = static_cast<size_t>(BodyDuration(body, "size", 2 << 20));
      payload += ",\"padding\":\"" + std::string(size, 'x') + "\"";
    }
    payload += "}";
    const int64_t t = seconds ? wall / 1000 : wall;
    std::string signature = PostGridSignature(signing_secret, t, payload);
    if (kind == "modified_body") payload.replace(payload.find("\"live\":"), 7, "\"live\": ");
    if (kind == "truncated_token") payload.resize(payload.size() / 2);
    if (kind == "malformed_header") signature = "v1=" + signature.substr(signature.find("v1=") + 3);
    headers.emplace_back("Content-Type", "application/json");
    if (kind != "missing_header") headers.emplace_back("PostGrid-Signature", signature);
  }
  static const std::vector<std::string> kKinds = {
      "valid",           "wrong_secret",   "alg_none",         "alg_rs256",
      "alg_hs512",       "expired",        "future",           "modified_body",
      "truncated_token", "missing_header", "malformed_header", "oversize"};
  if (std::find(kKinds.begin(), kKinds.end(), kind) == kKinds.end()) {
    throw std::invalid_argument("unknown forgery kind '" + kind + "'");
  }
  Json sent_headers = Json::object();
  for (const auto& [k, v] : headers) sent_headers[k] = v;
  const size_t sent_bytes = payload.size();
  Json out = {
      {"kind", kind}, {"format", format}, {"headers", sent_headers}, {"sentBytes", sent_bytes}};
  if (payload.size() <= 65536) out["body"] = payload;
  const PostResult result = co_await Post(url, headers, std::move(payload));
  out["statusCode"] = result.status;
  if (!result.error.empty()) out["error"] = result.error;
  out["responseBody"] = result.body;
  r.res.body() = out.dump();
  co_return r;
}

// --- the control API ----------------------------------------------------------------------------

net::awaitable<Server::Response> Server::HandleControl(const Request& req, std::string_view path,
                                                       std::string_view query, std::string& route) {
  Response r;
  r.res = http::response<http::string_body>{http::status::ok, 11};
  r.res.set(http::field::content_type, "application/json");
  const auto seg = Split(path);
  const auto q = QueryMap(query);
  const auto method = req.method();
  route = std::string(req.method_string()) + " /__sim";
  for (size_t i = 0; i < seg.size(); ++i) {
    const bool is_id = i > 0 && (seg[i - 1] == "orders" || seg[i - 1] == "faults" ||
                                 seg[i - 1] == "webhook-targets");
    route += is_id ? std::string("/{id}") : "/" + std::string(seg[i]);
  }
  const auto reply = [&r](http::status status, const Json& j) {
    r.res.result(status);
    r.res.body() = j.dump();
    return r;
  };
  const auto error = [&](http::status status, std::string_view message) {
    return reply(status, Json{{"error", message}});
  };
  const auto clock_json = [this] {
    auto& c = world_.clock();
    const int64_t now = c.Now();
    return Json{
        {"now", FormatIso(now)}, {"nowMs", now}, {"paused", c.paused()}, {"speed", c.speed()}};
  };
  Json body = Json::object();
  try {
    if (method == http::verb::post && !req.body().empty()) body = Json::parse(req.body());
  } catch (const Json::parse_error& ex) {
    co_return error(http::status::bad_request, std::string("invalid JSON body: ") + ex.what());
  }
  try {
    world_.CatchUp();
    if (seg.empty() || (seg.size() == 1 && seg[0] == "health")) {
      co_return reply(http::status::ok, Json{{"ok", true}, {"orders", world_.order_count()}});
    }
    const std::string_view head = seg[0];
    if (head == "clock" && seg.size() == 1 && method == http::verb::get) {
      co_return reply(http::status::ok, clock_json());
    }
    if ((head == "clock" && seg.size() == 2) || (head == "advance" && seg.size() == 1)) {
      if (method != http::verb::post)
        co_return error(http::status::method_not_allowed, "POST only");
      const std::string_view action = head == "advance" ? "advance" : seg[1];
      size_t applied = 0;
      if (action == "pause") {
        world_.clock().Pause();
      } else if (action == "resume") {
        world_.clock().Resume();
      } else if (action == "speed") {
        if (!body.contains("speed") || !body["speed"].is_number()) {
          co_return error(http::status::bad_request, "speed (number) is required");
        }
        world_.clock().SetSpeed(body["speed"].get<double>());
      } else if (action == "advance") {
        int64_t ms = BodyDuration(body, "duration", -1);
        if (ms < 0) ms = BodyDuration(body, "ms", -1);
        if (ms < 0) co_return error(http::status::bad_request, "duration or ms is required");
        applied = world_.AdvanceBy(ms);
        const int64_t now = world_.clock().Now();
        while (!retries_.empty() && retries_.begin()->first <= now) {
          queue_.push_back(retries_.begin()->second);
          retries_.erase(retries_.begin());
        }
        StartWorkers();
      } else {
        co_return error(http::status::not_found, "unknown clock action");
      }
      Json j = clock_json();
      j["applied"] = applied;
      co_return reply(http::status::ok, j);
    }
    if (head == "orders") {
      if (seg.size() == 1 && method == http::verb::post) {
        CreateSpec spec;
        const std::string type = BodyString(body, "type", "letters");
        auto kind = KindFromEndpoint(type);
        if (!kind) kind = KindFromObject(type);
        if (!kind) co_return error(http::status::bad_request, "unknown type '" + type + "'");
        spec.kind = *kind;
        spec.live = BodyBool(body, "live", false);
        spec.mailing_class = BodyString(body, "mailingClass", "first_class");
        spec.extra_service = BodyString(body, "extraService", "");
        const auto path_name = BodyString(body, "path", "normal");
        const auto path_value = PathFromName(path_name);
        if (!path_value)
          co_return error(http::status::bad_request, "unknown path '" + path_name + "'");
        spec.path = *path_value;
        if (body.contains("description")) spec.description = BodyString(body, "description", "");
        if (body.contains("metadata")) {
          if (!body["metadata"].is_object()) {
            co_return error(http::status::bad_request, "metadata must be an object");
          }
          spec.metadata_json = body["metadata"].dump();
        }
        if (spec.description && !spec.metadata_json) spec.metadata_json = std::nullopt;
        spec.send_delay_ms = BodyDuration(body, "sendDelay", 86'400'000);
        spec.us = BodyBool(body, "us", true);
        spec.unknown_enums = BodyBool(body, "unknownEnums", false);
        if (body.contains("envelope")) {
          const auto env = world_.FindEnvelope(BodyString(body, "envelope", ""));
          if (!env) co_return error(http::status::bad_request, "unknown envelope");
          spec.envelope = *env;
        }
        const uint32_t index = world_.Create(spec);
        std::string order;
        world_.RenderOrder(order, index, world_.StateOf(index), true);
        Json j = {{"id", world_.OrderId(index)}, {"order", Json::parse(order)}};
        if (spec.kind == Kind::kReo) {
          j["returnEnvelope"] = world_.envelopes()[world_.order(index).envelope].id;
        }
        co_return reply(http::status::created, j);
      }
      if (seg.size() == 1 && method == http::verb::get) {
        uint64_t skip = 0;
        uint64_t limit = 100;
        if (q.count("skip")) skip = ParseCount(q.at("skip")).value_or(0);
        if (q.count("limit"))
          limit = std::min<uint64_t>(ParseCount(q.at("limit")).value_or(100), 10000);
        std::optional<Kind> kind;
        if (q.count("type")) {
          kind = KindFromEndpoint(q.at("type"));
          if (!kind) kind = KindFromObject(q.at("type"));
          if (!kind) co_return error(http::status::bad_request, "unknown type");
        }
        std::optional<bool> live;
        if (q.count("live")) live = q.at("live") == "true";
        const std::string status = q.count("status") ? q.at("status") : "";
        std::string data;
        uint64_t total = 0;
        for (uint32_t i = 0; i < world_.order_count(); ++i) {
          const Order& o = world_.order(i);
          if (kind && o.kind != *kind) continue;
          if (live && o.live != *live) continue;
          if (!status.empty() && world_.pool().Get(o.status) != status) continue;
          if (total >= skip && total < skip + limit) {
            if (!data.empty()) data.push_back(',');
            world_.RenderSummary(data, i);
          }
          ++total;
        }
        std::string out;
        AppendList(out, limit, skip, total, data);
        r.res.body() = std::move(out);
        co_return r;
      }
      const auto index = world_.FindOrder(seg[1]);
      if (!index) co_return error(http::status::not_found, "unknown order id");
      if (seg.size() == 2 && method == http::verb::get) {
        std::string out;
        world_.RenderSummary(out, *index);
        r.res.body() = std::move(out);
        co_return r;
      }
      if (seg.size() == 3 && seg[2] == "truth" && method == http::verb::get) {
        std::string out;
        world_.RenderTruth(out, *index);
        r.res.body() = std::move(out);
        co_return r;
      }
      if (seg.size() == 3 && seg[2] == "step" && method == http::verb::post) {
        if (world_.Step(*index) != ActionResult::kOk) {
          co_return error(http::status::unprocessable_entity, "the order's plan is finished");
        }
        std::string out;
        world_.RenderSummary(out, *index);
        r.res.body() = std::move(out);
        co_return r;
      }
      co_return error(http::status::not_found, "unknown orders route");
    }
    if (head == "stats") {
      if (method == http::verb::delete_ || (seg.size() == 2 && seg[1] == "reset")) {
        counters_.clear();
        recent_.clear();
        co_return reply(http::status::ok, Json{{"reset", true}});
      }
      Json requests = Json::array();
      uint64_t total = 0;
      for (const auto& [k, v] : counters_) {
        if (k.first.find(" /__sim") != std::string::npos) continue;
        requests.push_back({{"endpoint", k.first}, {"status", k.second}, {"count", v}});
        total += v;
      }
      Json control = Json::array();
      for (const auto& [k, v] : counters_) {
        if (k.first.find(" /__sim") == std::string::npos) continue;
        control.push_back({{"endpoint", k.first}, {"status", k.second}, {"count", v}});
      }
      size_t retries = retries_.size();
      co_return reply(http::status::ok, Json{{"total", total},
                                             {"requests", requests},
                                             {"control", control},
                                             {"world",
                                              {{"orders", world_.order_count()},
                                               {"events", world_.events().size()},
                                               {"queue", world_.queue_size()},
                                               {"stepsApplied", world_.steps_applied()},
                                               {"clock", clock_json()}}},
                                             {"webhooks",
                                              {{"queued", queue_.size()},
                                               {"inFlight", workers_},
                                               {"retriesScheduled", retries},
                                               {"sent", deliveries_sent_}}}});
    }
    if (head == "requests" && method == http::verb::get) {
      const uint64_t limit = q.count("limit") ? ParseCount(q.at("limit")).value_or(100) : 100;
      Json list = Json::array();
      for (auto it = recent_.rbegin(); it != recent_.rend() && list.size() < limit; ++it) {
        list.push_back({{"method", it->method},
                        {"target", it->target},
                        {"apiKey", it->api_key},
                        {"endpoint", it->route},
                        {"status", it->status},
                        {"at", FormatIso(it->sim_ms)}});
      }
      co_return reply(http::status::ok, Json{{"data", list}, {"totalCount", recent_.size()}});
    }
    if (head == "faults") {
      if (seg.size() == 1 && method == http::verb::get) {
        Json list = Json::array();
        for (const auto& f : faults_.list()) list.push_back(FaultToJson(f));
        co_return reply(http::status::ok, Json{{"data", list}});
      }
      if (seg.size() == 1 && method == http::verb::post) {
        FaultSpec spec;
        try {
          spec = FaultFromJson(body);
        } catch (const std::invalid_argument& ex) {
          co_return error(http::status::bad_request, ex.what());
        }
        const uint64_t id = faults_.Add(spec);
        co_return reply(http::status::created, Json{{"id", id}});
      }
      if (seg.size() == 1 && method == http::verb::delete_) {
        faults_.Clear();
        co_return reply(http::status::ok, Json{{"cleared", true}});
      }
      if (seg.size() == 2 && method == http::verb::delete_) {
        const auto id = ParseCount(std::string(seg[1]));
        if (!id || !faults_.Remove(*id)) co_return error(http::status::not_found, "no such fault");
        co_return reply(http::status::ok, Json{{"removed", *id}});
      }
    }
    if (head == "webhook-targets") {
      if (seg.size() == 1 && method == http::verb::post) {
        WebhookTarget t;
        t.url = BodyString(body, "url", "");
        if (!ParseUrl(t.url))
          co_return error(http::status::bad_request, "url must be http://host:port/path");
        t.secret = BodyString(body, "secret", "");
        if (t.secret.size() < 20) {
          co_return error(http::status::bad_request, "secret must be at least 20 characters");
        }
        const auto format = BodyString(body, "format", "jwt");
        if (format != "jwt" && format != "json")
          co_return error(http::status::bad_request, "format must be jwt or json");
        t.jwt = format == "jwt";
        const auto mode = BodyString(body, "mode", "both");
        t.mode = mode == "test" ? 0 : mode == "live" ? 1 : 2;
        t.seconds_timestamp = BodyString(body, "timestampUnit", "ms") == "s";
        if (body.contains("events") && body["events"].is_array()) {
          for (const auto& e : body["events"]) t.events.push_back(e.get<std::string>());
        }
        AddTarget(std::move(t));
        std::string out;
        RenderTarget(out, targets_.back());
        r.res.result(http::status::created);
        r.res.body() = std::move(out);
        co_return r;
      }
      if (seg.size() == 1 && method == http::verb::get) {
        std::string data;
        size_t n = 0;
        for (const auto& t : targets_) {
          if (t.deleted) continue;
          if (!data.empty()) data.push_back(',');
          RenderTarget(data, t);
          ++n;
        }
        std::string out;
        AppendList(out, n, 0, n, data);
        r.res.body() = std::move(out);
        co_return r;
      }
      WebhookTarget* target = nullptr;
      if (seg.size() >= 2) {
        for (auto& t : targets_) {
          if (!t.deleted && t.id == seg[1]) target = &t;
        }
      }
      if (target == nullptr) co_return error(http::status::not_found, "no such webhook target");
      if (seg.size() == 2 && method == http::verb::delete_) {
        target->deleted = true;
        co_return reply(http::status::ok, Json{{"deleted", true}});
      }
      if (seg.size() == 3 && seg[2] == "invocations" && method == http::verb::get) {
        std::string data;
        for (const auto& inv : target->invocations) {
          if (!data.empty()) data.push_back(',');
          RenderInvocation(data, *target, inv);
        }
        std::string out;
        AppendList(out, target->invocations.size(), 0, target->invocations.size(), data);
        r.res.body() = std::move(out);
        co_return r;
      }
    }
    if (head == "webhooks" && seg.size() == 2 && seg[1] == "forge" && method == http::verb::post) {
      co_return co_await Forge(body);
    }
    co_return error(http::status::not_found, "unknown control route");
  } catch (const std::invalid_argument& ex) {
    co_return error(http::status::bad_request, ex.what());
  } catch (const Json::exception& ex) {
    co_return error(http::status::bad_request, ex.what());
  }
}

}  // namespace mailtrail::sim
