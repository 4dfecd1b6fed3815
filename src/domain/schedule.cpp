#include "domain/schedule.hpp"

#include <algorithm>

namespace mailtrail::domain {
namespace {

Timestamp After(Timestamp now, std::chrono::milliseconds base, double factor) {
  const auto micros = std::chrono::duration_cast<std::chrono::microseconds>(base).count();
  return now +
         std::chrono::microseconds(static_cast<std::int64_t>(static_cast<double>(micros) * factor));
}

double SpreadFactor(bool first_observation, double random01) {
  const double r = std::clamp(random01, 0.0, 1.0);
  return first_observation ? 0.5 + 0.5 * r : 1.0 + 0.1 * r;
}

}  // namespace

std::string_view CheckReasonName(CheckReason reason) {
  switch (reason) {
    case CheckReason::kAwaitingCarrierData:
      return "awaiting_carrier_data";
    case CheckReason::kCarrierTracking:
      return "carrier_tracking";
    case CheckReason::kCarrierPollingOff:
      return "carrier_polling_off";
    case CheckReason::kCompletedGrace:
      return "completed_grace";
    case CheckReason::kTerminalCancelled:
      return "terminal_cancelled";
    case CheckReason::kTerminalDelivered:
      return "terminal_delivered";
    case CheckReason::kTerminalGraceExpired:
      return "terminal_grace_expired";
    case CheckReason::kTerminalFilled:
      return "terminal_filled";
  }
  return "unknown";
}

ScheduleDecision DecideSchedule(const OrderSnapshot& order, Timestamp now, const PollPolicy& policy,
                                std::optional<Timestamp> completed_since, bool first_observation,
                                double random01) {
  using Kind = OrderStatus::Kind;
  const double factor = SpreadFactor(first_observation, random01);
  const Kind status = order.status.kind;

  if (status == Kind::kCancelled) return {true, std::nullopt, CheckReason::kTerminalCancelled};
  if (status == Kind::kFilled) return {true, std::nullopt, CheckReason::kTerminalFilled};

  const bool has_carrier_data = order.carrier_tracking.has_value();
  if (status == Kind::kCompleted) {
    if (has_carrier_data && order.carrier_tracking->status &&
        IsTerminalCarrierStatus(order.carrier_tracking->status->raw)) {
      return {true, std::nullopt, CheckReason::kTerminalDelivered};
    }
    if (!order.tracking_number) {
      const Timestamp since = completed_since.value_or(now);
      if (now - since >= policy.completed_grace) {
        return {true, std::nullopt, CheckReason::kTerminalGraceExpired};
      }
      // Never schedule past the end of the grace period: the check there makes it terminal.
      const Timestamp grace_end =
          since + std::chrono::duration_cast<std::chrono::microseconds>(policy.completed_grace);
      return {false, std::min(After(now, policy.interval, factor), grace_end),
              CheckReason::kCompletedGrace};
    }
  }

  if (!has_carrier_data) {
    return {false, After(now, policy.interval, factor), CheckReason::kAwaitingCarrierData};
  }
  if (policy.carrier_interval.count() == 0) {
    return {false, std::nullopt, CheckReason::kCarrierPollingOff};
  }
  return {false, After(now, policy.carrier_interval, factor), CheckReason::kCarrierTracking};
}

bool PreferListWalk(std::int64_t due_soon, std::int64_t listed, std::int64_t page_size) {
  if (page_size <= 0 || due_soon <= 0) return false;
  const std::int64_t pages = (listed + page_size - 1) / page_size + 1;
  return due_soon > pages;
}

}  // namespace mailtrail::domain
