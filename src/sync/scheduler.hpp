#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "domain/order_ref.hpp"
#include "net/net.hpp"
#include "postgrid/client.hpp"
#include "store/order_repository.hpp"
#include "sync/db_executor.hpp"
#include "sync/syncer.hpp"

namespace mailtrail::sync {

struct SchedulerOptions {
  std::vector<domain::OrderType> types{domain::kAllOrderTypes.begin(),
                                       domain::kAllOrderTypes.end()};
  std::chrono::milliseconds discovery_interval{std::chrono::minutes(5)};
  /// poll.interval: how often the leader weighs a list walk against GETs for each type.
  std::chrono::milliseconds poll_interval{std::chrono::hours(1)};
  std::chrono::milliseconds full_scan_interval{std::chrono::hours(24)};
  std::chrono::milliseconds idle_tick{1000};      ///< poll loop sleep when nothing is due
  std::chrono::milliseconds error_backoff{5000};  ///< wait after a failed step
  std::chrono::milliseconds lease{std::chrono::minutes(5)};  ///< claim lease per due order
  std::size_t claim_batch = 32;
  std::size_t refresh_workers = 8;
  std::size_t webhook_queue_capacity = 10000;
  std::size_t webhook_workers = 4;
  /// Most orders one webhook worker fetches (concurrently) and records in one transaction: a
  /// burst of deliveries is recorded at the write path's batch rate, not a transaction per order.
  std::size_t webhook_batch = 50;
  std::chrono::milliseconds heartbeat_interval{5000};
  std::chrono::milliseconds not_found_retry{std::chrono::hours(1)};  ///< 404 on a stored order
  double requests_per_second = 50;  ///< the account's limit, split across live replicas
  std::string replica_id;
  std::string hostname;
  bool leader_jobs = true;  ///< false: never run discovery/full scans (a pure poller)
};

/// What a RunOnce or a discovery pass did.
struct PassResult {
  std::size_t pages = 0;
  std::size_t new_orders = 0;
  std::size_t changed = 0;
  std::size_t refreshed = 0;
  std::size_t failures = 0;
  std::size_t changes = 0;
};

struct BackfillOptions {
  std::vector<domain::OrderType> types;
  std::optional<domain::Timestamp> since;
};

/// Status the scheduler exposes to metrics/readiness (read on the I/O thread).
struct SchedulerState {
  bool leader = false;
  std::int64_t live_replicas = 1;
  std::optional<domain::Timestamp> last_discovery;
  std::optional<domain::Timestamp> last_full_scan;
  std::size_t webhook_queue = 0;
  std::uint64_t webhook_overflow = 0;
  std::uint64_t webhook_refreshes = 0;
};

/// Decides what to fetch and when (issue 6): refreshes due orders (leased with FOR UPDATE SKIP
/// LOCKED, so replicas split the work), runs list discovery and full scans while it is the leader,
/// keeps the replica heartbeat that splits the rate limit, and refreshes orders named by webhooks
/// at once (bursts coalesced; overflow falls back to "due now" in the database, never dropped).
///
/// Thread affinity: constructed and used on the single-threaded io_context; the Syncer, Client and
/// DbExecutor must outlive it. Start() spawns the loops; Stop() ends them (in-flight refreshes
/// finish). RunOnce/Backfill are for the CLI and tests.
class Scheduler {
 public:
  /// Called with delivery ids whose refresh was recorded (to set webhook_deliveries.processed_at).
  using ProcessedFn = std::function<void(std::vector<std::int64_t>)>;

  Scheduler(const net::any_io_executor& executor, Syncer& syncer, postgrid::Client& client,
            DbExecutor& db, SchedulerOptions options);
  ~Scheduler();

  void Start();
  void Stop();
  /// True once every loop Start() spawned has ended.
  bool stopped() const { return running_loops_ == 0; }

  /// One discovery pass over every type, then refresh everything due now. Throws when the
  /// discovery failed; refresh failures are counted in the result.
  net::awaitable<PassResult> RunOnce();

  /// List walk of `full_scan` ? everything : until a page holds only known, unchanged orders.
  /// `due_before`: also record unchanged orders due before it as checked (see Syncer::ApplyPage).
  net::awaitable<PassResult> Discover(bool full_scan,
                                      std::optional<domain::Timestamp> due_before = std::nullopt);

  /// Claims and refreshes due orders until none is due at `now`.
  net::awaitable<PassResult> RefreshDue();

  /// The `backfill` command: walks every list of `options.types`, recording each order (source
  /// backfill), resuming where an interrupted backfill stopped.
  net::awaitable<PassResult> Backfill(BackfillOptions options);

  /// A verified webhook named `ref`: refresh it now. Never blocks; never drops (see class doc).
  void Trigger(domain::OrderRef ref, std::optional<std::int64_t> delivery_id);
  void SetProcessedCallback(ProcessedFn fn) { on_processed_ = std::move(fn); }
  /// Called with the seconds from a webhook's Trigger to its order being recorded (the
  /// webhook-to-row latency), for metrics.
  void SetWebhookLatencyCallback(std::function<void(double)> fn) { on_latency_ = std::move(fn); }

  /// Adds the client's request counts made since the last flush to api_request_totals.
  net::awaitable<void> FlushRequestCounts();

  const SchedulerState& state() const { return state_; }

 private:
  struct Batch;
  struct WebhookFetch;
  /// Orders GET one by one, grouped by envelope id ("" for the six plain types): return envelope
  /// orders are recorded with their envelope's id.
  struct FetchedOrders {
    struct Group {
      nlohmann::json items = nlohmann::json::array();
      std::vector<std::string> texts;  // the body text each item was parsed from
    };
    std::map<std::string, Group> by_envelope;
    void Add(const domain::OrderRef& ref, postgrid::Document document);
  };
  struct RecordedOrders {
    PassResult result;
    std::vector<std::string> ids;  // the orders written (RecordFetched's PageOutcome.recorded)
  };
  /// Writes fetched orders, one Syncer::RecordFetched per envelope (nearly always one). A write
  /// that fails is logged and its orders counted as failures; they are not among `ids`.
  net::awaitable<RecordedOrders> RecordFetchedOrders(FetchedOrders fetched, store::Source source);
  net::awaitable<void> PollLoop();
  net::awaitable<void> LeaderLoop();
  net::awaitable<void> HeartbeatLoop();
  net::awaitable<void> WebhookWorker(std::size_t index);
  /// Fetches the orders a worker took from the webhook queue and records them as they arrive;
  /// one that could not be fetched or recorded is marked due now (MarkDueLater).
  net::awaitable<void> RefreshForWebhooks(std::shared_ptr<WebhookFetch> batch);
  net::awaitable<void> FetchForWebhook(std::shared_ptr<WebhookFetch> batch, std::size_t index);
  /// A webhook refresh of `ref` ended: when it was recorded its `deliveries` join `processed`,
  /// else it is due for polling now (MarkDueLater); a delivery that came meanwhile (dirty_)
  /// queues the order again.
  void FinishWebhookRefresh(const domain::OrderRef& ref, bool recorded,
                            const std::vector<std::int64_t>& deliveries,
                            std::vector<std::int64_t>& processed);
  net::awaitable<void> RefreshWorker(std::shared_ptr<Batch> batch, store::Source source);
  /// Leases up to claim_batch orders due at `now` (see OrderRepository::ClaimDue).
  net::awaitable<std::vector<store::DueOrder>> ClaimDue(domain::Timestamp now);
  net::awaitable<PassResult> RefreshAll(std::vector<store::DueOrder> due, store::Source source);
  net::awaitable<PassResult> WalkType(domain::OrderType type, bool full_scan, store::Source source,
                                      postgrid::Purpose purpose,
                                      std::optional<domain::Timestamp> since,
                                      std::int64_t start_skip, bool save_backfill,
                                      std::optional<domain::Timestamp> due_before = std::nullopt);
  /// Records how far a backfill of `type_name` got (every page before `skip` written).
  net::awaitable<void> SaveBackfillPosition(std::string type_name, std::int64_t skip,
                                            std::optional<domain::Timestamp> since, bool finished);
  /// The cheaper path: when walking a type's list costs fewer requests than GETting the orders
  /// due within the next poll interval, walk it (source poll) and record those orders as checked.
  /// ListPolls plans every type's walk, then walks them one after another.
  net::awaitable<void> ListPolls();
  /// The walk's horizon when `type`'s list walk is due now and cheaper than its GETs.
  net::awaitable<std::optional<domain::Timestamp>> PlanListPoll(domain::OrderType type);
  net::awaitable<void> ListPoll(domain::OrderType type, domain::Timestamp horizon);
  net::awaitable<PassResult> WalkEnvelopes(
      bool full_scan, store::Source source, postgrid::Purpose purpose,
      std::optional<domain::Timestamp> since,
      std::optional<domain::Timestamp> due_before = std::nullopt);
  net::awaitable<PassResult> RunJob(std::string job, bool full_scan);
  /// ANALYZE (store::AnalyzeSyncTables) after a pass that added many orders; failures logged.
  net::awaitable<void> AnalyzeAfterBulkLoad(std::size_t new_orders);
  net::awaitable<void> Heartbeat();
  net::awaitable<bool> Sleep(net::steady_timer& timer, std::chrono::milliseconds duration);
  void Spawn(net::awaitable<void> loop, const char* name);
  /// What MarkDueLater does with an order stored as terminal: leave it, or (a webhook announced
  /// a change) make it non-terminal and due as well.
  enum class IfTerminal { kLeave, kReopen };
  void MarkDueLater(const domain::OrderRef& ref, domain::Timestamp when, const std::string& reason,
                    IfTerminal if_terminal);

  net::any_io_executor executor_;
  Syncer& syncer_;
  postgrid::Client& client_;
  DbExecutor& db_;
  SchedulerOptions options_;
  SchedulerState state_;
  bool stopping_ = false;
  int running_loops_ = 0;
  domain::Timestamp started_at_;

  net::steady_timer poll_timer_;
  net::steady_timer leader_timer_;
  net::steady_timer heartbeat_timer_;
  std::vector<std::unique_ptr<net::steady_timer>> webhook_timers_;
  std::vector<bool> webhook_idle_;

  std::deque<domain::OrderRef> webhook_queue_;
  std::unordered_set<std::string> queued_;
  std::unordered_set<std::string> in_flight_;
  std::unordered_set<std::string> dirty_;
  std::unordered_map<std::string, std::vector<std::int64_t>> pending_deliveries_;
  ProcessedFn on_processed_;
  std::function<void(double)> on_latency_;
  std::unordered_map<std::string, std::chrono::steady_clock::time_point> triggered_at_;

  std::optional<domain::Timestamp> next_discovery_;
  std::optional<domain::Timestamp> next_full_scan_;
  std::map<domain::OrderType, domain::Timestamp> next_list_poll_;
  /// Types whose list walk stands in for their polls right now: the poll loop leaves their due
  /// orders to the walk instead of GETting them meanwhile.
  std::set<domain::OrderType> list_polling_;
  /// Return envelopes seen by the last envelope walk (any kind): with the orders listed, what a
  /// walk of every envelope's orders costs, for the cheaper path. 0 until one walk happened.
  std::int64_t envelopes_seen_ = 0;
  std::vector<postgrid::RequestCount> flushed_counts_;
};

}  // namespace mailtrail::sync
