#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <functional>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <vector>

#include "domain/diff.hpp"
#include "domain/schedule.hpp"
#include "net/net.hpp"
#include "postgrid/client.hpp"
#include "store/order_repository.hpp"
#include "sync/db_executor.hpp"

namespace mailtrail::sync {

using Clock = std::function<domain::Timestamp()>;

/// The request purpose that goes with a history source.
postgrid::Purpose PurposeFor(store::Source source);

/// What one list page did to the database.
struct PageOutcome {
  std::size_t items = 0;
  std::size_t new_orders = 0;
  std::size_t changed = 0;    ///< known orders whose updatedAt moved (applied)
  std::size_t unchanged = 0;  ///< known orders with the stored updatedAt (not written)
  std::size_t failed = 0;     ///< items that could not be mapped or written (logged)
  std::size_t changes = 0;    ///< order_changes rows written
  std::size_t oldest_created_before_since = 0;  ///< items created before a backfill's --since
  std::size_t rechecked = 0;  ///< unchanged but due orders recorded as checked (list polling)
  /// RecordFetched only: ids of the orders written (new, changed or rechecked).
  std::vector<std::string> recorded;
};

/// Counters for metrics and `status`, readable from any thread.
struct SyncCounters {
  std::atomic<std::uint64_t> refreshes{0};
  std::atomic<std::uint64_t> refresh_failures{0};
  std::atomic<std::uint64_t> stale_snapshots{0};
  std::atomic<std::uint64_t> mapping_errors{0};
  std::atomic<std::uint64_t> tracking_events{0};
  /// Values this build does not know, seen in fetched orders: status, imb_status, carrier_status
  /// (the order's and its tracking updates'). Kept verbatim; counted so operators notice.
  std::atomic<std::uint64_t> unknown_status{0};
  std::atomic<std::uint64_t> unknown_imb_status{0};
  std::atomic<std::uint64_t> unknown_carrier_status{0};
  /// order_changes rows by [field][source].
  std::array<std::array<std::atomic<std::uint64_t>, 5>, 9> changes{};
};

/// Fetch -> map -> diff -> write: the one place that orchestrates that I/O (style.md). Runs on
/// the I/O thread; every database step hops to the DbExecutor.
class Syncer {
 public:
  Syncer(postgrid::Client& client, DbExecutor& db, domain::PollPolicy policy, Clock clock);

  /// GETs one order and records it (source says why). Throws postgrid::ApiError,
  /// postgrid::MappingError or a pqxx error; nothing is written on failure.
  net::awaitable<store::ApplyResult> Refresh(domain::OrderRef ref, store::Source source);

  /// Records the new and changed orders of one list page (`items`: the page's `data` array).
  /// Items whose stored updatedAt equals the listed one are not written. An item that cannot be
  /// mapped is logged and counted, never fatal for the page. `envelope_id` fills in return
  /// envelope orders listed under their envelope. `since`: items created before it are counted in
  /// oldest_created_before_since and skipped (backfill --since). `due_before`: unchanged
  /// non-terminal orders due before it are recorded too (as checked and rescheduled), which is how
  /// a list walk stands in for their GETs. Throws pqxx errors.
  net::awaitable<PageOutcome> ApplyPage(nlohmann::json items, store::Source source,
                                        std::string envelope_id,
                                        std::optional<domain::Timestamp> since = std::nullopt,
                                        std::optional<domain::Timestamp> due_before = std::nullopt);

  /// Records orders the caller GET one by one (the scheduler's polls), each as fetched: every
  /// item is written (at least as checked), without first reading what is stored to leave some
  /// out. `raw_texts`: empty, or the body text each item was parsed from, kept as `orders.raw`
  /// instead of serializing the item again. Mapping failures count as in ApplyPage. Throws pqxx
  /// errors, std::invalid_argument when raw_texts is neither empty nor one per item.
  net::awaitable<PageOutcome> RecordFetched(nlohmann::json items,
                                            std::vector<std::string> raw_texts,
                                            store::Source source, std::string envelope_id);

  /// Records a snapshot the caller already fetched (e.g. a progression's response).
  /// `raw_text`: the text `object` was parsed from (kept as `orders.raw`); empty: serialize it.
  net::awaitable<store::ApplyResult> Record(nlohmann::json object, store::Source source,
                                            std::string envelope_id, std::string raw_text = {});

  const SyncCounters& counters() const { return counters_; }
  /// For callers that fetch themselves and record through ApplyPage (the scheduler's polling):
  /// counts refreshes that failed before or while being recorded, as Refresh counts its own.
  void CountRefreshFailures(std::uint64_t failures) { counters_.refresh_failures += failures; }
  domain::Timestamp Now() const { return clock_(); }

 private:
  /// Maps a page's items (logging and counting those that cannot be read, leaving out those
  /// created before `since`), with their raw texts (or serialized when `raw_texts` is empty).
  std::vector<store::SnapshotToApply> MapItems(const nlohmann::json& items,
                                               std::vector<std::string> raw_texts,
                                               const std::string& envelope_id,
                                               std::optional<domain::Timestamp> since,
                                               PageOutcome& outcome);
  /// Writes mapped items as one batch (one by one if the batch fails). `every_item`: write each;
  /// else leave out known orders with the stored updatedAt unless due before `due_before`.
  net::awaitable<PageOutcome> Write(std::vector<store::SnapshotToApply> mapped,
                                    store::Source source, PageOutcome outcome, bool every_item,
                                    std::optional<domain::Timestamp> due_before);
  void Count(const store::ApplyResult& result, store::Source source);
  void CountUnknownValues(const domain::OrderSnapshot& snapshot);

  postgrid::Client& client_;
  DbExecutor& db_;
  domain::PollPolicy policy_;
  Clock clock_;
  std::mt19937_64 random_;  ///< seeds each write's own generator (I/O thread only)
  SyncCounters counters_;
};

}  // namespace mailtrail::sync
