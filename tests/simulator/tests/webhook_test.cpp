// Webhook deliveries (postgrid-api.md section 7): subscriptions, both formats with their exact
// signing, the retry schedule on simulated time, and the forgery helpers.
#include <gtest/gtest.h>

#include <regex>

#include "in_process.hpp"
#include "signing.hpp"

namespace mailtrail::sim::test {
namespace {

using testing::WebhookReceiver;
constexpr const char* kSecret = "whsec_sim_webhook_secret_0001";
constexpr auto kWait = std::chrono::seconds(10);

std::string Base64UrlDecode(std::string_view in) {
  std::string out;
  uint32_t buffer = 0;
  int bits = 0;
  for (const char c : in) {
    int v = -1;
    if (c >= 'A' && c <= 'Z') v = c - 'A';
    if (c >= 'a' && c <= 'z') v = c - 'a' + 26;
    if (c >= '0' && c <= '9') v = c - '0' + 52;
    if (c == '-') v = 62;
    if (c == '_') v = 63;
    if (v < 0) return out;
    buffer = (buffer << 6) | static_cast<uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<char>((buffer >> bits) & 0xFF));
    }
  }
  return out;
}

std::vector<std::string> SplitJwt(const std::string& token) {
  std::vector<std::string> parts;
  size_t start = 0;
  for (;;) {
    const size_t dot = token.find('.', start);
    parts.push_back(token.substr(start, dot - start));
    if (dot == std::string::npos) break;
    start = dot + 1;
  }
  return parts;
}

Json WebhookStats(const InProcessSim& sim) {
  return InProcessSim::J(sim.Ctl("GET", "/stats"))["webhooks"];
}

/// Waits until the simulator has nothing queued or in flight (deliveries done).
::testing::AssertionResult WaitIdle(const InProcessSim& sim) {
  const auto deadline = std::chrono::steady_clock::now() + kWait;
  while (std::chrono::steady_clock::now() < deadline) {
    const Json w = WebhookStats(sim);
    if (w["queued"] == 0 && w["inFlight"] == 0) return ::testing::AssertionSuccess();
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return ::testing::AssertionFailure() << "webhook queue did not drain in time";
}

Json CreateApiWebhook(const InProcessSim& sim, const std::string& url, const std::string& format,
                      const Json& events, const std::string& key = kTestKey) {
  const auto r = sim.Api(
      "POST", "/webhooks", key,
      Json{{"url", url}, {"secret", kSecret}, {"payloadFormat", format}, {"enabledEvents", events}}
          .dump());
  EXPECT_EQ(r.status, 201) << r.body;
  return InProcessSim::J(r);
}

TEST(Webhooks, CreateValidatesTheSecretLength) {
  InProcessSim sim(0);
  const auto r = sim.Api("POST", "/webhooks", kTestKey,
                         R"({"url":"http://127.0.0.1:1/x","secret":"short","enabledEvents":[]})");
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(InProcessSim::J(r)["error"]["type"], "validation_error");
}

TEST(Webhooks, CreateListAndFields) {
  InProcessSim sim(0);
  const Json w = CreateApiWebhook(sim, "http://127.0.0.1:9/x", "json", {"letter.updated"});
  EXPECT_EQ(w["object"], "webhook");
  EXPECT_EQ(w["payloadFormat"], "json");
  EXPECT_EQ(w["enabled"], true);
  EXPECT_EQ(w["enabledEvents"], Json::array({"letter.updated"}));
  const Json list = InProcessSim::J(sim.Api("GET", "/webhooks"));
  ASSERT_EQ(list["totalCount"], 1);
  EXPECT_EQ(list["data"][0]["id"], w["id"]);
  EXPECT_EQ(InProcessSim::J(sim.Api("GET", "/webhooks", kLiveKey))["totalCount"], 0)
      << "webhooks belong to the key's mode";
}

TEST(Webhooks, JwtDeliveryIsHs256SignedWithTypeDataIat) {
  InProcessSim sim(0);
  WebhookReceiver receiver;
  CreateApiWebhook(sim, receiver.url(), "jwt", {"letter.created", "letter.updated"});
  const std::string id = sim.Create({{"type", "letters"}});
  ASSERT_TRUE(receiver.WaitForCount(1, kWait));
  const auto req = receiver.requests()[0];
  EXPECT_EQ(req.method, "POST");
  EXPECT_EQ(req.target, "/hook");
  const auto parts = SplitJwt(req.body);
  ASSERT_EQ(parts.size(), 3u) << req.body;
  EXPECT_EQ(Json::parse(Base64UrlDecode(parts[0])), Json::parse(R"({"alg":"HS256","typ":"JWT"})"));
  const Json claims = Json::parse(Base64UrlDecode(parts[1]));
  EXPECT_EQ(claims["type"], "letter.created");
  EXPECT_EQ(claims["data"]["id"], id);
  EXPECT_TRUE(claims["iat"].is_number_integer());
  EXPECT_EQ(parts[2], Base64UrlEncode(HmacSha256(kSecret, parts[0] + "." + parts[1])));
}

TEST(Webhooks, JsonDeliveryCarriesPostGridSignatureInMilliseconds) {
  InProcessSim sim(0);
  WebhookReceiver receiver;
  CreateApiWebhook(sim, receiver.url(), "json", {"postcard.created"});
  const std::string id = sim.Create({{"type", "postcards"}});
  ASSERT_TRUE(receiver.WaitForCount(1, kWait));
  const auto req = receiver.requests()[0];
  const std::string header = req.headers.at("postgrid-signature");
  std::smatch m;
  ASSERT_TRUE(std::regex_match(header, m, std::regex(R"(t=(\d{13}),v1=([0-9a-f]{64}))"))) << header;
  EXPECT_EQ(m[2].str(), HexLower(HmacSha256(kSecret, m[1].str() + "." + req.body)));
  const Json body = Json::parse(req.body);
  EXPECT_EQ(body["object"], "event");
  EXPECT_EQ(body["type"], "postcard.created");
  EXPECT_EQ(body["live"], false);
  EXPECT_EQ(body["data"]["id"], id);
  EXPECT_TRUE(body.contains("updatedFields"));
  EXPECT_EQ(body["id"].get<std::string>().rfind("event_", 0), 0u);
}

TEST(Webhooks, SecondsTimestampWhenConfigured) {
  InProcessSim sim(0);
  WebhookReceiver receiver;
  const auto r = sim.Ctl(
      "POST", "/webhook-targets",
      Json{{"url", receiver.url()}, {"secret", kSecret}, {"format", "json"}, {"timestampUnit", "s"}}
          .dump());
  ASSERT_EQ(r.status, 201) << r.body;
  sim.Create({{"type", "letters"}});
  ASSERT_TRUE(receiver.WaitForCount(1, kWait));
  EXPECT_TRUE(std::regex_match(receiver.requests()[0].headers.at("postgrid-signature"),
                               std::regex(R"(t=\d{10},v1=[0-9a-f]{64})")));
}

TEST(Webhooks, OnlySubscribedEventsOfTheKeysModeAreDelivered) {
  InProcessSim sim(0);
  WebhookReceiver receiver;
  CreateApiWebhook(sim, receiver.url(), "json", {"cheque.updated"});
  sim.Create({{"type", "cheques"}});  // created: not subscribed
  const std::string live = sim.Create({{"type", "cheques"}, {"live", true}});
  ASSERT_EQ(sim.Ctl("POST", "/orders/" + live + "/step").status, 200);  // live: other mode
  const std::string test = sim.Create({{"type", "cheques"}});
  ASSERT_EQ(sim.Api("POST", "/cheques/" + test + "/progressions").status, 200);
  ASSERT_TRUE(receiver.WaitForCount(1, kWait));
  ASSERT_TRUE(WaitIdle(sim));
  ASSERT_EQ(receiver.count(), 1u);
  const Json body = Json::parse(receiver.requests()[0].body);
  EXPECT_EQ(body["type"], "cheque.updated");
  EXPECT_EQ(body["data"]["id"], test);
  EXPECT_EQ(body["updatedFields"]["status"], "printing");
}

// Non-200 -> retried after 1 h, 2 h, 4 h of simulated time, then given up.
TEST(Webhooks, RetriesAfterOneTwoFourHoursOfSimulatedTime) {
  InProcessSim sim(0);
  WebhookReceiver receiver;
  receiver.SetDefaultStatus(500);
  const Json hook = CreateApiWebhook(sim, receiver.url(), "jwt", {"letter.created"});
  sim.Create({{"type", "letters"}, {"sendDelay", "30d"}});
  ASSERT_TRUE(receiver.WaitForCount(1, kWait));
  ASSERT_TRUE(WaitIdle(sim));
  const auto advance = [&](const char* d) {
    ASSERT_EQ(sim.Ctl("POST", "/advance", Json{{"duration", d}}.dump()).status, 200);
    ASSERT_TRUE(WaitIdle(sim));
  };
  advance("59m");
  EXPECT_EQ(receiver.count(), 1u) << "no retry before 1 h";
  advance("1m");
  ASSERT_TRUE(receiver.WaitForCount(2, kWait));
  advance("119m");
  EXPECT_EQ(receiver.count(), 2u) << "no retry before 2 h more";
  advance("1m");
  ASSERT_TRUE(receiver.WaitForCount(3, kWait));
  advance("239m");
  EXPECT_EQ(receiver.count(), 3u);
  advance("1m");
  ASSERT_TRUE(receiver.WaitForCount(4, kWait));
  advance("30d");
  EXPECT_EQ(receiver.count(), 4u) << "three retries, then PostGrid gives up";
  EXPECT_EQ(WebhookStats(sim)["retriesScheduled"], 0);
  const Json inv = InProcessSim::J(
      sim.Api("GET", "/webhooks/" + hook["id"].get<std::string>() + "/invocations"));
  ASSERT_EQ(inv["totalCount"], 4);
  for (const auto& i : inv["data"]) EXPECT_EQ(i["statusCode"], 500);
  EXPECT_EQ(inv["data"][0]["attempt"], 3);  // newest first
}

TEST(Webhooks, A200StopsRetries) {
  InProcessSim sim(0);
  WebhookReceiver receiver;
  receiver.QueueStatuses({503});
  CreateApiWebhook(sim, receiver.url(), "jwt", {"letter.created"});
  sim.Create({{"type", "letters"}, {"sendDelay", "30d"}});
  ASSERT_TRUE(receiver.WaitForCount(1, kWait));
  ASSERT_TRUE(WaitIdle(sim));
  ASSERT_EQ(sim.Ctl("POST", "/advance", R"({"duration":"1h"})").status, 200);
  ASSERT_TRUE(receiver.WaitForCount(2, kWait));
  ASSERT_TRUE(WaitIdle(sim));
  ASSERT_EQ(sim.Ctl("POST", "/advance", R"({"duration":"10d"})").status, 200);
  ASSERT_TRUE(WaitIdle(sim));
  EXPECT_EQ(receiver.count(), 2u);
}

// --- forgeries ----------------------------------------------------------------------------------

class Forge : public ::testing::Test {
 protected:
  Forge() : sim_(0) { sim_.Create({{"type", "letters"}}); }
  WebhookReceiver::Received Send(const std::string& kind, Json extra = Json::object()) {
    Json body = {{"url", receiver_.url()}, {"secret", kSecret}, {"kind", kind}};
    body.update(extra);
    const size_t before = receiver_.count();
    const auto r = sim_.Ctl("POST", "/webhooks/forge", body.dump());
    EXPECT_EQ(r.status, 200) << r.body;
    EXPECT_EQ(InProcessSim::J(r)["statusCode"], 200) << r.body;
    EXPECT_TRUE(receiver_.WaitForCount(before + 1, kWait));
    return receiver_.requests().back();
  }
  InProcessSim sim_;
  WebhookReceiver receiver_;
};

TEST_F(Forge, ValidJwtVerifies) {
  const auto parts = SplitJwt(Send("valid").body);
  ASSERT_EQ(parts.size(), 3u);
  EXPECT_EQ(parts[2], Base64UrlEncode(HmacSha256(kSecret, parts[0] + "." + parts[1])));
}

TEST_F(Forge, WrongSecretDoesNotVerify) {
  const auto parts = SplitJwt(Send("wrong_secret").body);
  ASSERT_EQ(parts.size(), 3u);
  EXPECT_NE(parts[2], Base64UrlEncode(HmacSha256(kSecret, parts[0] + "." + parts[1])));
}

TEST_F(Forge, AlgNoneHasNoSignature) {
  const auto parts = SplitJwt(Send("alg_none").body);
  ASSERT_EQ(parts.size(), 3u);
  EXPECT_EQ(Json::parse(Base64UrlDecode(parts[0]))["alg"], "none");
  EXPECT_TRUE(parts[2].empty());
}

TEST_F(Forge, OtherAlgorithmsInTheHeader) {
  EXPECT_EQ(Json::parse(Base64UrlDecode(SplitJwt(Send("alg_rs256").body)[0]))["alg"], "RS256");
  EXPECT_EQ(Json::parse(Base64UrlDecode(SplitJwt(Send("alg_hs512").body)[0]))["alg"], "HS512");
}

TEST_F(Forge, ExpiredAndFutureTimestamps) {
  const int64_t now_s = WallNowMs() / 1000;
  const Json old_claims =
      Json::parse(Base64UrlDecode(SplitJwt(Send("expired", {{"age", "2h"}}).body)[1]));
  EXPECT_LE(old_claims["iat"].get<int64_t>(), now_s - 7000);
  const Json future =
      Json::parse(Base64UrlDecode(SplitJwt(Send("future", {{"age", "2h"}}).body)[1]));
  EXPECT_GE(future["iat"].get<int64_t>(), now_s + 7000);
  const auto json_old = Send("expired", {{"format", "json"}, {"age", "1h"}});
  const std::string header = json_old.headers.at("postgrid-signature");
  const int64_t t = std::stoll(header.substr(2, header.find(',') - 2));
  EXPECT_LE(t, WallNowMs() - 3500000);
}

TEST_F(Forge, ModifiedBodyBreaksTheSignature) {
  const auto parts = SplitJwt(Send("modified_body").body);
  EXPECT_NE(parts[2], Base64UrlEncode(HmacSha256(kSecret, parts[0] + "." + parts[1])));
  const auto json = Send("modified_body", {{"format", "json"}});
  const std::string header = json.headers.at("postgrid-signature");
  const std::string t = header.substr(2, header.find(',') - 2);
  EXPECT_NE(header.substr(header.find("v1=") + 3),
            HexLower(HmacSha256(kSecret, t + "." + json.body)));
}

TEST_F(Forge, TruncatedToken) {
  const auto body = Send("truncated_token").body;
  const auto parts = SplitJwt(body);
  ASSERT_EQ(parts.size(), 3u);
  EXPECT_NE(parts[2], Base64UrlEncode(HmacSha256(kSecret, parts[0] + "." + parts[1])));
}

TEST_F(Forge, MissingAndMalformedHeaders) {
  EXPECT_EQ(Send("missing_header").headers.count("postgrid-signature"), 0u);
  const auto malformed = Send("malformed_header").headers.at("postgrid-signature");
  EXPECT_EQ(malformed.find("t="), std::string::npos) << malformed;
}

TEST_F(Forge, OversizeBody) {
  EXPECT_GE(Send("oversize", {{"size", 3 << 20}}).body.size(), size_t{3 << 20});
}

TEST_F(Forge, UnknownKindIs400) {
  const auto r =
      sim_.Ctl("POST", "/webhooks/forge",
               Json{{"url", receiver_.url()}, {"secret", kSecret}, {"kind", "bogus"}}.dump());
  EXPECT_EQ(r.status, 400);
}

}  // namespace
}  // namespace mailtrail::sim::test
