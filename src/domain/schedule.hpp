#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>

#include "domain/order.hpp"
#include "domain/timestamp.hpp"

namespace mailtrail::domain {

/// The polling tiers of contract.md (`poll.*`), as plain durations.
struct PollPolicy {
  std::chrono::milliseconds interval{std::chrono::hours(1)};          ///< lacking carrier data
  std::chrono::milliseconds carrier_interval{std::chrono::hours(6)};  ///< with carrier data; 0 off
  std::chrono::milliseconds completed_grace{std::chrono::hours(24 * 14)};
};

/// Why an order has the next_check_at it has; stored in `orders.check_reason`.
enum class CheckReason {
  kAwaitingCarrierData,   ///< non-terminal, no carrier data yet: every `interval`
  kCarrierTracking,       ///< non-terminal, has carrier data: every `carrier_interval`
  kCarrierPollingOff,     ///< has carrier data but `carrier_interval` is 0: not polled
  kCompletedGrace,        ///< completed without tracking number, inside the grace period
  kTerminalCancelled,     ///< status cancelled
  kTerminalDelivered,     ///< completed with a terminal carrier status
  kTerminalGraceExpired,  ///< completed without tracking number, grace period over
  kTerminalFilled,        ///< return envelope order filled
};

/// `awaiting_carrier_data`, `carrier_tracking`, `carrier_polling_off`, `completed_grace`,
/// `terminal_cancelled`, `terminal_delivered`, `terminal_grace_expired`, `terminal_filled`.
std::string_view CheckReasonName(CheckReason reason);

struct ScheduleDecision {
  bool terminal = false;
  std::optional<Timestamp> next_check_at;  ///< nullopt: never polled (terminal, or tier off)
  CheckReason reason = CheckReason::kAwaitingCarrierData;

  bool operator==(const ScheduleDecision&) const = default;
};

/// Decides when `order` is polled next (contract.md "Terminal", issue 6 "Due orders").
///  - `cancelled`, `filled`, and `completed` with a terminal carrier status are terminal;
///  - `completed` without a tracking number is watched every `interval` until `completed_grace`
///    after `completed_since` has passed, then terminal (IMB scans can still arrive);
///  - other orders lacking carrier data: every `interval`; with carrier data: every
///    `carrier_interval` (0: not polled, but not terminal either).
/// The delay is spread so that hourly work does not come in bursts: a first observation waits
/// `interval * (0.5 + 0.5 * random01)` (spreading a large discovery over the interval), later
/// checks `interval * (1 + 0.1 * random01)` (never sooner than the interval). `random01` in [0, 1)
/// is injected so tests are deterministic. Pure.
ScheduleDecision DecideSchedule(const OrderSnapshot& order, Timestamp now, const PollPolicy& policy,
                                std::optional<Timestamp> completed_since, bool first_observation,
                                double random01);

/// The cheaper path (issue 6): refreshing `due_soon` orders one GET each costs `due_soon`
/// requests; walking the type's whole list costs ceil(`listed` / `page_size`) requests and shows
/// every order. True when the walk is strictly cheaper, with one page of margin for the list
/// growing meanwhile. Pure.
bool PreferListWalk(std::int64_t due_soon, std::int64_t listed, std::int64_t page_size);

}  // namespace mailtrail::domain
