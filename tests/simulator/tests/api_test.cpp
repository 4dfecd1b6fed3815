// Conformance of postgrid-sim's API to shared/reference/postgrid-api.md, one fact per test.
#include <gtest/gtest.h>

#include <regex>
#include <set>

#include "in_process.hpp"

namespace mailtrail::sim::test {
namespace {

class Api : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { sim_ = new InProcessSim(400); }
  static void TearDownTestSuite() {
    delete sim_;
    sim_ = nullptr;
  }
  static InProcessSim* sim_;
  const InProcessSim& sim() const { return *sim_; }
  Json Get(const std::string& target, const std::string& key = kTestKey) const {
    const auto r = sim().Api("GET", target, key);
    EXPECT_EQ(r.status, 200) << target << " " << r.body;
    return InProcessSim::J(r);
  }
};
InProcessSim* Api::sim_ = nullptr;

void ExpectError(const HttpResult& r, int status, const std::string& type) {
  EXPECT_EQ(r.status, status) << r.body;
  const Json j = Json::parse(r.body, nullptr, false);
  ASSERT_TRUE(j.is_object()) << r.body;
  EXPECT_EQ(j["object"], "error");
  EXPECT_EQ(j["error"]["type"], type) << r.body;
  EXPECT_TRUE(j["error"]["message"].is_string());
}

// §1 auth
TEST_F(Api, MissingKeyIs401MissingAuthError) {
  ExpectError(sim().Api("GET", "/letters", ""), 401, "missing_auth_error");
}

TEST_F(Api, UnknownKeyIs401) {
  ExpectError(sim().Api("GET", "/letters", "test_sk_wrong"), 401, "permission_missing_error");
}

TEST_F(Api, TestAndLiveKeysSeeDisjointWorlds) {
  std::set<std::string> test_ids;
  const Json test = Get("/letters?limit=100");
  for (const auto& o : test["data"]) {
    EXPECT_EQ(o["live"], false);
    test_ids.insert(o["id"]);
  }
  const Json live = Get("/letters?limit=100", kLiveKey);
  ASSERT_FALSE(live["data"].empty());
  for (const auto& o : live["data"]) {
    EXPECT_EQ(o["live"], true);
    EXPECT_EQ(test_ids.count(o["id"]), 0u);
  }
  const std::string live_id = live["data"][0]["id"];
  ExpectError(sim().Api("GET", "/letters/" + live_id, kTestKey), 404, "not_found_error");
}

// §2 list envelope, paging, clamping, ordering
TEST_F(Api, ListEnvelopeHasExactlyTheDocumentedKeys) {
  const Json j = Get("/postcards");
  std::set<std::string> keys;
  for (const auto& [k, v] : j.items()) keys.insert(k);
  EXPECT_EQ(keys, (std::set<std::string>{"object", "limit", "skip", "totalCount", "data"}));
  EXPECT_EQ(j["object"], "list");
}

TEST_F(Api, DefaultLimitIsTen) {
  const Json j = Get("/letters");
  EXPECT_EQ(j["limit"], 10);
  EXPECT_EQ(j["skip"], 0);
  EXPECT_EQ(j["data"].size(), 10u);
  EXPECT_GT(j["totalCount"].get<int>(), 10);
}

TEST_F(Api, LimitIsClampedTo100) {
  for (int i = 0; i < 110; ++i) sim().Create({{"type", "postcards"}});  // ensure > 100 exist
  const Json j = Get("/postcards?limit=500");
  EXPECT_EQ(j["limit"], 100);
  EXPECT_EQ(j["data"].size(), 100u);
}

TEST_F(Api, NonNumericOrNegativeSkipLimitIs400ValidationError) {
  ExpectError(sim().Api("GET", "/letters?limit=abc"), 400, "validation_error");
  ExpectError(sim().Api("GET", "/letters?skip=-1"), 400, "validation_error");
  ExpectError(sim().Api("GET", "/letters?limit=-5"), 400, "validation_error");
}

TEST_F(Api, SkipPagesThroughTheSameOrder) {
  const Json all = Get("/cheques?limit=100");
  std::vector<std::string> paged;
  for (int skip = 0; skip < all["totalCount"].get<int>() && skip < 100; skip += 7) {
    const Json page = Get("/cheques?limit=7&skip=" + std::to_string(skip));
    for (const auto& o : page["data"]) {
      paged.push_back(o["id"]);
    }
  }
  ASSERT_EQ(paged.size(), all["data"].size());
  for (size_t i = 0; i < paged.size(); ++i) EXPECT_EQ(paged[i], all["data"][i]["id"]);
  const Json beyond = Get("/cheques?skip=100000");
  EXPECT_TRUE(beyond["data"].empty());
  EXPECT_EQ(beyond["totalCount"], all["totalCount"]);
}

TEST_F(Api, ListsAreNewestCreatedAtFirst) {
  const Json j = Get("/letters?limit=100");
  for (size_t i = 1; i < j["data"].size(); ++i) {
    EXPECT_GE(j["data"][i - 1]["createdAt"].get<std::string>(),
              j["data"][i]["createdAt"].get<std::string>());
  }
}

TEST_F(Api, FreeTextSearchMatchesId) {
  const std::string id = Get("/letters?limit=1")["data"][0]["id"];
  const Json j = Get("/letters?search=" + id);
  ASSERT_EQ(j["totalCount"], 1);
  EXPECT_EQ(j["data"][0]["id"], id);
  EXPECT_EQ(Get("/letters?search=no-such-text-anywhere")["totalCount"], 0);
}

TEST_F(Api, JsonSearchMatchesMetadata) {
  const std::string id = sim().Create({{"type", "letters"},
                                       {"description", "search me"},
                                       {"metadata", {{"campaignID", "abc-123"}}}});
  const Json j = Get("/letters?search=%7B%22metadata.campaignID%22%3A%22abc-123%22%7D");
  ASSERT_EQ(j["totalCount"], 1) << j.dump();
  EXPECT_EQ(j["data"][0]["id"], id);
}

// §2 retrieve and 404s
TEST_F(Api, UnknownIdIs404NotFound) {
  ExpectError(sim().Api("GET", "/letters/letter_AAAAAAAAAAA"), 404, "not_found_error");
  ExpectError(sim().Api("GET", "/letters/garbage"), 404, "not_found_error");
}

TEST_F(Api, AnotherTypesIdIs404) {
  const std::string postcard = Get("/postcards?limit=1")["data"][0]["id"];
  ExpectError(sim().Api("GET", "/letters/" + postcard), 404, "not_found_error");
}

TEST_F(Api, EveryFlatTypeListsAndRetrieves) {
  for (const char* type :
       {"letters", "postcards", "cheques", "self_mailers", "boxes", "snap_packs"}) {
    const Json list = Get(std::string("/") + type + "?limit=1");
    ASSERT_EQ(list["data"].size(), 1u) << type;
    const std::string id = list["data"][0]["id"];
    const Json one = Get(std::string("/") + type + "/" + id);
    EXPECT_EQ(one["id"], id);
    EXPECT_EQ(std::string(type).rfind(one["object"].get<std::string>(), 0), 0u) << type;
  }
}

// §3 order fields
TEST_F(Api, RetrieveCarriesTheTrackingFieldsAndExpandedContacts) {
  const std::string id = Get("/letters?limit=1")["data"][0]["id"];
  const Json o = Get("/letters/" + id);
  for (const char* key : {"id", "object", "live", "status", "sendDate", "mailingClass", "createdAt",
                          "updatedAt", "url", "to", "from", "metadata"}) {
    EXPECT_TRUE(o.contains(key)) << key;
  }
  ASSERT_TRUE(o["to"].is_object());
  EXPECT_TRUE(o["to"].contains("provinceOrState"));
  EXPECT_TRUE(o["to"].contains("countryCode"));
  EXPECT_EQ(o["to"]["object"], "contact");
}

TEST_F(Api, ListsCarryContactIdsNotObjects) {
  const Json o = Get("/letters?limit=1")["data"][0];
  EXPECT_TRUE(o["to"].is_string());
  EXPECT_EQ(o["to"].get<std::string>().rfind("contact_", 0), 0u);
}

TEST_F(Api, OrdersCarryFieldsMailtrailDoesNotKnow) {
  const Json o = Get("/letters?limit=1")["data"][0];
  EXPECT_TRUE(o.contains("mergeVariables"));
  EXPECT_TRUE(o.contains("sendDateTimezone"));
}

TEST_F(Api, UrlChangesOnEveryGetAndNothingElseDoes) {
  const std::string id = Get("/postcards?limit=1")["data"][0]["id"];
  Json a = Get("/postcards/" + id);
  Json b = Get("/postcards/" + id);
  EXPECT_NE(a["url"], b["url"]);
  a.erase("url");
  b.erase("url");
  EXPECT_EQ(a, b);
}

TEST_F(Api, TimestampsLookLikeToIsoString) {
  const std::regex iso(R"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z)");
  const Json o = Get("/letters?limit=1")["data"][0];
  for (const char* key : {"createdAt", "updatedAt", "sendDate"}) {
    EXPECT_TRUE(std::regex_match(o[key].get<std::string>(), iso)) << o[key];
  }
}

// §5 progressions
TEST_F(Api, ProgressionsAdvanceOneStageThen422) {
  const std::string id = sim().Create({{"type", "letters"}});
  for (const char* expected : {"printing", "processed_for_delivery", "completed"}) {
    const auto r = sim().Api("POST", "/letters/" + id + "/progressions");
    ASSERT_EQ(r.status, 200) << r.body;
    EXPECT_EQ(InProcessSim::J(r)["status"], expected);
  }
  ExpectError(sim().Api("POST", "/letters/" + id + "/progressions"), 422,
              "invalid_progression_error");
}

TEST_F(Api, ProgressionsWorkForBoxesAndSnapPacks) {
  for (const char* type : {"boxes", "snap_packs", "self_mailers", "postcards", "cheques"}) {
    const std::string id = sim().Create({{"type", type}});
    const auto r = sim().Api("POST", std::string("/") + type + "/" + id + "/progressions");
    EXPECT_EQ(r.status, 200) << type << r.body;
  }
}

TEST_F(Api, ProgressionsRefuseALiveKey) {
  const std::string id = sim().Create({{"type", "letters"}, {"live", true}});
  ExpectError(sim().Api("POST", "/letters/" + id + "/progressions", kLiveKey), 401,
              "permission_missing_error");
}

TEST_F(Api, ProgressionOfACancelledOrderIs422) {
  const std::string id = sim().Create({{"type", "postcards"}});
  ASSERT_EQ(sim().Api("DELETE", "/postcards/" + id).status, 200);
  ExpectError(sim().Api("POST", "/postcards/" + id + "/progressions"), 422,
              "invalid_progression_error");
}

// §2 cancellation
TEST_F(Api, DeleteCancelsAReadyOrder) {
  const std::string id = sim().Create({{"type", "letters"}});
  const auto r = sim().Api("DELETE", "/letters/" + id);
  ASSERT_EQ(r.status, 200) << r.body;
  const Json o = InProcessSim::J(r);
  EXPECT_EQ(o["status"], "cancelled");
  EXPECT_EQ(o["cancellation"]["reason"], "user_initiated");
  EXPECT_EQ(o["cancellation"]["cancelledByUser"], true);
}

TEST_F(Api, CancellationEndpointKeepsTheNote) {
  const std::string id = sim().Create({{"type", "cheques"}});
  const auto r =
      sim().Api("POST", "/cheques/" + id + "/cancellation", kTestKey, R"({"note":"wrong amount"})");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(InProcessSim::J(r)["cancellation"]["note"], "wrong amount");
}

TEST_F(Api, CancelIsRefusedOnceNotReady) {
  const std::string id = sim().Create({{"type", "letters"}});
  ASSERT_EQ(sim().Api("POST", "/letters/" + id + "/progressions").status, 200);
  EXPECT_EQ(sim().Api("DELETE", "/letters/" + id).status, 422);
  EXPECT_EQ(sim().Api("POST", "/letters/" + id + "/cancellation", kTestKey, "{}").status, 422);
}

TEST_F(Api, CancellationEndpointOnlyForLettersPostcardsCheques) {
  const std::string id = sim().Create({{"type", "boxes"}});
  EXPECT_EQ(sim().Api("POST", "/boxes/" + id + "/cancellation", kTestKey, "{}").status, 404);
  EXPECT_EQ(sim().Api("DELETE", "/boxes/" + id).status, 200);
}

// §2 return envelopes
TEST_F(Api, ReturnEnvelopeOrdersLiveUnderTheirEnvelope) {
  const Json envs = Get("/return_envelopes");
  ASSERT_FALSE(envs["data"].empty());
  EXPECT_EQ(envs["data"][0]["object"], "return_envelope");
  const Json created = InProcessSim::J(
      sim().Ctl("POST", "/orders", Json{{"type", "return_envelope_orders"}}.dump()));
  const std::string env = created["returnEnvelope"];
  const std::string id = created["id"];
  const Json list = Get("/return_envelopes/" + env + "/orders");
  EXPECT_EQ(list["object"], "list");
  EXPECT_EQ(list["data"][0]["id"], id);
  const Json o = Get("/return_envelopes/" + env + "/orders/" + id);
  EXPECT_EQ(o["object"], "return_envelope_order");
  EXPECT_EQ(o["status"], "placed");
  EXPECT_EQ(o["returnEnvelope"], env);
  EXPECT_FALSE(o.contains("imbStatus"));
  EXPECT_FALSE(o.contains("carrierTracking"));
}

TEST_F(Api, ReturnEnvelopeOrderFillsThen422) {
  const Json created = InProcessSim::J(
      sim().Ctl("POST", "/orders", Json{{"type", "return_envelope_orders"}}.dump()));
  const std::string base = "/return_envelopes/" + created["returnEnvelope"].get<std::string>() +
                           "/orders/" + created["id"].get<std::string>();
  const auto r = sim().Api("POST", base + "/fills");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(InProcessSim::J(r)["status"], "filled");
  EXPECT_EQ(sim().Api("POST", base + "/fills").status, 422);
  EXPECT_EQ(sim().Api("GET", "/return_envelopes/return_envelope_nope/orders").status, 404);
}

// §7 events feed
TEST_F(Api, EventsFeedListsUpdatesNewestFirstWithTypeFilter) {
  const std::string id = sim().Create({{"type", "letters"}});
  ASSERT_EQ(sim().Api("POST", "/letters/" + id + "/progressions").status, 200);
  const Json j = Get("/events?type=letter.updated&limit=5");
  EXPECT_EQ(j["object"], "list");
  ASSERT_FALSE(j["data"].empty());
  const Json& e = j["data"][0];
  EXPECT_EQ(e["object"], "event");
  EXPECT_EQ(e["type"], "letter.updated");
  EXPECT_EQ(e["data"]["id"], id);
  EXPECT_EQ(e["data"]["status"], "printing");
  EXPECT_EQ(e["updatedFields"]["status"], "printing");
  EXPECT_EQ(e["id"].get<std::string>().rfind("event_", 0), 0u);
  const Json created = Get("/events?type=postcard.created&limit=100");
  ASSERT_FALSE(created["data"].empty());
  for (const auto& other : created["data"]) {
    EXPECT_EQ(other["type"], "postcard.created");
  }
}

TEST_F(Api, EveryChangeBumpsUpdatedAt) {
  const std::string id = sim().Create({{"type", "letters"}});
  std::string last = Get("/letters/" + id)["updatedAt"];
  for (int i = 0; i < 3; ++i) {
    ASSERT_EQ(sim().Api("POST", "/letters/" + id + "/progressions").status, 200);
    const std::string now = Get("/letters/" + id)["updatedAt"];
    EXPECT_GT(now, last);
    last = now;
  }
}

// Lifecycle through the control API: a live certified letter gets a tracking number when
// processed, carrier updates, and completes when the carrier says delivered.
TEST_F(Api, LiveCertifiedLetterProgressesToDelivered) {
  const std::string id =
      sim().Create({{"type", "letters"}, {"live", true}, {"extraService", "certified"}});
  bool saw_number_at_processed = false;
  for (int i = 0; i < 30; ++i) {
    const auto r = sim().Ctl("POST", "/orders/" + id + "/step");
    if (r.status == 422) break;
    ASSERT_EQ(r.status, 200) << r.body;
    const Json o = Get("/letters/" + id, kLiveKey);
    if (o.contains("trackingNumber") && o["status"] == "processed_for_delivery") {
      saw_number_at_processed = true;
    }
  }
  EXPECT_TRUE(saw_number_at_processed);
  const Json o = Get("/letters/" + id, kLiveKey);
  EXPECT_EQ(o["status"], "completed");
  EXPECT_EQ(o["carrierTracking"]["status"], "delivered");
  const Json truth = InProcessSim::J(sim().Ctl("GET", "/orders/" + id + "/truth"));
  EXPECT_EQ(truth["trackingUpdates"].size(), o["carrierTracking"]["trackingUpdates"].size());
}

TEST_F(Api, ClockAdvanceMovesTheSeededWorld) {
  const Json before = InProcessSim::J(sim().Ctl("GET", "/stats"));
  const auto r = sim().Ctl("POST", "/advance", R"({"duration":"2d"})");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_GT(InProcessSim::J(r)["applied"].get<int>(), 0);
  const Json after = InProcessSim::J(sim().Ctl("GET", "/stats"));
  EXPECT_GT(after["world"]["events"].get<int>(), before["world"]["events"].get<int>());
}

TEST_F(Api, StatsCountRequestsPerEndpointAndStatus) {
  ASSERT_EQ(sim().Ctl("DELETE", "/stats").status, 200);
  const std::string id = Get("/letters?limit=1")["data"][0]["id"];
  Get("/letters/" + id);
  Get("/letters/" + id);
  sim().Api("GET", "/letters/letter_AAAAAAAAAAA");
  const Json s = InProcessSim::J(sim().Ctl("GET", "/stats"));
  std::map<std::pair<std::string, int>, int> counts;
  for (const auto& row : s["requests"]) counts[{row["endpoint"], row["status"]}] = row["count"];
  EXPECT_EQ((counts[{"GET /letters/{id}", 200}]), 2);
  EXPECT_EQ((counts[{"GET /letters/{id}", 404}]), 1);
  EXPECT_EQ((counts[{"GET /letters", 200}]), 1);
  EXPECT_EQ(s["total"], 4);
}

TEST_F(Api, ControlOrdersListsCurrentState) {
  const std::string id = sim().Create({{"type", "snap_packs"}});
  const Json j =
      InProcessSim::J(sim().Ctl("GET", "/orders?type=snap_packs&live=false&limit=10000"));
  bool found = false;
  for (const auto& o : j["data"]) {
    if (o["id"] == id) {
      found = true;
      EXPECT_EQ(o["status"], "ready");
    }
  }
  EXPECT_TRUE(found);
}

TEST_F(Api, TruthRecordsEveryChangeWithOldAndNewValues) {
  const std::string id = sim().Create({{"type", "letters"}});
  ASSERT_EQ(sim().Api("POST", "/letters/" + id + "/progressions").status, 200);
  const Json t = InProcessSim::J(sim().Ctl("GET", "/orders/" + id + "/truth"));
  ASSERT_EQ(t["changes"].size(), 2u) << t.dump();
  EXPECT_EQ(
      t["changes"][0],
      (Json{
          {"field", "status"}, {"old", nullptr}, {"new", "ready"}, {"at", t["changes"][0]["at"]}}));
  EXPECT_EQ(t["changes"][1]["old"], "ready");
  EXPECT_EQ(t["changes"][1]["new"], "printing");
  EXPECT_EQ(t["manual"], true);
}

TEST_F(Api, RecentRequestsRecordPathAndKey) {
  sim().Api("GET", "/boxes?limit=3", kLiveKey);
  const Json j = InProcessSim::J(sim().Ctl("GET", "/requests?limit=1"));
  ASSERT_EQ(j["data"].size(), 1u);
  EXPECT_EQ(j["data"][0]["target"], "/print-mail/v1/boxes?limit=3");
  EXPECT_EQ(j["data"][0]["apiKey"], kLiveKey);
  EXPECT_EQ(j["data"][0]["endpoint"], "GET /boxes");
}

TEST_F(Api, PausedClockDoesNotMoveAndResumeReportsRunning) {
  const Json a = InProcessSim::J(sim().Ctl("GET", "/clock"));
  EXPECT_EQ(a["paused"], true);
  const Json b = InProcessSim::J(sim().Ctl("GET", "/clock"));
  EXPECT_EQ(a["nowMs"], b["nowMs"]);
  EXPECT_EQ(InProcessSim::J(sim().Ctl("POST", "/clock/resume"))["paused"], false);
  EXPECT_EQ(InProcessSim::J(sim().Ctl("POST", "/clock/pause"))["paused"], true);
}

TEST_F(Api, StepOnAFinishedPlanIs422) {
  const std::string id = sim().Create({{"type", "postcards"}});
  ASSERT_EQ(sim().Api("DELETE", "/postcards/" + id).status, 200);
  EXPECT_EQ(sim().Ctl("POST", "/orders/" + id + "/step").status, 422);
}

}  // namespace
}  // namespace mailtrail::sim::test
