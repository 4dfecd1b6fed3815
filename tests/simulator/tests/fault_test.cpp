// Fault injection through the control API (and flags, parsed in util_test.cpp).
#include <gtest/gtest.h>

#include "in_process.hpp"

namespace mailtrail::sim::test {
namespace {

class Faults : public ::testing::Test {
 protected:
  Faults() : sim_(50) {}
  ~Faults() override { sim_.Ctl("DELETE", "/faults"); }
  void Add(const Json& fault) {
    const auto r = sim_.Ctl("POST", "/faults", fault.dump());
    ASSERT_EQ(r.status, 201) << r.body;
  }
  InProcessSim sim_;
};

TEST_F(Faults, RateLimitWithRetryAfterSeconds) {
  Add({{"kind", "429"}, {"retry_after", 2}, {"count", 1}});
  const auto r = sim_.Api("GET", "/letters");
  EXPECT_EQ(r.status, 429);
  EXPECT_EQ(r.headers.at("retry-after"), "2");
  EXPECT_EQ(InProcessSim::J(r)["error"]["type"], "rate_limit_exceeded_error");
  EXPECT_EQ(sim_.Api("GET", "/letters").status, 200) << "count=1 fires once";
}

TEST_F(Faults, RateLimitWithRetryAfterMs) {
  Add({{"kind", "429"}, {"retry_after_ms", 1500}, {"count", 1}});
  const auto r = sim_.Api("GET", "/letters");
  EXPECT_EQ(r.status, 429);
  EXPECT_EQ(r.headers.at("retry-after-ms"), "1500");
  EXPECT_EQ(r.headers.count("retry-after"), 0u);
}

TEST_F(Faults, ServerErrors) {
  for (int status : {500, 502, 503}) {
    Add({{"kind", std::to_string(status)}, {"count", 1}});
    const auto r = sim_.Api("GET", "/letters");
    EXPECT_EQ(r.status, status);
  }
  Add({{"kind", "503"}, {"count", 1}});
  EXPECT_EQ(InProcessSim::J(sim_.Api("GET", "/letters"))["error"]["type"],
            "service_unavailable_error");
}

TEST_F(Faults, EndpointFilter) {
  Add({{"kind", "500"}, {"endpoint", "/postcards"}});
  EXPECT_EQ(sim_.Api("GET", "/letters").status, 200);
  EXPECT_EQ(sim_.Api("GET", "/postcards").status, 500);
}

TEST_F(Faults, FaultedRequestsHaveNoSideEffects) {
  const std::string id = sim_.Create({{"type", "letters"}});
  Add({{"kind", "503"}, {"count", 1}});
  EXPECT_EQ(sim_.Api("POST", "/letters/" + id + "/progressions").status, 503);
  EXPECT_EQ(InProcessSim::J(sim_.Api("GET", "/letters/" + id))["status"], "ready");
}

TEST_F(Faults, TruncatedJsonBody) {
  Add({{"kind", "truncate"}, {"count", 1}});
  const auto r = sim_.Api("GET", "/letters");
  EXPECT_EQ(r.status, 200);
  EXPECT_FALSE(r.body.empty());
  EXPECT_TRUE(Json::parse(r.body, nullptr, false).is_discarded()) << "body must be cut";
}

TEST_F(Faults, ConnectionResetMidResponse) {
  Add({{"kind", "reset"}, {"count", 1}});
  const auto r = sim_.Api("GET", "/letters");
  EXPECT_EQ(r.status, 0) << "the client must see a failed read, got " << r.body.size() << " bytes";
  EXPECT_FALSE(r.error.empty());
  EXPECT_EQ(sim_.Api("GET", "/letters").status, 200);
}

TEST_F(Faults, OutageDropsEveryApiRequestButNotTheControlApi) {
  Add({{"kind", "outage"}, {"seconds", 600}});
  for (int i = 0; i < 3; ++i) EXPECT_EQ(sim_.Api("GET", "/letters").status, 0);
  EXPECT_EQ(sim_.Ctl("GET", "/health").status, 200);
  ASSERT_EQ(sim_.Ctl("DELETE", "/faults").status, 200);
  EXPECT_EQ(sim_.Api("GET", "/letters").status, 200);
}

TEST_F(Faults, LatencyIsCountedAsFired) {
  Add({{"kind", "latency"}, {"ms", 20}, {"count", 1}});
  EXPECT_EQ(sim_.Api("GET", "/letters").status, 200);
  const Json list = InProcessSim::J(sim_.Ctl("GET", "/faults"));
  ASSERT_EQ(list["data"].size(), 1u);
  EXPECT_EQ(list["data"][0]["fired"], 1);
}

TEST_F(Faults, RateZeroNeverFires) {
  Add({{"kind", "500"}, {"rate", 0}});
  for (int i = 0; i < 50; ++i) ASSERT_EQ(sim_.Api("GET", "/letters").status, 200);
}

TEST_F(Faults, BadFaultSpecIs400) {
  EXPECT_EQ(sim_.Ctl("POST", "/faults", R"({"kind":"teapot"})").status, 400);
  EXPECT_EQ(sim_.Ctl("POST", "/faults", R"({"kind":"429","rate":7})").status, 400);
}

}  // namespace
}  // namespace mailtrail::sim::test
