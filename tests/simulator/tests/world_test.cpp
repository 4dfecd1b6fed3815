#include "world.hpp"

#include <gtest/gtest.h>

#include <map>
#include <nlohmann/json.hpp>
#include <set>

namespace mailtrail::sim {
namespace {

using Json = nlohmann::json;
constexpr int64_t kStart = 1795000000000;  // 2026-11-18T...Z, fixed for reproducibility
constexpr int64_t kDay = 86400000;

WorldOptions Options(uint64_t orders, uint64_t seed = 7) {
  WorldOptions o;
  o.orders = orders;
  o.seed = seed;
  o.start_ms = kStart;
  o.paused = true;
  o.unknown_enum_rate = 0;
  return o;
}

Json Render(World& w, uint32_t i) {
  std::string out;
  w.RenderOrder(out, i, w.StateOf(i), true);
  return Json::parse(out);
}

TEST(World, SameSeedGivesTheSameWorld) {
  World a(Options(500));
  World b(Options(500));
  ASSERT_EQ(a.order_count(), b.order_count());
  for (uint32_t i = 0; i < a.order_count(); i += 37) {
    Json ja = Render(a, i);
    Json jb = Render(b, i);
    ja.erase("url");
    jb.erase("url");
    EXPECT_EQ(ja, jb);
  }
  World c(Options(500, 8));
  EXPECT_NE(a.OrderId(0), c.OrderId(0));
}

TEST(World, MixesAllSevenTypesAndBothModes) {
  World w(Options(2000));
  for (int k = 0; k < kKindCount; ++k) {
    EXPECT_FALSE(w.List(false, static_cast<Kind>(k)).empty()) << k;
    EXPECT_FALSE(w.List(true, static_cast<Kind>(k)).empty()) << k;
  }
}

TEST(World, OrderRecordsStayCompact) {
  EXPECT_EQ(sizeof(Rec), 16u);
  EXPECT_EQ(sizeof(Event), 16u);
  EXPECT_LE(sizeof(Order), 80u);
}

TEST(World, FindOrderRejectsAnotherTypesPrefix) {
  World w(Options(200));
  const std::string id = w.OrderId(3);
  EXPECT_EQ(w.FindOrder(id), 3u);
  const std::string suffix = id.substr(id.size() - 11);
  const std::string other =
      w.order(3).kind == Kind::kPostcard ? "letter_" + suffix : "postcard_" + suffix;
  EXPECT_FALSE(w.FindOrder(other));
  EXPECT_FALSE(w.FindOrder("letter_doesnotexist"));
}

// Walks every order's ground truth after 30 simulated days and checks the lifecycle rules of
// postgrid-api.md sections 1-5.
TEST(World, LifecyclesFollowPostGridRules) {
  World w(Options(3000));
  w.AdvanceBy(30 * kDay);
  const std::map<std::string, std::set<std::string>> allowed = {
      {"ready", {"printing", "cancelled", "completed"}},
      {"printing", {"processed_for_delivery"}},
      {"processed_for_delivery", {"completed"}},
      {"placed", {"filled", "cancelled"}},
  };
  std::map<std::string, int> terminal_carrier;
  int imb_orders = 0, tracked_orders = 0, completed_live = 0;
  for (uint32_t i = 0; i < w.order_count(); ++i) {
    const Order& o = w.order(i);
    std::string truth;
    w.RenderTruth(truth, i);
    const Json t = Json::parse(truth);
    const Json order = Render(w, i);
    std::string last_status;
    bool saw_tracking = false;
    int64_t last_at = 0;
    for (const auto& c : t["changes"]) {
      const int64_t at = *ParseIso(c["at"].get<std::string>());
      ASSERT_GE(at, last_at) << truth;
      last_at = at;
      const std::string field = c["field"];
      if (field == "status") {
        const std::string next = c["new"];
        if (!last_status.empty()) {
          ASSERT_TRUE(allowed.count(last_status) && allowed.at(last_status).count(next))
              << last_status << " -> " << next << " in " << truth;
          if (!o.live && o.kind != Kind::kReo && next != "cancelled" && !o.manual) {
            EXPECT_EQ(next, "completed") << "test orders jump ready -> completed: " << truth;
          }
        }
        last_status = next;
      }
      if (field == "tracking_number") {
        saw_tracking = true;
        EXPECT_EQ(last_status, "processed_for_delivery") << truth;
      }
      if (field == "carrier_status") {
        EXPECT_TRUE(saw_tracking) << "carrier data before a tracking number: " << truth;
      }
      if (field == "imb_status") {
        EXPECT_TRUE(o.live && o.us) << truth;
      }
    }
    EXPECT_EQ(order["status"], last_status);
    EXPECT_EQ(order["updatedAt"].get<std::string>(), FormatIso(w.StateOf(i).updated_ms));
    if (order.contains("imbStatus")) {
      ++imb_orders;
      EXPECT_TRUE(order.contains("imbDate") && order.contains("imbZIPCode"));
    }
    if (order.contains("carrierTracking")) {
      ++tracked_orders;
      const auto& ct = order["carrierTracking"];
      for (const char* key : {"carrier", "status", "statusDetail", "estDeliveryDate", "signedBy",
                              "trackingUpdates"}) {
        EXPECT_TRUE(ct.contains(key)) << key;
      }
      EXPECT_TRUE(order.contains("trackingNumber"));
      const std::string cs = ct["status"];
      if (cs == "delivered" || cs == "return_to_sender" || cs == "failure") {
        ++terminal_carrier[cs];
        EXPECT_EQ(order["status"], "completed") << "terminal carrier status completes the order";
      }
    }
    if (o.live && order["status"] == "completed") ++completed_live;
    if (order["status"] == "cancelled") {
      EXPECT_TRUE(order.contains("cancellation"));
      EXPECT_TRUE(order["cancellation"].contains("reason"));
    }
  }
  EXPECT_GT(imb_orders, 50);
  EXPECT_GT(tracked_orders, 10);
  EXPECT_GT(terminal_carrier["delivered"], 5);
  EXPECT_GT(completed_live, 100);
}

TEST(World, TestProgressionAdvancesOneStageThenRefuses) {
  World w(Options(0));
  CreateSpec spec;
  spec.kind = Kind::kLetter;
  spec.extra_service = "certified";
  const uint32_t i = w.Create(spec);
  EXPECT_EQ(w.pool().Get(w.StateOf(i).status), "ready");
  for (const char* expected : {"printing", "processed_for_delivery", "completed"}) {
    ASSERT_EQ(w.Progress(i), ActionResult::kOk);
    EXPECT_EQ(w.pool().Get(w.StateOf(i).status), expected);
  }
  EXPECT_TRUE(w.StateOf(i).tracking_number) << "certified gets a number at processed_for_delivery";
  EXPECT_EQ(w.Progress(i), ActionResult::kInvalid);
  // A hand-progressed test order no longer follows its automatic plan.
  w.AdvanceBy(20 * kDay);
  EXPECT_EQ(w.pool().Get(w.StateOf(i).status), "completed");
}

TEST(World, UntouchedTestOrderJumpsToCompletedWhenPrintingWouldStart) {
  World w(Options(0));
  const uint32_t i = w.Create(CreateSpec{});
  w.AdvanceBy(3 * kDay);
  std::string truth;
  w.RenderTruth(truth, i);
  const Json t = Json::parse(truth);
  ASSERT_EQ(t["changes"].size(), 2u) << truth;
  EXPECT_EQ(t["changes"][1]["old"], "ready");
  EXPECT_EQ(t["changes"][1]["new"], "completed");
}

TEST(World, CancelOnlyWhileReady) {
  World w(Options(0));
  const uint32_t a = w.Create(CreateSpec{});
  EXPECT_EQ(w.Cancel(a, "changed my mind", true), ActionResult::kOk);
  EXPECT_EQ(w.pool().Get(w.StateOf(a).status), "cancelled");
  EXPECT_EQ(w.Cancel(a, "", false), ActionResult::kInvalid);
  EXPECT_EQ(w.Progress(a), ActionResult::kInvalid);
  const uint32_t b = w.Create(CreateSpec{});
  ASSERT_EQ(w.Progress(b), ActionResult::kOk);
  EXPECT_EQ(w.Cancel(b, "", false), ActionResult::kInvalid);
}

TEST(World, ReturnEnvelopeOrderFillsOnce) {
  World w(Options(0));
  CreateSpec spec;
  spec.kind = Kind::kReo;
  const uint32_t i = w.Create(spec);
  EXPECT_EQ(w.pool().Get(w.StateOf(i).status), "placed");
  EXPECT_EQ(w.Fill(i), ActionResult::kOk);
  EXPECT_EQ(w.pool().Get(w.StateOf(i).status), "filled");
  EXPECT_EQ(w.Fill(i), ActionResult::kInvalid);
}

TEST(World, LiveCertifiedOrderReachesDeliveredThroughSteps) {
  World w(Options(0));
  CreateSpec spec;
  spec.live = true;
  spec.extra_service = "certified_return_receipt";
  const uint32_t i = w.Create(spec);
  int steps = 0;
  while (w.Step(i) == ActionResult::kOk) ++steps;
  EXPECT_GE(steps, 8);
  const Json order = Render(w, i);
  EXPECT_EQ(order["status"], "completed");
  EXPECT_EQ(order["carrierTracking"]["status"], "delivered");
  EXPECT_TRUE(order["carrierTracking"]["signedBy"].is_string());
  EXPECT_GE(order["carrierTracking"]["trackingUpdates"].size(), 5u);
}

TEST(World, UnknownEnumValuesAppearWhenAsked) {
  World w(Options(0));
  CreateSpec spec;
  spec.live = true;
  spec.extra_service = "certified";
  spec.unknown_enums = true;
  const uint32_t i = w.Create(spec);
  bool seen = false;
  while (w.Step(i) == ActionResult::kOk) {
    const Json order = Render(w, i);
    if (order.contains("carrierTracking") &&
        order["carrierTracking"]["status"] == "held_for_review") {
      seen = true;
    }
  }
  EXPECT_TRUE(seen);
}

TEST(World, EveryChangeEmitsAnEventAndBumpsUpdatedAt) {
  World w(Options(0));
  CreateSpec spec;
  spec.live = true;
  const uint32_t i = w.Create(spec);
  size_t events = w.events().size();
  int64_t updated = w.StateOf(i).updated_ms;
  while (w.Step(i) == ActionResult::kOk) {
    EXPECT_EQ(w.events().size(), events + 1);
    EXPECT_GT(w.StateOf(i).updated_ms, updated);
    events = w.events().size();
    updated = w.StateOf(i).updated_ms;
    EXPECT_EQ(w.events().back().updated, 1);
  }
}

}  // namespace
}  // namespace mailtrail::sim
