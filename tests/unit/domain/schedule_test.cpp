#include "domain/schedule.hpp"

#include <gtest/gtest.h>

namespace mailtrail::domain {
namespace {

using namespace std::chrono_literals;

Timestamp At(const std::string& iso) { return *ParseTimestamp(iso); }

struct Row {
  std::string name;
  std::string status;
  bool tracking_number = false;
  std::optional<std::string> carrier_status;  // carrierTracking present when set ("" = no status)
  std::optional<std::string> completed_since;
  bool first_observation = false;
  double random01 = 0.0;
  ScheduleDecision expected;
};

OrderSnapshot Build(const Row& row) {
  OrderSnapshot order;
  order.ref = {OrderType::kLetter, "letter_1", ""};
  order.status = OrderStatus::FromRaw(row.status);
  if (row.tracking_number) order.tracking_number = "9400";
  if (row.carrier_status) {
    order.carrier_tracking.emplace();
    if (!row.carrier_status->empty())
      order.carrier_tracking->status = CarrierStatus::FromRaw(*row.carrier_status);
  }
  return order;
}

const Timestamp kNow = At("2026-03-01T12:00:00Z");
const PollPolicy kPolicy{1h, 6h, 24h * 14};

TEST(DecideScheduleTest, Table) {
  using R = CheckReason;
  const Row rows[] = {
      {"ready without carrier data: hourly",
       "ready",
       false,
       {},
       {},
       false,
       0.0,
       {false, kNow + 1h, R::kAwaitingCarrierData}},
      {"later checks spread up to +10%",
       "printing",
       false,
       {},
       {},
       false,
       0.5,
       {false, kNow + 63min, R::kAwaitingCarrierData}},
      {"first observation spread over the second half of the interval",
       "ready",
       false,
       {},
       {},
       true,
       0.0,
       {false, kNow + 30min, R::kAwaitingCarrierData}},
      {"first observation, random near 1",
       "ready",
       false,
       {},
       {},
       true,
       0.5,
       {false, kNow + 45min, R::kAwaitingCarrierData}},
      {"tracking number but no carrier data yet: hourly",
       "processed_for_delivery",
       true,
       {},
       {},
       false,
       0.0,
       {false, kNow + 1h, R::kAwaitingCarrierData}},
      {"carrier data in transit: carrier interval",
       "processed_for_delivery",
       true,
       "in_transit",
       {},
       false,
       0.0,
       {false, kNow + 6h, R::kCarrierTracking}},
      {"unknown carrier status is not terminal",
       "completed",
       true,
       "teleported",
       {},
       false,
       0.0,
       {false, kNow + 6h, R::kCarrierTracking}},
      {"carrier object without status",
       "processed_for_delivery",
       true,
       "",
       {},
       false,
       0.0,
       {false, kNow + 6h, R::kCarrierTracking}},
      {"cancelled is terminal",
       "cancelled",
       false,
       {},
       {},
       false,
       0.0,
       {true, std::nullopt, R::kTerminalCancelled}},
      {"filled return envelope order is terminal",
       "filled",
       false,
       {},
       {},
       false,
       0.0,
       {true, std::nullopt, R::kTerminalFilled}},
      {"placed return envelope order: hourly",
       "placed",
       false,
       {},
       {},
       false,
       0.0,
       {false, kNow + 1h, R::kAwaitingCarrierData}},
      {"completed and delivered is terminal",
       "completed",
       true,
       "delivered",
       {},
       false,
       0.0,
       {true, std::nullopt, R::kTerminalDelivered}},
      {"completed and returned to sender is terminal",
       "completed",
       true,
       "return_to_sender",
       {},
       false,
       0.0,
       {true, std::nullopt, R::kTerminalDelivered}},
      {"completed, tracking number, still in transit: watched",
       "completed",
       true,
       "in_transit",
       {},
       false,
       0.0,
       {false, kNow + 6h, R::kCarrierTracking}},
      {"completed without tracking number inside the grace period",
       "completed",
       false,
       {},
       "2026-02-20T12:00:00Z",
       false,
       0.0,
       {false, kNow + 1h, R::kCompletedGrace}},
      {"completed without tracking number: last check at the end of grace",
       "completed",
       false,
       {},
       "2026-02-15T12:30:00Z",
       false,
       0.0,
       {false, At("2026-03-01T12:30:00Z"), R::kCompletedGrace}},
      {"completed without tracking number after the grace period",
       "completed",
       false,
       {},
       "2026-02-15T12:00:00Z",
       false,
       0.0,
       {true, std::nullopt, R::kTerminalGraceExpired}},
      {"completed just now (no since known)",
       "completed",
       false,
       {},
       {},
       false,
       0.0,
       {false, kNow + 1h, R::kCompletedGrace}},
      {"unknown order status is watched",
       "lost_in_space",
       false,
       {},
       {},
       false,
       0.0,
       {false, kNow + 1h, R::kAwaitingCarrierData}},
  };
  for (const auto& row : rows) {
    const auto since =
        row.completed_since ? std::optional<Timestamp>(At(*row.completed_since)) : std::nullopt;
    const auto decision =
        DecideSchedule(Build(row), kNow, kPolicy, since, row.first_observation, row.random01);
    EXPECT_EQ(decision.terminal, row.expected.terminal) << row.name;
    EXPECT_EQ(decision.reason, row.expected.reason)
        << row.name << ": " << CheckReasonName(decision.reason);
    ASSERT_EQ(decision.next_check_at.has_value(), row.expected.next_check_at.has_value())
        << row.name;
    if (decision.next_check_at) {
      EXPECT_EQ(FormatTimestamp(*decision.next_check_at),
                FormatTimestamp(*row.expected.next_check_at))
          << row.name;
    }
  }
}

TEST(DecideScheduleTest, CarrierPollingOffLeavesOrdersUnpolledButNotTerminal) {
  PollPolicy policy = kPolicy;
  policy.carrier_interval = 0ms;
  Row row{"", "processed_for_delivery", true, "in_transit", {}, false, 0.0, {}};
  const auto decision = DecideSchedule(Build(row), kNow, policy, std::nullopt, false, 0.0);
  EXPECT_FALSE(decision.terminal);
  EXPECT_FALSE(decision.next_check_at.has_value());
  EXPECT_EQ(decision.reason, CheckReason::kCarrierPollingOff);
}

TEST(DecideScheduleTest, NeverSoonerThanTheIntervalAfterTheFirstCheck) {
  Row row{"", "printing", false, {}, {}, false, 0.0, {}};
  for (double r = 0.0; r < 1.0; r += 0.01) {
    const auto decision = DecideSchedule(Build(row), kNow, kPolicy, std::nullopt, false, r);
    ASSERT_TRUE(decision.next_check_at.has_value());
    EXPECT_GE(*decision.next_check_at, kNow + 1h);
    EXPECT_LE(*decision.next_check_at, kNow + 66min);
  }
}

}  // namespace
}  // namespace mailtrail::domain

namespace mailtrail::domain {
namespace {

struct WalkRow {
  std::int64_t due_soon;
  std::int64_t listed;
  bool expected;
};

TEST(PreferListWalkTest, WalksWhenThePagesCostFewerRequestsThanTheGets) {
  const WalkRow rows[] = {
      {0, 0, false},          // nothing due: nothing to save
      {1, 1, false},          // one GET beats one page (plus the margin page)
      {2, 100, false},        // 1 page + 1 margin = 2 requests: not strictly cheaper
      {3, 100, true},         // 3 GETs vs 2 pages
      {1000, 100000, false},  // 1,000 GETs vs 1,001 pages
      {1002, 100000, true},   // 1,002 GETs vs 1,001 pages
      {90000, 100000, true},  // steady hourly polling of a large account: ~90x fewer requests
      {50, 101, true},        // 2 pages + margin
      {-5, 10, false},        // nonsense counts are not a reason to walk
  };
  for (const auto& row : rows) {
    EXPECT_EQ(PreferListWalk(row.due_soon, row.listed, 100), row.expected)
        << row.due_soon << " due, " << row.listed << " listed";
  }
  EXPECT_FALSE(PreferListWalk(10, 10, 0));
}

}  // namespace
}  // namespace mailtrail::domain
