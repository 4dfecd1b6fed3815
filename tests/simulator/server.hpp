#pragma once

// clang-format off
// Boost.Asio 1.74's awaitable.hpp uses std::exchange without including <utility>.
#include <utility>
#include <boost/asio.hpp>
#include <boost/beast.hpp>
// clang-format on
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

#include "faults.hpp"
#include "world.hpp"

/// The HTTP side of postgrid-sim: PostGrid's API under /print-mail/v1, the control API under
/// /__sim/, and the webhook sender. Everything runs on one io_context thread; World, Faults and
/// the webhook state are only touched from it.
namespace mailtrail::sim {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;

/// Beast 1.74 hands out boost::string_view; this converts without copying.
inline std::string_view Sv(beast::string_view s) { return {s.data(), s.size()}; }

struct ServerOptions {
  std::string host = "127.0.0.1";
  uint16_t port = 0;
  std::string test_key = "test_sk_sim";
  std::string live_key = "live_sk_sim";
  /// PostGrid retries a non-200 delivery after 1 h, 2 h and 4 h (simulated time).
  std::vector<int64_t> retry_delays_ms = {3'600'000, 7'200'000, 14'400'000};
  size_t body_limit = 1 << 20;
  int tick_ms = 20;
  size_t webhook_concurrency = 8;
  int64_t webhook_timeout_ms = 5000;
};

/// A webhook subscription: made through the API (`/webhooks`, one mode) or by flag/control API
/// (`simhook_…`, any mode).
struct WebhookTarget {
  struct Invocation {
    std::string id;
    uint64_t event_seq = 0;
    int status_code = 0;  ///< 0 = no HTTP response (connect error, timeout, refused target)
    int attempt = 0;      ///< 0 = first delivery, 1..3 = retries
    int64_t sim_ms = 0;
    int64_t wall_ms = 0;
    std::string error;
  };
  std::string id;
  std::string url;
  std::string secret;
  std::string description;
  std::vector<std::string> events;  ///< empty = every order event
  bool jwt = true;
  bool enabled = true;
  bool seconds_timestamp = false;  ///< JSON format: `t` in seconds instead of milliseconds
  int mode = 2;                    ///< 0 test, 1 live, 2 both
  bool api_managed = false;
  bool deleted = false;
  int64_t created_ms = 0;
  int64_t updated_ms = 0;
  std::vector<Invocation> invocations;
};

/// Result of one outgoing HTTP POST.
struct PostResult {
  int status = 0;
  std::string error;
  std::string body;
};

class Server {
 public:
  Server(net::io_context& ioc, World& world, ServerOptions options, uint64_t fault_seed);
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  /// Binds, listens and starts accepting and ticking. Throws boost::system::system_error when
  /// the address cannot be bound.
  void Start();
  /// Stops accepting and ticking; sessions end on their next read. Server thread only.
  void Stop();
  uint16_t port() const { return port_; }
  const std::string& host() const { return options_.host; }

  Faults& faults() { return faults_; }
  /// Adds a flag/control-API target; returns its id. Server thread only (or before Start).
  std::string AddTarget(WebhookTarget target);

 private:
  struct Response {
    http::response<http::string_body> res;
    enum class Mode { kNormal, kDrop, kReset, kTruncate } mode = Mode::kNormal;
    int64_t latency_ms = 0;
  };
  struct Delivery {
    size_t target;
    uint64_t seq;
    int attempt;
  };
  using Request = http::request<http::string_body>;

  net::awaitable<void> Accept();
  net::awaitable<void> Session(beast::tcp_stream stream);
  net::awaitable<void> Tick();
  net::awaitable<void> WebhookWorker();
  net::awaitable<Response> Handle(Request& req);
  Response HandleApi(const Request& req, std::string_view path, std::string_view query);
  net::awaitable<Response> HandleControl(const Request& req, std::string_view path,
                                         std::string_view query, std::string& route);
  Response ListOrders(const std::vector<uint32_t>& ids,
                      const std::map<std::string, std::string>& q);
  Response ListEvents(int mode, const std::map<std::string, std::string>& q);
  Response WebhooksApi(const Request& req, int mode, const std::vector<std::string_view>& seg,
                       const std::map<std::string, std::string>& q);
  net::awaitable<Response> Forge(const nlohmann::json& body);

  void OnEvent(uint64_t seq);
  void StartWorkers();
  std::string BuildDeliveryBody(const WebhookTarget& t, uint64_t seq, int64_t wall_ms,
                                std::string& signature_header);
  net::awaitable<PostResult> Post(std::string url,
                                  std::vector<std::pair<std::string, std::string>> headers,
                                  std::string body);
  void RenderTarget(std::string& out, const WebhookTarget& t) const;
  void RenderInvocation(std::string& out, const WebhookTarget& t,
                        const WebhookTarget::Invocation& inv) const;
  void Count(const std::string& route, int status);

  net::io_context& ioc_;
  World& world_;
  ServerOptions options_;
  Faults faults_;
  net::ip::tcp::acceptor acceptor_;
  net::steady_timer tick_timer_;
  uint16_t port_ = 0;
  bool stopped_ = false;

  std::vector<WebhookTarget> targets_;
  std::deque<Delivery> queue_;
  std::multimap<int64_t, Delivery> retries_;
  size_t workers_ = 0;
  uint64_t invocation_counter_ = 0;
  uint64_t webhook_counter_ = 0;
  uint64_t deliveries_sent_ = 0;

  std::map<std::pair<std::string, int>, uint64_t> counters_;
  struct Seen {
    std::string method, target, api_key, route;
    int status;
    int64_t sim_ms;
  };
  std::deque<Seen> recent_;
};

}  // namespace mailtrail::sim
