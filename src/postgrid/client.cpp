#include "postgrid/client.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <optional>
#include <stdexcept>
#include <utility>

namespace mailtrail::postgrid {
namespace {

using std::chrono::milliseconds;

constexpr std::string_view kUserAgent = "mailtrail/0.1";
constexpr std::size_t kMaxDetailChars = 300;

void CheckPage(int skip, int limit) {
  if (skip < 0) throw std::invalid_argument("PostGrid list: skip must be >= 0");
  if (limit < 1 || limit > 100) throw std::invalid_argument("PostGrid list: limit must be 1..100");
}

std::string PageQuery(int skip, int limit) {
  return "skip=" + std::to_string(skip) + "&limit=" + std::to_string(limit);
}

std::optional<std::string_view> Header(const netio::HttpConnection::Response& response,
                                       std::string_view name) {
  const auto it = response.find(beast::string_view(name.data(), name.size()));
  if (it == response.end()) return std::nullopt;
  return std::string_view(it->value().data(), it->value().size());
}

/// PostGrid's `{"error":{"type","message"}}`, else a printable prefix of the body. Error bodies
/// are only ever shown, never interpreted as data.
std::string ErrorDetail(const std::string& body) {
  auto parsed = nlohmann::json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (parsed.is_object() && parsed.contains("error") && parsed["error"].is_object()) {
    const auto& error = parsed["error"];
    std::string detail;
    if (error.contains("type") && error["type"].is_string()) {
      detail = error["type"].get<std::string>();
    }
    if (error.contains("message") && error["message"].is_string()) {
      if (!detail.empty()) detail += ": ";
      detail += error["message"].get<std::string>();
    }
    if (!detail.empty()) return detail.substr(0, kMaxDetailChars);
  }
  std::string printable;
  for (const char c : body.substr(0, kMaxDetailChars)) {
    printable.push_back(c >= 0x20 && c < 0x7f ? c : '?');
  }
  return printable.empty() ? std::string("empty body") : "body: " + printable;
}

/// A kept-alive connection the server closed while it sat idle fails the next request before any
/// byte of a response arrives; that is not the server's answer to this request.
bool IsStaleConnection(const beast::error_code& ec) {
  return ec == http::error::end_of_stream || ec == net::error::eof || ec == net::error::broken_pipe;
}

}  // namespace

std::string_view PurposeName(Purpose purpose) {
  switch (purpose) {
    case Purpose::kPoll:
      return "poll";
    case Purpose::kDiscovery:
      return "discovery";
    case Purpose::kFullScan:
      return "full_scan";
    case Purpose::kWebhook:
      return "webhook";
    case Purpose::kBackfill:
      return "backfill";
    case Purpose::kManual:
      return "manual";
    case Purpose::kCheck:
      return "check";
  }
  return "unknown";
}

std::string_view EndpointKindName(EndpointKind kind) {
  switch (kind) {
    case EndpointKind::kRetrieve:
      return "retrieve";
    case EndpointKind::kList:
      return "list";
    case EndpointKind::kListReturnEnvelopes:
      return "list_return_envelopes";
    case EndpointKind::kListEnvelopeOrders:
      return "list_envelope_orders";
    case EndpointKind::kProgress:
      return "progress";
    case EndpointKind::kEvents:
      return "events";
  }
  return "unknown";
}

Client::Client(const net::any_io_executor& executor, ClientOptions options)
    : executor_(executor),
      options_(std::move(options)),
      url_(netio::ParseUrl(options_.base_url)),
      backoff_{.max_attempts = options_.max_attempts,
               .initial = options_.backoff_initial,
               .max = options_.backoff_max,
               .jitter = options_.jitter},
      limiter_(options_.requests_per_second,
               options_.burst > 0 ? options_.burst : DefaultBurst(options_.requests_per_second)),
      slots_(executor, options_.max_concurrency),
      random_(std::random_device{}()) {
  if (options_.max_attempts < 1) throw std::invalid_argument("max_attempts must be >= 1");
  if (options_.max_concurrency < 1) throw std::invalid_argument("max_concurrency must be >= 1");
  if (options_.timeout <= milliseconds(0)) throw std::invalid_argument("timeout must be > 0");
  if (options_.requests_per_second < 0) {
    throw std::invalid_argument("requests_per_second must be >= 0");
  }
  if (url_.Tls()) tls_ = std::make_unique<ssl::context>(netio::MakeClientTlsContext());
}

Client::~Client() = default;

net::awaitable<nlohmann::json> Client::Retrieve(domain::OrderRef ref, Purpose purpose) {
  Document document = co_await RetrieveDocument(std::move(ref), purpose);
  co_return std::move(document.json);
}

net::awaitable<Document> Client::RetrieveDocument(domain::OrderRef ref, Purpose purpose) {
  std::string target;
  if (ref.type == domain::OrderType::kReturnEnvelopeOrder) {
    if (ref.envelope_id.empty()) {
      throw ApiError(ApiErrorKind::kRejected, 0, "GET /return_envelopes/?/orders/" + ref.id, ref.id,
                     "return envelope order reference without an envelope id");
    }
    target = "/return_envelopes/" + netio::PercentEncode(ref.envelope_id) + "/orders/" +
             netio::PercentEncode(ref.id);
  } else {
    target = "/" + std::string(domain::EndpointName(ref.type)) + "/" + netio::PercentEncode(ref.id);
  }
  RequestSpec spec{EndpointKind::kRetrieve, purpose, http::verb::get, std::move(target), ref.id};
  co_return co_await Execute(std::move(spec));
}

net::awaitable<nlohmann::json> Client::List(domain::OrderType type, int skip, int limit,
                                            std::string search, Purpose purpose) {
  if (type == domain::OrderType::kReturnEnvelopeOrder) {
    throw std::invalid_argument(
        "PostGrid list: return envelope orders are listed per envelope (ListEnvelopeOrders)");
  }
  CheckPage(skip, limit);
  std::string target = "/" + std::string(domain::EndpointName(type)) + "?" + PageQuery(skip, limit);
  if (!search.empty()) target += "&search=" + netio::PercentEncode(search);
  RequestSpec spec{EndpointKind::kList, purpose, http::verb::get, std::move(target), ""};
  Document document = co_await Execute(std::move(spec));
  co_return std::move(document.json);
}

net::awaitable<nlohmann::json> Client::ListReturnEnvelopes(int skip, int limit, Purpose purpose) {
  CheckPage(skip, limit);
  RequestSpec spec{EndpointKind::kListReturnEnvelopes, purpose, http::verb::get,
                   "/return_envelopes?" + PageQuery(skip, limit), ""};
  Document document = co_await Execute(std::move(spec));
  co_return std::move(document.json);
}

net::awaitable<nlohmann::json> Client::ListEnvelopeOrders(std::string envelope_id, int skip,
                                                          int limit, Purpose purpose) {
  CheckPage(skip, limit);
  if (envelope_id.empty()) throw std::invalid_argument("PostGrid list: empty envelope id");
  RequestSpec spec{EndpointKind::kListEnvelopeOrders, purpose, http::verb::get,
                   "/return_envelopes/" + netio::PercentEncode(envelope_id) + "/orders?" +
                       PageQuery(skip, limit),
                   ""};
  Document document = co_await Execute(std::move(spec));
  co_return std::move(document.json);
}

net::awaitable<nlohmann::json> Client::Progress(domain::OrderRef ref, Purpose purpose) {
  std::string target;
  if (ref.type == domain::OrderType::kReturnEnvelopeOrder) {
    if (ref.envelope_id.empty()) {
      throw ApiError(ApiErrorKind::kRejected, 0, "POST /return_envelopes/?/orders/" + ref.id,
                     ref.id, "return envelope order reference without an envelope id");
    }
    target = "/return_envelopes/" + netio::PercentEncode(ref.envelope_id) + "/orders/" +
             netio::PercentEncode(ref.id) + "/fills";
  } else {
    target = "/" + std::string(domain::EndpointName(ref.type)) + "/" +
             netio::PercentEncode(ref.id) + "/progressions";
  }
  RequestSpec spec{EndpointKind::kProgress, purpose, http::verb::post, std::move(target), ref.id};
  Document document = co_await Execute(std::move(spec));
  co_return std::move(document.json);
}

net::awaitable<nlohmann::json> Client::Events(std::vector<std::string> types, int skip, int limit,
                                              Purpose purpose) {
  CheckPage(skip, limit);
  std::string target = "/events?";
  if (!types.empty()) {
    target += "type=";
    for (std::size_t i = 0; i < types.size(); ++i) {
      if (i > 0) target += ",";
      target += netio::PercentEncode(types[i]);
    }
    target += "&";
  }
  target += PageQuery(skip, limit);
  RequestSpec spec{EndpointKind::kEvents, purpose, http::verb::get, std::move(target), ""};
  Document document = co_await Execute(std::move(spec));
  co_return std::move(document.json);
}

std::vector<RequestCount> Client::RequestCounts() const {
  std::vector<RequestCount> snapshot;
  {
    std::lock_guard lock(counts_mutex_);
    snapshot = counts_;
  }
  std::sort(snapshot.begin(), snapshot.end(), [](const RequestCount& a, const RequestCount& b) {
    return std::tie(a.endpoint, a.purpose, a.status) < std::tie(b.endpoint, b.purpose, b.status);
  });
  return snapshot;
}

void Client::Count(const RequestSpec& spec, int status) {
  std::lock_guard lock(counts_mutex_);
  for (auto& cell : counts_) {
    if (cell.endpoint == spec.kind && cell.purpose == spec.purpose && cell.status == status) {
      ++cell.count;
      return;
    }
  }
  counts_.push_back({spec.kind, spec.purpose, status, 1});
}

std::string Client::Redact(std::string text) const {
  // The key never reaches a log line or an error: servers may echo it back in error bodies.
  const std::string& key = options_.api_key;
  if (key.empty()) return text;
  for (auto pos = text.find(key); pos != std::string::npos; pos = text.find(key, pos)) {
    text.replace(pos, key.size(), "[redacted]");
  }
  return text;
}

double Client::Random01() { return std::uniform_real_distribution<double>(0.0, 1.0)(random_); }

netio::HttpConnection::Request Client::BuildRequest(const RequestSpec& spec) const {
  netio::HttpConnection::Request request(spec.method, url_.path_prefix + spec.target, 11);
  request.set(http::field::host, url_.HostHeader());
  request.set(http::field::user_agent, beast::string_view(kUserAgent.data(), kUserAgent.size()));
  request.set(http::field::accept, "application/json");
  request.set("X-API-Key", options_.api_key);
  request.keep_alive(true);
  return request;
}

net::awaitable<std::unique_ptr<netio::HttpConnection>> Client::Connect() {
  co_return co_await netio::HttpConnection::Connect(url_, tls_.get(), options_.timeout);
}

net::awaitable<netio::HttpConnection::Response> Client::SendOnce(RequestSpec spec) {
  std::unique_ptr<netio::HttpConnection> connection;
  if (!idle_.empty()) {
    connection = std::move(idle_.back());
    idle_.pop_back();
  }
  const bool reused = connection != nullptr;
  if (!connection) connection = co_await Connect();

  // The token is taken right before the write, so the rate holds for what reaches the server.
  co_await limiter_.Acquire();
  try {
    auto request = BuildRequest(spec);
    auto response =
        co_await connection->Send(std::move(request), options_.timeout, options_.max_body);
    if (connection->Reusable()) idle_.push_back(std::move(connection));
    co_return response;
  } catch (const boost::system::system_error& error) {
    if (!reused || !IsStaleConnection(error.code())) throw;
    Count(spec, 0);
  }
  // One fresh connection for a request that died on a stale kept-alive one; not an attempt.
  spdlog::debug("postgrid {} {}: kept-alive connection was closed by the server, reconnecting",
                std::string(http::to_string(spec.method)), spec.target);
  connection = co_await Connect();
  co_await limiter_.Acquire();
  auto request = BuildRequest(spec);
  auto response =
      co_await connection->Send(std::move(request), options_.timeout, options_.max_body);
  if (connection->Reusable()) idle_.push_back(std::move(connection));
  co_return response;
}

// Call sites build the RequestSpec as a named local: g++ 12 destroys a braced temporary passed
// straight into a coroutine parameter inside co_await twice (seen as a double free).
net::awaitable<Document> Client::Execute(RequestSpec spec) {
  const std::string endpoint = std::string(http::to_string(spec.method)) + " " + spec.target;
  ApiErrorKind last_kind = ApiErrorKind::kTransient;
  int last_status = 0;
  std::string last_detail;

  for (int attempt = 1;; ++attempt) {
    std::optional<milliseconds> pause;  // a 429's requested pause (or backoff), for everyone
    {
      auto permit = co_await slots_.Acquire();
      const auto started = std::chrono::steady_clock::now();
      std::optional<netio::HttpConnection::Response> response;
      try {
        response = co_await SendOnce(spec);
      } catch (const boost::system::system_error& error) {
        Count(spec, 0);
        last_kind = ApiErrorKind::kTransient;
        last_status = 0;
        last_detail =
            Redact(error.code() == beast::error::timeout
                       ? "timed out after " + std::to_string(options_.timeout.count()) + " ms"
                       : "connection error: " + error.code().message());
      }
      if (response) {
        const int status = static_cast<int>(response->result_int());
        Count(spec, status);
        const auto elapsed =
            std::chrono::duration_cast<milliseconds>(std::chrono::steady_clock::now() - started);
        spdlog::debug("postgrid {} purpose={} attempt={} -> {} in {} ms", endpoint,
                      PurposeName(spec.purpose), attempt, status, elapsed.count());
        if (options_.observe_latency) {
          options_.observe_latency(
              spec.kind,
              std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count());
        }
        const StatusClass status_class = ClassifyStatus(status);
        if (status_class.success) {
          auto parsed = nlohmann::json::parse(response->body(), nullptr, false);
          if (!parsed.is_discarded())
            co_return Document{std::move(parsed), std::move(response->body())};
          // A cut-off 200 body is more likely a dropped connection than a lasting fault: retry.
          last_kind = ApiErrorKind::kBadResponse;
          last_status = status;
          last_detail = "response body is not valid JSON (" +
                        std::to_string(response->body().size()) + " bytes)";
        } else {
          last_kind = status_class.kind;
          last_status = status;
          last_detail = Redact(ErrorDetail(response->body()));
          if (!status_class.retry) {
            throw ApiError(last_kind, status, endpoint, spec.order_id, last_detail);
          }
          if (status == 429) {
            pause =
                ParseRetryAfter(Header(*response, "retry-after-ms"),
                                Header(*response, "retry-after"), std::chrono::system_clock::now());
            if (!pause) pause = BackoffDelay(backoff_, attempt, Random01());
            limiter_.PauseFor(*pause);
          }
        }
      }
    }  // the slot is free while we wait

    if (attempt >= backoff_.max_attempts) {
      const ApiErrorKind kind = last_kind == ApiErrorKind::kBadResponse ? ApiErrorKind::kBadResponse
                                                                        : ApiErrorKind::kTransient;
      throw ApiError(kind, last_status, endpoint, spec.order_id,
                     last_detail + " (gave up after " + std::to_string(attempt) + " attempts)");
    }
    // After a 429 the limiter holds every request until the pause ends; no extra sleep needed.
    const milliseconds delay =
        pause ? milliseconds(0) : BackoffDelay(backoff_, attempt, Random01());
    ++retries_;
    retry_wait_ms_ += static_cast<std::uint64_t>(pause ? pause->count() : delay.count());
    spdlog::warn("postgrid {}{}: attempt {}/{} failed ({}{}), retrying in {} ms", endpoint,
                 spec.order_id.empty() ? "" : " (order " + spec.order_id + ")", attempt,
                 backoff_.max_attempts,
                 last_status != 0 ? "HTTP " + std::to_string(last_status) + ": " : "", last_detail,
                 pause ? pause->count() : delay.count());
    if (delay > milliseconds(0)) {
      net::steady_timer timer(executor_);
      timer.expires_after(delay);
      co_await timer.async_wait(net::use_awaitable);
    }
  }
}

ListPager::ListPager(Client& client, ListQuery query, Purpose purpose)
    : client_(&client), query_(std::move(query)), purpose_(purpose), skip_(query_.start_skip) {
  CheckPage(skip_, query_.page_size);
}

net::awaitable<nlohmann::json> ListPager::Fetch(int skip, int limit) {
  switch (query_.source) {
    case ListQuery::Source::kOrders:
      co_return co_await client_->List(query_.type, skip, limit, query_.search, purpose_);
    case ListQuery::Source::kReturnEnvelopes:
      co_return co_await client_->ListReturnEnvelopes(skip, limit, purpose_);
    case ListQuery::Source::kEnvelopeOrders:
      co_return co_await client_->ListEnvelopeOrders(query_.envelope_id, skip, limit, purpose_);
    case ListQuery::Source::kEvents:
      co_return co_await client_->Events(query_.event_types, skip, limit, purpose_);
  }
  throw std::logic_error("ListPager: unknown list source");
}

ListPager::Range ListPager::ReadPage(nlohmann::json page, int skip) {
  if (!page.is_object() || !page.contains("data") || !page["data"].is_array()) {
    throw ApiError(ApiErrorKind::kBadResponse, 200, "list page at skip=" + std::to_string(skip), "",
                   "list response has no `data` array");
  }
  if (page.contains("totalCount") && page["totalCount"].is_number_integer()) {
    total_count_ = page["totalCount"].get<long long>();
  }
  Range range;
  range.covered = static_cast<int>(page["data"].size());
  range.items = std::move(page["data"]);
  return range;
}

net::awaitable<ListPager::Range> ListPager::FetchRange(int skip, int limit) {
  std::optional<ApiError> unreadable;
  try {
    nlohmann::json page = co_await Fetch(skip, limit);
    co_return ReadPage(std::move(page), skip);
  } catch (const ApiError& e) {
    if (e.kind() != ApiErrorKind::kBadResponse || limit == 1) throw;
    unreadable = e;  // g++ 12: no co_await inside a handler
  }
  spdlog::warn("postgrid list at skip={} (limit {}) could not be read ({}); fetching it in parts",
               skip, limit, unreadable->what());
  std::optional<Range> parts;
  try {
    parts = co_await FetchInParts(skip, limit);
  } catch (const ApiError& e) {
    if (e.kind() != ApiErrorKind::kBadResponse) throw;
  }
  if (!parts) throw *unreadable;
  co_return std::move(*parts);
}

net::awaitable<ListPager::Range> ListPager::FetchInParts(int skip, int limit) {
  struct Missed {
    int at;
    int size;
    std::string why;
  };
  const int part = std::max(1, limit / 10);
  Range range;
  std::vector<Missed> missed;
  int read_parts = 0;
  for (int offset = 0; offset < limit; offset += part) {
    const int size = std::min(part, limit - offset);
    const int at = skip + offset;
    std::optional<Range> piece;
    std::optional<ApiError> failure;
    try {
      // g++ 12 miscompiles a co_await inside ?:, hence the plain if.
      if (size == 1) {
        nlohmann::json page = co_await Fetch(at, 1);
        piece = ReadPage(std::move(page), at);
      } else {
        piece = co_await FetchRange(at, size);
      }
    } catch (const ApiError& e) {
      if (e.kind() != ApiErrorKind::kBadResponse) throw;
      failure = e;
    }
    if (failure) {
      // The first two parts unreadable too: the endpoint is broken, not one order.
      if (read_parts == 0 && missed.size() == 1) throw *failure;
      missed.push_back({at, size, failure->what()});
      range.covered += size;
      continue;
    }
    ++read_parts;
    range.covered += piece->covered;
    for (auto& item : piece->items) range.items.push_back(std::move(item));
    if (piece->covered < size) break;  // the list ends inside this part
  }
  // Missed by this pass, never silently: logged here, and the walk's end reports them.
  for (const auto& miss : missed) {
    spdlog::error("postgrid list: {} at position {}{} could not be read ({}); missed by this pass",
                  miss.size == 1 ? "the order" : "the orders", miss.at,
                  miss.size == 1 ? "" : " to " + std::to_string(miss.at + miss.size - 1), miss.why);
    for (int position = miss.at; position < miss.at + miss.size; ++position) {
      unreadable_.push_back(position);
    }
  }
  co_return range;
}

void ListPager::ThrowIfUnreadable() {
  if (unreadable_.empty() || unreadable_reported_) return;
  unreadable_reported_ = true;
  std::string positions;
  for (std::size_t i = 0; i < unreadable_.size() && i < 10; ++i) {
    positions += (i == 0 ? "" : ", ") + std::to_string(unreadable_[i]);
  }
  if (unreadable_.size() > 10) positions += ", ...";
  throw ApiError(ApiErrorKind::kBadResponse, 200, "list", "",
                 std::to_string(unreadable_.size()) +
                     " order(s) could not be read (response body is not valid JSON) at "
                     "positions " +
                     positions + "; everything else on their pages was recorded");
}

net::awaitable<std::optional<nlohmann::json>> ListPager::Next() {
  if (done_) {
    ThrowIfUnreadable();
    co_return std::nullopt;
  }
  Range range = co_await FetchRange(skip_, query_.page_size);
  ++pages_;
  auto& data = range.items;
  const int received = range.covered;
  skip_ += received;
  if (received == 0 || received < query_.page_size ||
      (total_count_ >= 0 && skip_ >= total_count_)) {
    done_ = true;
  }
  if (received == 0) co_return std::nullopt;

  nlohmann::json fresh = nlohmann::json::array();
  std::vector<std::string> ids;
  ids.reserve(data.size());
  for (auto& item : data) {
    if (item.is_object() && item.contains("id") && item["id"].is_string()) {
      std::string id = item["id"].get<std::string>();
      if (!seen_.insert(id).second) continue;
      ids.push_back(std::move(id));
    }
    fresh.push_back(std::move(item));
  }
  recent_.push_back(std::move(ids));
  if (recent_.size() > kDedupPages) {
    for (const auto& id : recent_.front()) seen_.erase(id);
    recent_.pop_front();
  }
  co_return fresh;
}

}  // namespace mailtrail::postgrid
