#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "domain/diff.hpp"
#include "domain/order.hpp"
#include "domain/schedule.hpp"

namespace pqxx {
class connection_base;
class transaction_base;
}  // namespace pqxx

namespace mailtrail::store {

/// What fetched a snapshot; stored in `order_changes.source` (contract.md).
enum class Source { kDiscovery, kPoll, kWebhook, kBackfill, kManual };
/// `discovery`, `poll`, `webhook`, `backfill`, `manual`.
std::string_view SourceName(Source source);

/// What one Apply did.
struct ApplyResult {
  bool first_observation = false;
  bool stale = false;  ///< the fetched snapshot was older than the stored one: nothing written
  std::vector<domain::FieldChange> changes;  ///< rows written to order_changes
  std::size_t new_tracking_events = 0;       ///< rows written to carrier_tracking_events
  domain::ScheduleDecision schedule;
};

/// One fetched snapshot for OrderRepository::ApplyBatch: the mapped order and the API object as
/// text (stored in `raw`).
struct SnapshotToApply {
  domain::OrderSnapshot snapshot;
  std::string raw_json;
};

/// An order the scheduler should refresh.
struct DueOrder {
  domain::OrderRef ref;
  std::string check_reason;
};

/// The orders, order_changes and carrier_tracking_events tables. Blocking (libpqxx): use it on the
/// database thread only, with a connection no other thread uses at the same time.
class OrderRepository {
 public:
  /// `random01` supplies the scheduling jitter in [0, 1) (injected for deterministic tests).
  OrderRepository(pqxx::connection_base& connection, domain::PollPolicy policy,
                  std::function<double()> random01);

  /// Records one fetched snapshot in one transaction: locks the order's row (inserting it when
  /// new, so two first observations racing cannot both write), diffs `fetched` against the row
  /// as locked, updates the typed columns and `raw`, writes one order_changes row per changed
  /// field (with `observed_at`, `source`, and `api_updated_at` = fetched.updated_at) and the new
  /// carrier events (ON CONFLICT DO NOTHING), and sets last_checked_at, last_changed_at,
  /// next_check_at, check_reason and terminal. A stale snapshot (updatedAt older than stored)
  /// writes no data, only last_checked_at. Racing calls for one order (poll + webhook, two
  /// replicas) serialise on the row lock, so each change is written once. Throws pqxx errors.
  ApplyResult Apply(const domain::OrderSnapshot& fetched, std::string_view raw_json, Source source,
                    domain::Timestamp observed_at);

  /// Records many fetched snapshots (a list page) in ONE transaction with a fixed number of
  /// multi-row statements (parameters as one array per column, never spliced values), with
  /// exactly Apply's per-order semantics: the new orders are inserted first (ON CONFLICT DO
  /// NOTHING, so a racing first observation waits on our row), the others are locked in id order
  /// (FOR UPDATE) and each snapshot is diffed against its row as locked; stale snapshots write only
  /// last_checked_at and the schedule; changes and carrier events are written once. An id that
  /// occurs several times is applied in order of occurrence, each against the previous one.
  /// Returns one ApplyResult per item, in the order of `items`. All or nothing: on any error
  /// (pqxx::sql_error, e.g. a value PostgreSQL refuses or a deadlock with another batch) nothing
  /// is written, and the caller may fall back to Apply per item to isolate the culprit. Throws
  /// pqxx errors.
  std::vector<ApplyResult> ApplyBatch(const std::vector<SnapshotToApply>& items, Source source,
                                      domain::Timestamp observed_at);

  /// The stored snapshot of `id` with its stored carrier events, or nullopt.
  std::optional<domain::OrderSnapshot> Load(std::string_view id);

  /// Claims up to `limit` due orders (non-terminal, next_check_at <= now, of `types`), oldest
  /// due first, by moving their next_check_at to now + lease: a lease other replicas respect
  /// (`FOR UPDATE SKIP LOCKED`). A refresh that records the order sets its real next check; one
  /// that fails leaves the lease, so the order is retried when it runs out.
  std::vector<DueOrder> ClaimDue(domain::Timestamp now, std::size_t limit,
                                 std::chrono::milliseconds lease,
                                 const std::vector<domain::OrderType>& types);

  /// Moves a non-terminal order's next check to `when` with `reason` (e.g. the order is due now
  /// because a webhook could not be handled at once, or PostGrid no longer finds it). With
  /// `reopen_terminal` a terminal order is made non-terminal and due too (a webhook said it
  /// changed after all, e.g. a late IMB scan; its next refresh decides again whether it is
  /// terminal). Returns false when the order is not stored, or is terminal and not reopened.
  bool Reschedule(std::string_view id, domain::Timestamp when, std::string_view reason,
                  bool reopen_terminal = false);

  /// What the store holds about a listed order, to decide whether to write it.
  struct StoredState {
    std::optional<domain::Timestamp> updated_at;
    std::optional<domain::Timestamp> next_check_at;
    bool terminal = false;
  };
  /// For list-page items: which of `ids` are stored, and their state. Ids not stored are absent.
  std::unordered_map<std::string, StoredState> StoredStates(const std::vector<std::string>& ids);

  /// For the cheaper-path choice: non-terminal orders of `type` due before `horizon`, and all
  /// stored orders of `type` (what a full list walk would page through).
  std::pair<std::int64_t, std::int64_t> CountDueBefore(domain::OrderType type,
                                                       domain::Timestamp horizon);

 private:
  void ApplyRound(pqxx::transaction_base& tx, const std::vector<SnapshotToApply>& items,
                  const std::vector<std::size_t>& round, Source source,
                  domain::Timestamp observed_at, std::vector<ApplyResult>& results);

  pqxx::connection_base& connection_;
  domain::PollPolicy policy_;
  std::function<double()> random01_;
};

}  // namespace mailtrail::store
