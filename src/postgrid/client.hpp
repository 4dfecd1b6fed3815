#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <unordered_set>
#include <vector>

#include "domain/order_ref.hpp"
#include "net/async_semaphore.hpp"
#include "net/http_connection.hpp"
#include "net/net.hpp"
#include "net/url.hpp"
#include "postgrid/api_error.hpp"
#include "postgrid/rate_limiter.hpp"
#include "postgrid/retry.hpp"

namespace mailtrail::postgrid {

/// Why a request is made; every request carries one, and the request counters are split by it.
enum class Purpose { kPoll, kDiscovery, kFullScan, kWebhook, kBackfill, kManual, kCheck };
/// `poll`, `discovery`, `full_scan`, `webhook`, `backfill`, `manual`, `check`.
std::string_view PurposeName(Purpose purpose);

/// Which endpoint a request hit (a label for the request counters).
enum class EndpointKind {
  kRetrieve,
  kList,
  kListReturnEnvelopes,
  kListEnvelopeOrders,
  kProgress,
  kEvents,
};
/// `retrieve`, `list`, `list_return_envelopes`, `list_envelope_orders`, `progress`, `events`.
std::string_view EndpointKindName(EndpointKind kind);

/// Client settings (contract.md `postgrid.*` plus retry tuning).
struct ClientOptions {
  std::string base_url = "https://api.postgrid.com/print-mail/v1";
  std::string api_key;              ///< Sent as X-API-Key; never logged or put in errors.
  double requests_per_second = 50;  ///< Shared ceiling for every request; 0 = unlimited.
  double burst = 0;                 ///< Token bucket depth; 0 = DefaultBurst(rps).
  std::size_t max_concurrency = 8;  ///< Requests in flight and kept-alive connections, at most.
  std::chrono::milliseconds timeout{10000};  ///< Deadline for each connect/handshake/write/read.
  int max_attempts = 5;                      ///< Attempts per call, the first included.
  std::chrono::milliseconds backoff_initial{500};
  std::chrono::milliseconds backoff_max{8000};
  double jitter = 0.25;
  std::size_t max_body = std::size_t{16} * 1024 * 1024;  ///< Response body cap.
  /// Called with each response's latency (request sent to response read), for metrics. Runs on
  /// the client's executor; must be cheap and thread-safe.
  std::function<void(EndpointKind, double seconds)> observe_latency;
};

/// One cell of the request counters: attempts that went to `endpoint` for `purpose` and ended
/// with HTTP `status` (0: no response, i.e. connection error or timeout).
struct RequestCount {
  EndpointKind endpoint;
  Purpose purpose;
  int status;
  std::uint64_t count;

  bool operator==(const RequestCount&) const = default;
};

/// A 2xx response body, parsed (`json`) and as received (`text`, valid JSON: it parsed).
struct Document {
  nlohmann::json json;
  std::string text;
};

/// The PostGrid Print & Mail API client (postgrid-api.md §1, 2, 6). One per process.
///
/// Every call goes through one concurrency gate (at most `max_concurrency` requests in flight,
/// each on a pooled keep-alive connection) and one shared RateLimiter. Failed attempts are retried
/// with exponential backoff and jitter for connection errors, timeouts, 408, 409, 429 and 5xx, up
/// to `max_attempts`; a 429 pauses the whole rate limiter for its `retry-after-ms`/`Retry-After`
/// (or the backoff delay when it names none). A 2xx body that is not valid JSON is retried like a
/// transient error and reported as kBadResponse if it persists.
///
/// Endpoints return the parsed JSON body; mapping to domain types is json_mapping's job.
///
/// Thread affinity: construct and call on one single-threaded executor (the process's
/// io_context); the coroutines must not run concurrently on several threads. RequestCounts() may
/// be called from any thread. The client must outlive every call in progress.
///
/// All calls throw ApiError; List-style calls throw std::invalid_argument for a bad skip/limit.
class Client {
 public:
  /// Throws std::invalid_argument for a bad base URL or options, boost::system::system_error if
  /// the TLS context cannot be set up.
  Client(const net::any_io_executor& executor, ClientOptions options);
  ~Client();
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  /// GET /{type}/{id}, or /return_envelopes/{envelope_id}/orders/{id} for return envelope orders.
  net::awaitable<nlohmann::json> Retrieve(domain::OrderRef ref, Purpose purpose);

  /// Retrieve, with the body text the object was parsed from: what PostGrid sent, kept for
  /// `orders.raw` without serializing the object again.
  net::awaitable<Document> RetrieveDocument(domain::OrderRef ref, Purpose purpose);

  /// GET /{type}?skip&limit[&search] for the six plain order types (not return envelope orders:
  /// use ListEnvelopeOrders). `limit` in 1..100, `skip` >= 0. Returns the list envelope.
  net::awaitable<nlohmann::json> List(domain::OrderType type, int skip, int limit,
                                      std::string search, Purpose purpose);

  /// GET /return_envelopes?skip&limit.
  net::awaitable<nlohmann::json> ListReturnEnvelopes(int skip, int limit, Purpose purpose);

  /// GET /return_envelopes/{envelope_id}/orders?skip&limit.
  net::awaitable<nlohmann::json> ListEnvelopeOrders(std::string envelope_id, int skip, int limit,
                                                    Purpose purpose);

  /// Test keys only: POST /{type}/{id}/progressions, or POST /return_envelopes/{env}/orders/{id}/
  /// fills for return envelope orders. Returns the updated order.
  net::awaitable<nlohmann::json> Progress(domain::OrderRef ref, Purpose purpose);

  /// GET /events?type=a,b&skip&limit (types empty: no filter).
  net::awaitable<nlohmann::json> Events(std::vector<std::string> types, int skip, int limit,
                                        Purpose purpose);

  /// Snapshot of the request counters, sorted by (endpoint, purpose, status). Thread-safe.
  std::vector<RequestCount> RequestCounts() const;

  /// Attempts that were retried, and the total time spent waiting before retries (backoff or a
  /// 429's Retry-After). Thread-safe.
  std::uint64_t retries() const { return retries_.load(); }
  double retry_wait_seconds() const { return static_cast<double>(retry_wait_ms_.load()) / 1000.0; }

  RateLimiter& rate_limiter() { return limiter_; }
  const ClientOptions& options() const { return options_; }

 private:
  struct RequestSpec {
    EndpointKind kind;
    Purpose purpose;
    http::verb method;
    std::string target;  // relative to the base URL's path prefix, query included
    std::string order_id;
  };

  net::awaitable<Document> Execute(RequestSpec spec);
  net::awaitable<netio::HttpConnection::Response> SendOnce(RequestSpec spec);
  net::awaitable<std::unique_ptr<netio::HttpConnection>> Connect();
  netio::HttpConnection::Request BuildRequest(const RequestSpec& spec) const;
  void Count(const RequestSpec& spec, int status);
  std::string Redact(std::string text) const;
  double Random01();

  net::any_io_executor executor_;
  ClientOptions options_;
  netio::Url url_;
  BackoffPolicy backoff_;
  std::unique_ptr<ssl::context> tls_;
  RateLimiter limiter_;
  netio::AsyncSemaphore slots_;
  std::vector<std::unique_ptr<netio::HttpConnection>> idle_;
  std::mt19937_64 random_;

  std::atomic<std::uint64_t> retries_{0};
  std::atomic<std::uint64_t> retry_wait_ms_{0};
  mutable std::mutex counts_mutex_;
  std::vector<RequestCount> counts_;  // few distinct cells: a linear scan is cheapest
};

/// What a ListPager walks.
struct ListQuery {
  enum class Source { kOrders, kReturnEnvelopes, kEnvelopeOrders, kEvents };
  Source source = Source::kOrders;
  domain::OrderType type = domain::OrderType::kLetter;  ///< kOrders: one of the six plain types.
  std::string envelope_id;                              ///< kEnvelopeOrders.
  std::string search;                                   ///< kOrders: optional `search`.
  std::vector<std::string> event_types;                 ///< kEvents.
  int page_size = 100;                                  ///< 1..100.
  int start_skip = 0;
};

/// Walks a list endpoint page by page (offset paging, newest first). Items whose `id` was returned
/// by one of the last kDedupPages pages are dropped, because a list that grows while it is walked
/// shifts items onto the next page (by as many items as were created between two fetches). The
/// window is bounded so that memory does not grow with the list (issue 10, benchmark 4); a repeat
/// from further back would only be recorded twice, which the store makes idempotent. The walk
/// ends at an empty or short page or at `totalCount`.
///
/// A page whose body cannot be read (not JSON: one order with invalid UTF-8 or a number beyond a
/// double makes the whole page unreadable) is fetched again as ten smaller pages, and an
/// unreadable one of those as single orders, so that only the unreadable orders are missed; each
/// is logged with its position. When the first two smaller pages are unreadable as well the
/// fault is the endpoint's, not an order's, and the page's error is thrown as it was. After the
/// last page, Next() throws kBadResponse naming the unreadable positions (ThrowIfUnreadable), so a
/// pass that missed orders still fails, after recording everything else.
///
/// Same thread affinity as Client; the client must outlive the pager. Next() throws ApiError
/// (kBadResponse when a page lacks its `data` array).
class ListPager {
 public:
  ListPager(Client& client, ListQuery query, Purpose purpose);

  /// The next page's new items (a JSON array, possibly empty after dedup), or nullopt at the end.
  net::awaitable<std::optional<nlohmann::json>> Next();

  /// `totalCount` from the last page fetched (-1 before the first).
  long long total_count() const { return total_count_; }
  /// Pages fetched so far (a page fetched again in smaller parts counts once).
  int pages() const { return pages_; }
  /// List positions (`skip` values) whose order could not be read, in the order met.
  const std::vector<int>& unreadable() const { return unreadable_; }
  /// Throws kBadResponse naming the unreadable positions met so far, once; a walk that stops
  /// before the end calls it so that missed orders still fail the pass.
  void ThrowIfUnreadable();

 private:
  /// The `data` array of positions [skip, skip + limit), or what could be read of it (see the
  /// class comment); `covered` is how many positions it accounts for (fewer at the list's end).
  struct Range {
    nlohmann::json items = nlohmann::json::array();
    int covered = 0;
  };
  net::awaitable<nlohmann::json> Fetch(int skip, int limit);
  net::awaitable<Range> FetchRange(int skip, int limit);
  Range ReadPage(nlohmann::json page, int skip);
  net::awaitable<Range> FetchInParts(int skip, int limit);

  Client* client_;
  ListQuery query_;
  Purpose purpose_;
  int skip_;
  bool done_ = false;
  long long total_count_ = -1;
  int pages_ = 0;
  static constexpr std::size_t kDedupPages = 10;
  std::deque<std::vector<std::string>> recent_;  ///< ids of the last kDedupPages pages
  std::unordered_set<std::string> seen_;         ///< the same ids, for lookup
  std::vector<int> unreadable_;
  bool unreadable_reported_ = false;
};

}  // namespace mailtrail::postgrid
