#include "sync/scheduler.hpp"

#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <deque>
#include <exception>
#include <functional>
#include <iterator>
#include <memory>
#include <unordered_set>
#include <utility>

#include "store/sync_state.hpp"

namespace mailtrail::sync {
namespace {

constexpr int kPageSize = 100;

void Merge(PassResult& into, const PassResult& from) {
  into.pages += from.pages;
  into.new_orders += from.new_orders;
  into.changed += from.changed;
  into.refreshed += from.refreshed;
  into.failures += from.failures;
  into.changes += from.changes;
}

void Merge(PassResult& into, const PageOutcome& page) {
  into.pages += 1;
  into.refreshed += page.rechecked;
  into.new_orders += page.new_orders;
  into.changed += page.changed;
  into.failures += page.failed;
  into.changes += page.changes;
}

std::string Describe(const PassResult& result) {
  return "{\"pages\":" + std::to_string(result.pages) +
         ",\"new_orders\":" + std::to_string(result.new_orders) +
         ",\"changed\":" + std::to_string(result.changed) +
         ",\"refreshed\":" + std::to_string(result.refreshed) +
         ",\"failures\":" + std::to_string(result.failures) +
         ",\"changes\":" + std::to_string(result.changes) + "}";
}

domain::Timestamp After(domain::Timestamp t, std::chrono::milliseconds d) {
  return t + std::chrono::duration_cast<std::chrono::microseconds>(d);
}

// Pages a full scan fetches while earlier ones are still being written. A first sync's writes are
// most of its time (PostgreSQL's cost per new order); with the fetches and two database
// connections working at once the sync keeps to the rate limit (bench/README.md, benchmark 1).
constexpr std::size_t kPageWritesAhead = 2;

// New orders in one pass from which the pass ends with an ANALYZE of the tables it grew.
constexpr std::size_t kAnalyzeAfterNewOrders = 1000;

// One list page's write, started and not yet waited for.
struct PageWrite {
  explicit PageWrite(const net::any_io_executor& executor)
      : done(executor, net::steady_timer::time_point::max()) {}
  net::steady_timer done;  ///< cancelled when the write finishes
  bool finished = false;
  PageOutcome outcome;
  std::exception_ptr error;
  std::int64_t pages_fetched = 0;  ///< the pager's page count when this page was fetched
};

// The page writes of one list walk, taken in oldest first, so that a backfill's position is saved
// in page order. Up to `ahead` writes run while the walk fetches on (0: each page is written
// before the next is fetched).
class PageWrites {
 public:
  PageWrites(net::any_io_executor executor, std::size_t ahead)
      : executor_(std::move(executor)), ahead_(ahead) {}
  PageWrites(const PageWrites&) = delete;
  PageWrites& operator=(const PageWrites&) = delete;

  void Start(net::awaitable<PageOutcome> apply, std::int64_t pages_fetched) {
    auto write = std::make_shared<PageWrite>(executor_);
    write->pages_fetched = pages_fetched;
    net::co_spawn(executor_, std::move(apply),
                  [write](const std::exception_ptr& error, PageOutcome outcome) {
                    write->error = error;
                    write->outcome = outcome;
                    write->finished = true;
                    write->done.cancel();
                  });
    writes_.push_back(std::move(write));
  }
  /// More writes running than the walk may leave behind it.
  bool over() const { return writes_.size() > ahead_; }
  bool empty() const { return writes_.empty(); }

  /// Waits for the oldest write and hands it over (its failure in `error`).
  net::awaitable<std::shared_ptr<PageWrite>> TakeOldest() {
    auto write = std::move(writes_.front());
    writes_.pop_front();
    while (!write->finished) {
      boost::system::error_code cancelled;  // how the write wakes us
      co_await write->done.async_wait(net::redirect_error(net::use_awaitable, cancelled));
    }
    co_return write;
  }

 private:
  net::any_io_executor executor_;
  std::size_t ahead_;
  std::deque<std::shared_ptr<PageWrite>> writes_;
};

// The pager's next page, or nullopt at the end of the list or when the fetch failed: the failure
// is kept in `failure`, to be rethrown once the pages still being written are written.
net::awaitable<std::optional<nlohmann::json>> NextPage(postgrid::ListPager& pager,
                                                       std::exception_ptr& failure) {
  try {
    co_return co_await pager.Next();
  } catch (const std::exception&) {
    failure = std::current_exception();
  }
  co_return std::nullopt;
}

// Moves a backfill's saved position past a written page (its pager's page count when fetched).
using SavePosition = std::function<net::awaitable<void>(std::int64_t pages_fetched)>;

// Takes in a walk's oldest page write: its failure is kept in `failure` (the walk stops, and
// rethrows it once the pages in flight are written); a written page counts in `result`, even
// after another one failed, and moves a backfill's position past it only while none failed.
// Returns the write, or nullptr when it (or saving the position after it) failed.
net::awaitable<std::shared_ptr<PageWrite>> TakeInOldest(PageWrites& writes, PassResult& result,
                                                        std::exception_ptr& failure,
                                                        const SavePosition& save_position) {
  auto write = co_await writes.TakeOldest();
  if (write->error) {
    if (!failure) failure = write->error;
    co_return nullptr;
  }
  Merge(result, write->outcome);
  if (save_position && !failure) {
    try {
      co_await save_position(write->pages_fetched);
    } catch (const std::exception&) {
      failure = std::current_exception();
      co_return nullptr;
    }
  }
  co_return write;
}

}  // namespace

struct Scheduler::Batch {
  Batch(const net::any_io_executor& executor, std::vector<store::DueOrder> orders)
      : due(std::move(orders)), done(executor) {}
  std::vector<store::DueOrder> due;
  std::size_t next = 0;
  std::size_t active = 0;
  PassResult result;
  net::steady_timer done;
  FetchedOrders fetched;  // written together when every worker has ended
};

void Scheduler::FetchedOrders::Add(const domain::OrderRef& ref, postgrid::Document document) {
  Group& group = by_envelope[ref.envelope_id];
  group.items.push_back(std::move(document.json));
  group.texts.push_back(std::move(document.text));
}

net::awaitable<Scheduler::RecordedOrders> Scheduler::RecordFetchedOrders(FetchedOrders fetched,
                                                                         store::Source source) {
  RecordedOrders recorded;
  for (auto& [envelope_id, group] : fetched.by_envelope) {
    const std::size_t count = group.texts.size();
    try {
      const PageOutcome outcome = co_await syncer_.RecordFetched(
          std::move(group.items), std::move(group.texts), source, envelope_id);
      recorded.result.refreshed += outcome.new_orders + outcome.changed + outcome.rechecked;
      recorded.result.failures += outcome.failed;
      recorded.result.changes += outcome.changes;
      recorded.ids.insert(recorded.ids.end(), std::make_move_iterator(outcome.recorded.begin()),
                          std::make_move_iterator(outcome.recorded.end()));
      syncer_.CountRefreshFailures(outcome.failed);
    } catch (const std::exception& e) {
      recorded.result.failures += count;
      syncer_.CountRefreshFailures(count);
      spdlog::warn("could not record {} fetched orders: {}", count, e.what());
    }
  }
  co_return recorded;
}

Scheduler::Scheduler(const net::any_io_executor& executor, Syncer& syncer, postgrid::Client& client,
                     DbExecutor& db, SchedulerOptions options)
    : executor_(executor),
      syncer_(syncer),
      client_(client),
      db_(db),
      options_(std::move(options)),
      started_at_(syncer.Now()),
      poll_timer_(executor),
      leader_timer_(executor),
      heartbeat_timer_(executor) {
  for (std::size_t i = 0; i < std::max<std::size_t>(1, options_.webhook_workers); ++i) {
    webhook_timers_.push_back(std::make_unique<net::steady_timer>(executor));
    webhook_idle_.push_back(false);
  }
}

Scheduler::~Scheduler() = default;

void Scheduler::Spawn(net::awaitable<void> loop, const char* name) {
  ++running_loops_;
  net::co_spawn(executor_, std::move(loop), [this, name](const std::exception_ptr& error) {
    --running_loops_;
    if (!error) return;
    try {
      std::rethrow_exception(error);
    } catch (const std::exception& e) {
      spdlog::error("scheduler: the {} loop ended with an error: {}", name, e.what());
    }
  });
}

void Scheduler::Start() {
  stopping_ = false;
  Spawn(HeartbeatLoop(), "heartbeat");
  Spawn(PollLoop(), "poll");
  Spawn(LeaderLoop(), "discovery");
  for (std::size_t i = 0; i < webhook_timers_.size(); ++i) Spawn(WebhookWorker(i), "webhook");
}

void Scheduler::Stop() {
  stopping_ = true;
  poll_timer_.cancel();
  leader_timer_.cancel();
  heartbeat_timer_.cancel();
  for (auto& timer : webhook_timers_) timer->cancel();
}

net::awaitable<bool> Scheduler::Sleep(net::steady_timer& timer,
                                      std::chrono::milliseconds duration) {
  if (stopping_) co_return false;
  timer.expires_after(duration);
  boost::system::error_code ignored;  // cancellation just ends the sleep early
  co_await timer.async_wait(net::redirect_error(net::use_awaitable, ignored));
  co_return !stopping_;
}

void Scheduler::MarkDueLater(const domain::OrderRef& ref, domain::Timestamp when,
                             const std::string& reason, IfTerminal if_terminal) {
  const bool reopen = if_terminal == IfTerminal::kReopen;
  net::co_spawn(
      executor_, db_.Run([id = ref.id, when, reason, reopen](store::Database& database) {
        store::OrderRepository repository(database.Get(), {}, [] { return 0.0; });
        return repository.Reschedule(id, when, reason, reopen);
      }),
      [this, ref, when, reason, if_terminal](const std::exception_ptr& error, bool rescheduled) {
        if (error) {
          try {
            std::rethrow_exception(error);
          } catch (const std::exception& e) {
            spdlog::error("could not reschedule order {} ({}): {}; trying again in {} ms", ref.id,
                          reason, e.what(), options_.error_backoff.count());
          }
          // Nothing else remembers this order: a webhook refresh that failed because
          // the database went away would otherwise wait for the order's regular check
          // (an hour or more), although its delivery was accepted. Keep trying.
          if (stopping_) return;
          auto timer = std::make_shared<net::steady_timer>(executor_, options_.error_backoff);
          timer->async_wait([this, timer, ref, when, reason,
                             if_terminal](const boost::system::error_code& wait_error) {
            if (!wait_error && !stopping_) MarkDueLater(ref, when, reason, if_terminal);
          });
        } else if (!rescheduled) {
          spdlog::info("order {} is not stored yet or is terminal ({}); not rescheduled", ref.id,
                       reason);
        }
      });
}

// ---- polling -----------------------------------------------------------------------------

net::awaitable<void> Scheduler::RefreshWorker(std::shared_ptr<Batch> batch, store::Source source) {
  while (batch->next < batch->due.size() && !stopping_) {
    const domain::OrderRef ref = batch->due[batch->next++].ref;
    try {
      batch->fetched.Add(ref, co_await client_.RetrieveDocument(ref, PurposeFor(source)));
    } catch (const postgrid::ApiError& e) {
      ++batch->result.failures;
      syncer_.CountRefreshFailures(1);
      if (e.kind() == postgrid::ApiErrorKind::kNotFound) {
        spdlog::warn("order {} is not found at PostGrid any more; checking again later", ref.id);
        MarkDueLater(ref, After(syncer_.Now(), options_.not_found_retry), "not_found_at_postgrid",
                     IfTerminal::kLeave);
      } else if (e.kind() == postgrid::ApiErrorKind::kTransient) {
        // The client gave up its retries: try again after the error backoff rather than when
        // the lease ends (minutes at an hourly interval), so that changes a webhook announced
        // during a PostGrid outage land soon after it ends.
        spdlog::warn("refresh of {} failed ({}); retried in {} ms", ref.id, e.what(),
                     options_.error_backoff.count());
        MarkDueLater(ref, After(syncer_.Now(), options_.error_backoff), "refresh_failed",
                     IfTerminal::kLeave);
      } else {
        spdlog::warn("refresh of {} failed ({}); retried when its lease ends", ref.id, e.what());
      }
    } catch (const std::exception& e) {
      ++batch->result.failures;
      syncer_.CountRefreshFailures(1);
      spdlog::warn("refresh of {} failed: {}; retried when its lease ends", ref.id, e.what());
    }
  }
}

net::awaitable<PassResult> Scheduler::RefreshAll(std::vector<store::DueOrder> due,
                                                 store::Source source) {
  auto batch = std::make_shared<Batch>(executor_, std::move(due));
  const std::size_t workers =
      std::min(std::max<std::size_t>(1, options_.refresh_workers), batch->due.size());
  if (workers == 0) co_return PassResult{};
  batch->active = workers;
  batch->done.expires_at(net::steady_timer::time_point::max());
  for (std::size_t i = 0; i < workers; ++i) {
    net::co_spawn(executor_, RefreshWorker(batch, source),
                  [batch](const std::exception_ptr& error) {
                    if (error) {
                      try {
                        std::rethrow_exception(error);
                      } catch (const std::exception& e) {
                        spdlog::error("refresh worker failed: {}", e.what());
                      }
                    }
                    if (--batch->active == 0) batch->done.cancel();
                  });
  }
  while (batch->active > 0) {
    boost::system::error_code ignored;  // cancelled by the last worker
    co_await batch->done.async_wait(net::redirect_error(net::use_awaitable, ignored));
  }
  // The claimed orders are written together, as a list page is: one database round trip per few
  // statements for the whole claim instead of a transaction per order, which is most of the CPU a
  // refresh costs (bench/README.md, benchmark 3). Every fetched order is recorded as checked,
  // changed or not; one that is not is polled again when its lease ends.
  const RecordedOrders recorded = co_await RecordFetchedOrders(std::move(batch->fetched), source);
  Merge(batch->result, recorded.result);
  co_return batch->result;
}

net::awaitable<std::vector<store::DueOrder>> Scheduler::ClaimDue(domain::Timestamp now) {
  std::vector<domain::OrderType> types;
  for (const auto type : options_.types) {
    if (list_polling_.count(type) == 0) types.push_back(type);
  }
  if (types.empty()) co_return std::vector<store::DueOrder>{};
  auto claim_due = [now, limit = options_.claim_batch, lease = options_.lease,
                    types = std::move(types)](store::Database& database) {
    store::OrderRepository repository(database.Get(), {}, [] { return 0.0; });
    return repository.ClaimDue(now, limit, lease, types);
  };
  co_return co_await db_.Run(std::move(claim_due));
}

net::awaitable<PassResult> Scheduler::RefreshDue() {
  PassResult total;
  const domain::Timestamp now = syncer_.Now();
  while (!stopping_) {
    auto due = co_await ClaimDue(now);
    if (due.empty()) break;
    Merge(total, co_await RefreshAll(std::move(due), store::Source::kPoll));
  }
  co_return total;
}

net::awaitable<void> Scheduler::PollLoop() {
  while (!stopping_) {
    std::size_t claimed = 0;
    bool failed = false;
    try {
      auto due = co_await ClaimDue(syncer_.Now());
      claimed = due.size();
      if (claimed > 0) co_await RefreshAll(std::move(due), store::Source::kPoll);
    } catch (const std::exception& e) {
      // Orders claimed before the failure keep their lease: the next claim skips them, so say
      // when they come back rather than suggest they are retried with it.
      spdlog::warn(
          "poll step failed: {}; next claim in {} ms, orders already claimed are polled again "
          "when their leases end",
          e.what(), options_.error_backoff.count());
      failed = true;
    }
    if (failed) {
      if (!co_await Sleep(poll_timer_, options_.error_backoff)) break;
    } else if (claimed == 0 && !co_await Sleep(poll_timer_, options_.idle_tick)) {
      break;
    }
  }
}

// ---- discovery, full scan, backfill --------------------------------------------------------

net::awaitable<PassResult> Scheduler::WalkType(domain::OrderType type, bool full_scan,
                                               store::Source source, postgrid::Purpose purpose,
                                               std::optional<domain::Timestamp> since,
                                               std::int64_t start_skip, bool save_backfill,
                                               std::optional<domain::Timestamp> due_before) {
  PassResult result;
  postgrid::ListQuery query;
  query.source = postgrid::ListQuery::Source::kOrders;
  query.type = type;
  query.page_size = kPageSize;
  query.start_skip = static_cast<int>(start_skip);
  postgrid::ListPager pager(client_, query, purpose);
  const std::string type_name(domain::EndpointName(type));
  // A full scan decides nothing from a page's outcome, so it fetches on while pages are written;
  // discovery and a backfill --since stop on what a page held, so they wait for each write.
  PageWrites writes(executor_, full_scan && !since ? kPageWritesAhead : 0);
  std::exception_ptr failure;  // rethrown once the pages in flight are written
  SavePosition save_position;
  if (save_backfill) {
    save_position = [this, &type_name, start_skip, since](std::int64_t pages_fetched) {
      return SaveBackfillPosition(type_name, start_skip + pages_fetched * kPageSize, since, false);
    };
  }
  bool walk_on = true;
  while (walk_on && !stopping_ && !failure) {
    auto page = co_await NextPage(pager, failure);
    if (!page) break;
    auto apply = syncer_.ApplyPage(std::move(*page), source, "", since, due_before);
    writes.Start(std::move(apply), pager.pages());
    while (writes.over() && !failure) {
      const auto write = co_await TakeInOldest(writes, result, failure, save_position);
      if (!write) break;
      if (since && write->outcome.items > 0 &&
          write->outcome.oldest_created_before_since == write->outcome.items) {
        walk_on = false;
      }
      // Discovery looks for new orders (contract: "until a page holds only known orders");
      // changed ones on the page are recorded, but walking on for them would cost pages that the
      // polls cover anyway (with 10 % of orders changing per hour most pages hold one).
      if (!full_scan && write->outcome.new_orders == 0) walk_on = false;
    }
  }
  while (!writes.empty()) co_await TakeInOldest(writes, result, failure, save_position);
  if (failure) std::rethrow_exception(failure);
  pager.ThrowIfUnreadable();  // before a backfill could be saved as finished
  if (save_backfill && !stopping_) {
    co_await SaveBackfillPosition(type_name, start_skip + std::int64_t{pager.pages()} * kPageSize,
                                  since, true);
  }
  co_return result;
}

net::awaitable<void> Scheduler::SaveBackfillPosition(std::string type_name, std::int64_t skip,
                                                     std::optional<domain::Timestamp> since,
                                                     bool finished) {
  const store::BackfillPosition position{skip, since, finished};
  const domain::Timestamp now = syncer_.Now();
  auto save_position = [type_name = std::move(type_name), position,
                        now](store::Database& database) {
    store::SaveBackfill(database.Get(), type_name, position, now);
  };
  co_await db_.Run(std::move(save_position));
}

net::awaitable<PassResult> Scheduler::WalkEnvelopes(bool full_scan, store::Source source,
                                                    postgrid::Purpose purpose,
                                                    std::optional<domain::Timestamp> since,
                                                    std::optional<domain::Timestamp> due_before) {
  PassResult result;
  std::int64_t envelopes_seen = 0;
  std::size_t unreadable_orders = 0;
  postgrid::ListQuery envelopes_query;
  envelopes_query.source = postgrid::ListQuery::Source::kReturnEnvelopes;
  envelopes_query.page_size = kPageSize;
  postgrid::ListPager envelopes(client_, envelopes_query, purpose);
  // As in WalkType: a full scan writes pages while it fetches on, across envelopes.
  PageWrites writes(executor_, full_scan ? kPageWritesAhead : 0);
  std::exception_ptr failure;  // rethrown once the pages in flight are written
  while (!stopping_ && !failure) {
    auto page = co_await NextPage(envelopes, failure);
    if (!page) break;
    std::size_t news = 0;
    for (const auto& envelope : *page) {
      if (!envelope.is_object() || !envelope.contains("id") || !envelope["id"].is_string()) {
        spdlog::warn("skipping a return envelope without a string id");
        ++result.failures;
        continue;
      }
      const std::string envelope_id = envelope["id"].get<std::string>();
      ++envelopes_seen;
      postgrid::ListQuery orders_query;
      orders_query.source = postgrid::ListQuery::Source::kEnvelopeOrders;
      orders_query.envelope_id = envelope_id;
      orders_query.page_size = kPageSize;
      postgrid::ListPager orders(client_, orders_query, purpose);
      bool walk_on = true;
      while (walk_on && !stopping_ && !failure) {
        auto orders_page = co_await NextPage(orders, failure);
        if (!orders_page) break;
        auto apply =
            syncer_.ApplyPage(std::move(*orders_page), source, envelope_id, since, due_before);
        writes.Start(std::move(apply), orders.pages());
        while (writes.over()) {
          const auto write = co_await TakeInOldest(writes, result, failure, nullptr);
          const std::size_t new_orders = write ? write->outcome.new_orders : 0;
          news += new_orders;
          if (!full_scan && new_orders == 0) walk_on = false;
        }
      }
      if (failure) break;
      // The other envelopes are still walked; the pass fails at the end.
      unreadable_orders += orders.unreadable().size();
    }
    ++result.pages;
    if (!full_scan && news == 0) break;
  }
  while (!writes.empty()) co_await TakeInOldest(writes, result, failure, nullptr);
  if (failure) std::rethrow_exception(failure);
  envelopes.ThrowIfUnreadable();
  if (unreadable_orders > 0) {
    throw postgrid::ApiError(postgrid::ApiErrorKind::kBadResponse, 200, "return envelope orders",
                             "",
                             std::to_string(unreadable_orders) +
                                 " order(s) could not be read (response body is not valid JSON); "
                                 "everything else on their pages was recorded");
  }
  if (!stopping_) envelopes_seen_ = std::max(envelopes_seen_, envelopes_seen);
  co_return result;
}

net::awaitable<PassResult> Scheduler::Discover(bool full_scan,
                                               std::optional<domain::Timestamp> due_before) {
  PassResult total;
  std::string errors;
  const postgrid::Purpose purpose =
      full_scan ? postgrid::Purpose::kFullScan : postgrid::Purpose::kDiscovery;
  for (const auto type : options_.types) {
    try {
      if (type == domain::OrderType::kReturnEnvelopeOrder) {
        Merge(total, co_await WalkEnvelopes(full_scan, store::Source::kDiscovery, purpose,
                                            std::nullopt, due_before));
      } else {
        Merge(total, co_await WalkType(type, full_scan, store::Source::kDiscovery, purpose,
                                       std::nullopt, 0, false, due_before));
      }
    } catch (const std::exception& e) {
      // One failing list must not starve the others; the pass still counts as failed.
      spdlog::warn("{} of {} failed: {}", full_scan ? "full scan" : "discovery",
                   domain::EndpointName(type), e.what());
      errors += std::string(errors.empty() ? "" : "; ") + std::string(domain::EndpointName(type)) +
                ": " + e.what();
    }
  }
  if (!errors.empty()) throw std::runtime_error(errors);
  co_return total;
}

net::awaitable<PassResult> Scheduler::Backfill(BackfillOptions options) {
  PassResult total;
  for (const auto type : options.types) {
    const std::string type_name(domain::EndpointName(type));
    auto load_position = [type_name](store::Database& database) {
      return store::LoadBackfill(database.Get(), type_name);
    };
    const auto position = co_await db_.Run(std::move(load_position));
    std::int64_t start = 0;
    if (position && !position->finished && position->since == options.since) {
      // Offset paging over a list that grew meanwhile shifts items: step back one page.
      start = std::max<std::int64_t>(0, position->next_skip - kPageSize);
      spdlog::info("backfill of {} resumes at offset {}", type_name, start);
    }
    if (type == domain::OrderType::kReturnEnvelopeOrder) {
      Merge(total, co_await WalkEnvelopes(true, store::Source::kBackfill,
                                          postgrid::Purpose::kBackfill, options.since));
      if (!stopping_) co_await SaveBackfillPosition(type_name, 0, options.since, true);
    } else {
      Merge(total, co_await WalkType(type, true, store::Source::kBackfill,
                                     postgrid::Purpose::kBackfill, options.since, start, true));
    }
  }
  co_await FlushRequestCounts();
  co_await AnalyzeAfterBulkLoad(total.new_orders);
  co_return total;
}

net::awaitable<void> Scheduler::AnalyzeAfterBulkLoad(std::size_t new_orders) {
  if (new_orders < kAnalyzeAfterNewOrders) co_return;
  try {
    auto analyze = [](store::Database& database) { store::AnalyzeSyncTables(database.Get()); };
    co_await db_.Run(std::move(analyze));
    spdlog::info("analyzed the order and history tables after {} new orders", new_orders);
  } catch (const std::exception& e) {
    // Only the plans of the next minutes are at stake: autovacuum analyzes them too.
    spdlog::warn("ANALYZE after {} new orders failed: {}; autovacuum will catch up", new_orders,
                 e.what());
  }
}

net::awaitable<PassResult> Scheduler::RunOnce() {
  PassResult total = co_await RunJob("discovery", false);
  Merge(total, co_await RefreshDue());
  co_await FlushRequestCounts();
  co_return total;
}

net::awaitable<PassResult> Scheduler::RunJob(std::string job, bool full_scan) {
  const domain::Timestamp started = syncer_.Now();
  std::exception_ptr failure;
  std::string error;
  PassResult pass;
  try {
    auto record_start = [job, started](store::Database& database) {
      store::RecordRunStart(database.Get(), job, started);
    };
    co_await db_.Run(std::move(record_start));
    // A full scan walks every list anyway: let it also stand in for this interval's list polls.
    const PassResult result = co_await Discover(
        full_scan, full_scan
                       ? std::optional<domain::Timestamp>(After(started, options_.poll_interval))
                       : std::nullopt);
    const domain::Timestamp finished = syncer_.Now();
    auto record_success = [job, finished, detail = Describe(result)](store::Database& database) {
      store::RecordRunSuccess(database.Get(), job, finished, detail);
    };
    co_await db_.Run(std::move(record_success));
    (full_scan ? state_.last_full_scan : state_.last_discovery) = finished;
    if (full_scan) state_.last_discovery = finished;
    spdlog::info("{}: {} pages, {} new orders, {} changed, {} changes recorded", job, result.pages,
                 result.new_orders, result.changed, result.changes);
    co_await AnalyzeAfterBulkLoad(result.new_orders);
    if (full_scan) {
      for (const auto type : options_.types) {
        next_list_poll_[type] = After(started, options_.poll_interval);
      }
    }
    pass = result;
  } catch (const std::exception& e) {
    spdlog::warn("{} failed: {}", job, e.what());
    failure = std::current_exception();
    error = e.what();
  }
  if (!failure) co_return pass;
  // co_await is not allowed inside a handler: record the failure here, then rethrow.
  const domain::Timestamp failed = syncer_.Now();
  try {
    auto record_failure = [job, failed, error](store::Database& database) {
      store::RecordRunFailure(database.Get(), job, failed, error);
    };
    co_await db_.Run(std::move(record_failure));
  } catch (const std::exception& record_error) {
    spdlog::warn("could not record the failure of {}: {}", job, record_error.what());
  }
  std::rethrow_exception(failure);
}

net::awaitable<std::optional<domain::Timestamp>> Scheduler::PlanListPoll(domain::OrderType type) {
  const domain::Timestamp now = syncer_.Now();
  const auto it = next_list_poll_.find(type);
  if (it != next_list_poll_.end() && now < it->second) co_return std::nullopt;
  // The next walk starts 5 % of the interval early: the orders this walk checks are due again
  // 100-110 % of the interval later (DecideSchedule's jitter), and a walk that started even a few
  // seconds late would find the early-jittered ones already GET by the poll loop.
  next_list_poll_[type] = After(now, options_.poll_interval - options_.poll_interval / 20);
  const domain::Timestamp horizon = After(now, options_.poll_interval);
  auto count = [type, horizon](store::Database& database) {
    store::OrderRepository repository(database.Get(), {}, [] { return 0.0; });
    return repository.CountDueBefore(type, horizon);
  };
  const auto [due_soon, listed] = co_await db_.Run(std::move(count));
  const bool envelopes = type == domain::OrderType::kReturnEnvelopeOrder;
  // Return envelope orders are listed per envelope: walking them all costs the envelope list plus
  // up to one short page per envelope more than the orders alone would. Without a walk seen yet
  // that cost is unknown, so they are left to their GETs.
  if (envelopes && envelopes_seen_ == 0) co_return std::nullopt;
  const std::int64_t walk_listed = envelopes ? listed + kPageSize * (envelopes_seen_ + 1) : listed;
  if (!domain::PreferListWalk(due_soon, walk_listed, kPageSize)) co_return std::nullopt;
  spdlog::info(
      "{}: walking the list ({} orders) instead of {} GETs for the orders due this interval",
      domain::EndpointName(type), listed, due_soon);
  co_return horizon;
}

net::awaitable<void> Scheduler::ListPoll(domain::OrderType type, domain::Timestamp horizon) {
  PassResult result;
  if (type == domain::OrderType::kReturnEnvelopeOrder) {
    result = co_await WalkEnvelopes(true, store::Source::kPoll, postgrid::Purpose::kPoll,
                                    std::nullopt, horizon);
  } else {
    result = co_await WalkType(type, true, store::Source::kPoll, postgrid::Purpose::kPoll,
                               std::nullopt, 0, false, horizon);
  }
  spdlog::info("{} list poll: {} pages, {} orders checked, {} changed, {} new",
               domain::EndpointName(type), result.pages, result.refreshed, result.changed,
               result.new_orders);
}

net::awaitable<void> Scheduler::ListPolls() {
  // Every type whose walk is planned is left alone by the poll loop from now until its walk ends:
  // its orders that fall due meanwhile are recorded by the walk (its horizon is a whole interval),
  // and a GET would be a second request. At start-up every order is due and the walks run one
  // type after another, so without this the poll loop would GET the later types' orders first.
  struct Planned {
    std::set<domain::OrderType>& excluded;
    std::vector<std::pair<domain::OrderType, domain::Timestamp>> walks;
    ~Planned() {
      for (const auto& walk : walks) excluded.erase(walk.first);
    }
  } planned{list_polling_, {}};
  for (const auto type : options_.types) {
    if (stopping_) co_return;
    if (const auto horizon = co_await PlanListPoll(type)) {
      planned.walks.emplace_back(type, *horizon);
      list_polling_.insert(type);
    }
  }
  for (const auto& [type, horizon] : planned.walks) {
    if (stopping_) co_return;
    co_await ListPoll(type, horizon);
    list_polling_.erase(type);
  }
}

net::awaitable<void> Scheduler::LeaderLoop() {
  while (!stopping_) {
    bool step_failed = false;
    if (state_.leader && options_.leader_jobs) {
      try {
        if (!next_full_scan_ || !next_discovery_) {
          auto load_last_runs = [](store::Database& database) {
            return std::make_pair(store::LastSuccess(database.Get(), "full_scan"),
                                  store::LastSuccess(database.Get(), "discovery"));
          };
          const auto [last_full, last_discovery] = co_await db_.Run(std::move(load_last_runs));
          const domain::Timestamp now = syncer_.Now();
          next_full_scan_ = last_full ? After(*last_full, options_.full_scan_interval) : now;
          next_discovery_ =
              last_discovery ? After(*last_discovery, options_.discovery_interval) : now;
          state_.last_full_scan = last_full;
          state_.last_discovery = last_discovery;
        }
        const domain::Timestamp now = syncer_.Now();
        if (now >= *next_full_scan_) {
          try {
            co_await RunJob("full_scan", true);
            next_full_scan_ = After(syncer_.Now(), options_.full_scan_interval);
            next_discovery_ = After(syncer_.Now(), options_.discovery_interval);
          } catch (const std::exception&) {
            next_full_scan_ = After(syncer_.Now(), options_.error_backoff);
          }
        } else if (now >= *next_discovery_) {
          try {
            co_await RunJob("discovery", false);
            next_discovery_ = After(syncer_.Now(), options_.discovery_interval);
          } catch (const std::exception&) {
            next_discovery_ = After(syncer_.Now(), options_.error_backoff);
          }
        }
        co_await ListPolls();
      } catch (const std::exception& e) {
        spdlog::warn("discovery step failed: {}", e.what());
        step_failed = true;
      }
    }
    if (!co_await Sleep(leader_timer_, step_failed ? options_.error_backoff : options_.idle_tick)) {
      break;
    }
  }
}

// ---- replicas -----------------------------------------------------------------------------

net::awaitable<void> Scheduler::Heartbeat() {
  const domain::Timestamp now = syncer_.Now();
  const bool want_leadership = options_.leader_jobs;
  const std::string id = options_.replica_id;
  const std::string host = options_.hostname;
  const domain::Timestamp started = started_at_;
  const std::int64_t window = 3 * options_.heartbeat_interval.count();
  const int pid = static_cast<int>(::getpid());
  auto beat = [=](store::Database& database) {
    const bool is_leader = want_leadership && store::TryLeadership(database.Get());
    const std::int64_t replicas =
        store::Heartbeat(database.Get(), id, host, pid, started, now, is_leader, window);
    return std::make_pair(is_leader, replicas);
  };
  const auto [leader, live] = co_await db_.Run(std::move(beat));
  if (leader != state_.leader) {
    spdlog::info(leader ? "this replica is now the leader (discovery and full scans)"
                        : "this replica is no longer the leader");
    next_full_scan_.reset();
    next_discovery_.reset();
    // The leader loop may be in its idle sleep: wake it, so a first sync starts now rather than
    // an idle tick later.
    if (leader) leader_timer_.cancel();
  }
  state_.leader = leader;
  state_.live_replicas = std::max<std::int64_t>(1, live);
  client_.rate_limiter().SetRate(options_.requests_per_second /
                                 static_cast<double>(state_.live_replicas));
}

net::awaitable<void> Scheduler::FlushRequestCounts() {
  auto current = client_.RequestCounts();
  std::vector<store::RequestDelta> deltas;
  for (const auto& cell : current) {
    std::uint64_t before = 0;
    for (const auto& old : flushed_counts_) {
      if (old.endpoint == cell.endpoint && old.purpose == cell.purpose &&
          old.status == cell.status) {
        before = old.count;
      }
    }
    if (cell.count > before) {
      deltas.push_back({std::string(postgrid::PurposeName(cell.purpose)),
                        std::string(postgrid::EndpointKindName(cell.endpoint)), cell.status,
                        static_cast<std::int64_t>(cell.count - before)});
    }
  }
  if (deltas.empty()) co_return;
  auto add_counts = [deltas](store::Database& database) {
    store::AddRequestCounts(database.Get(), deltas);
  };
  co_await db_.Run(std::move(add_counts));
  flushed_counts_ = std::move(current);
}

net::awaitable<void> Scheduler::HeartbeatLoop() {
  while (true) {
    try {
      co_await Heartbeat();
      co_await FlushRequestCounts();
    } catch (const std::exception& e) {
      // Without the database we cannot know whether we still hold the leader lock.
      if (state_.leader) spdlog::warn("giving up leadership: {}", e.what());
      state_.leader = false;
      spdlog::warn("heartbeat failed: {}", e.what());
    }
    if (!co_await Sleep(heartbeat_timer_, options_.heartbeat_interval)) break;
  }
  try {
    co_await FlushRequestCounts();
    const std::string id = options_.replica_id;
    auto deregister = [id](store::Database& database) { store::RemoveReplica(database.Get(), id); };
    co_await db_.Run(std::move(deregister));
  } catch (const std::exception& e) {
    spdlog::warn("could not deregister this replica: {}", e.what());
  }
}

// ---- webhooks -----------------------------------------------------------------------------

void Scheduler::Trigger(domain::OrderRef ref, std::optional<std::int64_t> delivery_id) {
  const std::string id = ref.id;
  if (stopping_) {
    MarkDueLater(ref, syncer_.Now(), "webhook_retry", IfTerminal::kReopen);
    return;
  }
  if (delivery_id) pending_deliveries_[id].push_back(*delivery_id);
  if (in_flight_.count(id) != 0) {
    dirty_.insert(id);  // refreshed again when the running refresh ends
    return;
  }
  if (queued_.count(id) != 0) return;  // coalesced with the queued refresh
  if (webhook_queue_.size() >= options_.webhook_queue_capacity) {
    ++state_.webhook_overflow;
    pending_deliveries_.erase(id);
    MarkDueLater(ref, syncer_.Now(), "webhook_overflow", IfTerminal::kReopen);
    return;
  }
  webhook_queue_.push_back(std::move(ref));
  queued_.insert(id);
  triggered_at_.emplace(id, std::chrono::steady_clock::now());
  state_.webhook_queue = webhook_queue_.size();
  for (std::size_t i = 0; i < webhook_idle_.size(); ++i) {
    if (webhook_idle_[i]) {
      webhook_idle_[i] = false;
      webhook_timers_[i]->cancel();
      break;
    }
  }
}

// A burst (many orders changing at one moment) queues deliveries faster than a transaction per
// order records them, so a worker takes what is queued, up to webhook_batch orders, and fetches
// them concurrently. What has been fetched is written together whenever the previous write ends
// (group commit): one queued order is one fetch and one write, as before; a burst costs a few
// transactions; and one slow or retried GET holds back no other order's write.
struct Scheduler::WebhookFetch {
  explicit WebhookFetch(const net::any_io_executor& executor) : wake(executor) {}
  std::vector<domain::OrderRef> refs;
  /// The deliveries each refresh answers, taken with its order: those that come while it runs
  /// wait for the next refresh (dirty_), which fetches after them.
  std::vector<std::vector<std::int64_t>> deliveries;         // by index of refs
  std::vector<std::optional<postgrid::Document>> documents;  // by index of refs
  std::vector<std::size_t> fetched;  // indices fetched and not written yet, in arrival order
  std::size_t active = 0;            // fetches not ended
  net::steady_timer wake;            // cancelled when a fetch ends
};

net::awaitable<void> Scheduler::WebhookWorker(std::size_t index) {
  while (!stopping_) {
    if (webhook_queue_.empty()) {
      webhook_idle_[index] = true;
      const bool running = co_await Sleep(*webhook_timers_[index], std::chrono::hours(1));
      webhook_idle_[index] = false;
      if (!running) break;
      continue;
    }
    auto batch = std::make_shared<WebhookFetch>(executor_);
    const std::size_t most = std::max<std::size_t>(1, options_.webhook_batch);
    while (!webhook_queue_.empty() && batch->refs.size() < most) {
      batch->refs.push_back(std::move(webhook_queue_.front()));
      webhook_queue_.pop_front();
      const std::string& id = batch->refs.back().id;
      queued_.erase(id);
      in_flight_.insert(id);
      batch->deliveries.emplace_back();
      if (auto it = pending_deliveries_.find(id); it != pending_deliveries_.end()) {
        batch->deliveries.back() = std::move(it->second);
        pending_deliveries_.erase(it);
      }
    }
    state_.webhook_queue = webhook_queue_.size();
    co_await RefreshForWebhooks(batch);
  }
}

net::awaitable<void> Scheduler::FetchForWebhook(std::shared_ptr<WebhookFetch> batch,
                                                std::size_t index) {
  const domain::OrderRef ref = batch->refs[index];
  try {
    batch->documents[index] =
        co_await client_.RetrieveDocument(ref, PurposeFor(store::Source::kWebhook));
    batch->fetched.push_back(index);
  } catch (const std::exception& e) {
    syncer_.CountRefreshFailures(1);
    spdlog::warn("webhook refresh of {} failed: {}; it is due for polling now", ref.id, e.what());
    std::vector<std::int64_t> none;
    FinishWebhookRefresh(ref, false, {}, none);
  }
}

void Scheduler::FinishWebhookRefresh(const domain::OrderRef& ref, bool recorded,
                                     const std::vector<std::int64_t>& deliveries,
                                     std::vector<std::int64_t>& processed) {
  in_flight_.erase(ref.id);
  if (recorded) {
    ++state_.webhook_refreshes;
    if (auto it = triggered_at_.find(ref.id); it != triggered_at_.end() && on_latency_) {
      on_latency_(
          std::chrono::duration<double>(std::chrono::steady_clock::now() - it->second).count());
    }
    processed.insert(processed.end(), deliveries.begin(), deliveries.end());
  } else {
    // Due now, and its deliveries stay unprocessed in the database, so that a restart refreshes
    // it again.
    MarkDueLater(ref, syncer_.Now(), "webhook_retry", IfTerminal::kReopen);
  }
  triggered_at_.erase(ref.id);
  if (dirty_.erase(ref.id) != 0) Trigger(ref, std::nullopt);
}

net::awaitable<void> Scheduler::RefreshForWebhooks(std::shared_ptr<WebhookFetch> batch) {
  batch->documents.resize(batch->refs.size());
  batch->active = batch->refs.size();
  batch->wake.expires_at(net::steady_timer::time_point::max());
  for (std::size_t i = 0; i < batch->refs.size(); ++i) {
    net::co_spawn(executor_, FetchForWebhook(batch, i), [batch](const std::exception_ptr& error) {
      if (error) {
        try {
          std::rethrow_exception(error);
        } catch (const std::exception& e) {
          spdlog::error("webhook fetch failed: {}", e.what());
        }
      }
      --batch->active;
      batch->wake.cancel();
    });
  }
  while (true) {
    if (batch->fetched.empty()) {
      if (batch->active == 0) break;
      boost::system::error_code ignored;  // cancelled when a fetch ends
      co_await batch->wake.async_wait(net::redirect_error(net::use_awaitable, ignored));
      continue;
    }
    // Everything fetched since the last write, written together.
    FetchedOrders ready;
    for (const auto i : batch->fetched) {
      ready.Add(batch->refs[i], std::move(*batch->documents[i]));
      batch->documents[i].reset();
    }
    const std::vector<std::size_t> written_now = std::exchange(batch->fetched, {});
    const RecordedOrders recorded =
        co_await RecordFetchedOrders(std::move(ready), store::Source::kWebhook);
    const std::unordered_set<std::string> recorded_ids(recorded.ids.begin(), recorded.ids.end());
    std::vector<std::int64_t> processed;
    for (const auto i : written_now) {
      const domain::OrderRef& ref = batch->refs[i];
      const bool written = recorded_ids.count(ref.id) != 0;
      if (!written) {
        spdlog::warn(
            "webhook refresh of {} was not recorded (see above); it is due for polling now",
            ref.id);
      }
      FinishWebhookRefresh(ref, written, batch->deliveries[i], processed);
    }
    if (!processed.empty() && on_processed_) on_processed_(std::move(processed));
  }
}

}  // namespace mailtrail::sync
