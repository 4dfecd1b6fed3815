#include "webhook/verify.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <string>
#include <vector>

namespace mailtrail::webhook {
namespace {

// Every signature and token below was computed outside the code under test, by
// tests/unit/webhook/make_vectors.py (python3 hmac + hashlib + base64). One cross-check with
// OpenSSL's CLI:
//   printf '%s' "1700000000.$BODY" | openssl dgst -sha256 -hmac whsec_test_secret_0123456789
// prints kSigSeconds.

constexpr std::string_view kSecret = "whsec_test_secret_0123456789";
constexpr std::string_view kOldSecret = "whsec_old_secret_abcdefghij";

// "now" for every row: 2023-11-14T22:13:20Z; max_age 10 minutes.
const domain::Timestamp kNow{std::chrono::seconds(1700000000)};
constexpr std::chrono::milliseconds kMaxAge = std::chrono::minutes(10);

constexpr std::string_view kBody =
    R"({"id":"event_123","object":"event","type":"letter.updated","live":false,"createdAt":"2023-11-14T22:13:00.000Z","data":{"id":"letter_abc","object":"letter","status":"ready"},"updatedFields":{"status":"ready"}})";
constexpr std::string_view kBodySha256 =
    "bc28bab288e8614d4c382481bf17b3d5d64cb551779b336f7100291121d97b73";

// HMAC-SHA256 hex over t + "." + kBody.
constexpr std::string_view kSigSeconds =
    "5eb5e680baa0ec7832948b0948c1c8c3edcc7a5cee2658ef1443ef4b1906bd7a";  // t=1700000000
constexpr std::string_view kSigMillis =
    "26d17d6930438d80430be6bf77e54f873a65a568d59928397aa273e6fa1a778b";  // t=1700000000123
constexpr std::string_view kSigWrongSecret =
    "14c83bb16fdb5207188a646fedda414ccd2dc2e82f5d1c636b6c27e0f1258ef"
    "9";  // whsec_wrong_secret_zzzzzzzzz
constexpr std::string_view kSigOldSecret =
    "ac9f5a30ac5a259727d6cfe4c10febca2a72ccdaa263dd32b4aaa7d6bf53b8f2";  // kOldSecret, t=1700000000
constexpr std::string_view kSigStale =
    "75016bd8bff0f4b05d5d2f9c019278ae4f27737e38a748d3799b891b4c312bee";  // t=1699999399 (now - 601
                                                                         // s)
constexpr std::string_view kSigFuture =
    "bda1e13b57ddde276e0d0ff26131562254d169cb9a863bdab8ad4f0da40678ab";  // t=1700000601 (now + 601
                                                                         // s)
constexpr std::string_view kSigEdge =
    "1f53ee2857173a90630123b2405ac3355572134d87e1e8a98d662e23945559c9";  // t=1699999400 (now - 600
                                                                         // s)
// HMAC over "1700000000.hello world".
constexpr std::string_view kSigNotJson =
    "7c9ca961704665cae9b013bebb60dac923ba3de2dafcce8027d6f1dca0f2db23";

// Compact JWS tokens. Header {"alg":"HS256","typ":"JWT"} unless named; claims
// {"type":"postcard.updated","data":{"id":"postcard_xyz","status":"processed_for_delivery"},
//  "iat":1699999990} unless named.
constexpr std::string_view kJwtOk =
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9."
    "eyJ0eXBlIjoicG9zdGNhcmQudXBkYXRlZCIsImRhdGEiOnsiaWQiOiJwb3N0Y2FyZF94eXoiLCJzdGF0dXMiOiJwcm9jZX"
    "NzZWRfZm9yX2RlbGl2ZXJ5In0sImlhdCI6MTY5OTk5OTk5MH0.c0QHunjSfTnHj9AcO3o5h84E0iwgdPJXdko7zPh592k";
constexpr std::string_view kJwtWrongSecret =
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9."
    "eyJ0eXBlIjoicG9zdGNhcmQudXBkYXRlZCIsImRhdGEiOnsiaWQiOiJwb3N0Y2FyZF94eXoiLCJzdGF0dXMiOiJwcm9jZX"
    "NzZWRfZm9yX2RlbGl2ZXJ5In0sImlhdCI6MTY5OTk5OTk5MH0.K4JyC-Mb9RxzO_jmt2SQ7aCeumvA5bWPbVkkKtS4z8s";
constexpr std::string_view kJwtOldSecret =
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9."
    "eyJ0eXBlIjoicG9zdGNhcmQudXBkYXRlZCIsImRhdGEiOnsiaWQiOiJwb3N0Y2FyZF94eXoiLCJzdGF0dXMiOiJwcm9jZX"
    "NzZWRfZm9yX2RlbGl2ZXJ5In0sImlhdCI6MTY5OTk5OTk5MH0.0Rg4LPHBTVn1MFk3npVKmBn9WxJo1MMsjrlpZmSjrmc";
constexpr std::string_view kJwtAlgNone =
    "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0."
    "eyJ0eXBlIjoicG9zdGNhcmQudXBkYXRlZCIsImRhdGEiOnsiaWQiOiJwb3N0Y2FyZF94eXoiLCJzdGF0dXMiOiJwcm9jZX"
    "NzZWRfZm9yX2RlbGl2ZXJ5In0sImlhdCI6MTY5OTk5OTk5MH0.";
// Header alg RS256, signature = bytes 0..255 (not a real RSA signature: it must not matter).
constexpr std::string_view kJwtRs256 =
    "eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCJ9."
    "eyJ0eXBlIjoicG9zdGNhcmQudXBkYXRlZCIsImRhdGEiOnsiaWQiOiJwb3N0Y2FyZF94eXoiLCJzdGF0dXMiOiJwcm9jZX"
    "NzZWRfZm9yX2RlbGl2ZXJ5In0sImlhdCI6MTY5OTk5OTk5MH0."
    "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8gISIjJCUmJygpKissLS4vMDEyMzQ1Njc4OTo7PD0-"
    "P0BBQkNERUZHSElKS0xNTk9QUVJTVFVWV1hZWltcXV5fYGFiY2RlZmdoaWprbG1ub3BxcnN0dXZ3eHl6e3x9fn-"
    "AgYKDhIWGh4iJiouMjY6PkJGSk5SVlpeYmZqbnJ2en6ChoqOkpaanqKmqq6ytrq-wsbKztLW2t7i5uru8vb6_"
    "wMHCw8TFxsfIycrLzM3Oz9DR0tPU1dbX2Nna29zd3t_g4eLj5OXm5-jp6uvs7e7v8PHy8_T19vf4-fr7_P3-_w";
// Header alg HS512, signed HMAC-SHA512 with kSecret.
constexpr std::string_view kJwtHs512 =
    "eyJhbGciOiJIUzUxMiIsInR5cCI6IkpXVCJ9."
    "eyJ0eXBlIjoicG9zdGNhcmQudXBkYXRlZCIsImRhdGEiOnsiaWQiOiJwb3N0Y2FyZF94eXoiLCJzdGF0dXMiOiJwcm9jZX"
    "NzZWRfZm9yX2RlbGl2ZXJ5In0sImlhdCI6MTY5OTk5OTk5MH0.-1wpDHkFVN_qa0sZnxQqtA_lD_SetAbxl_0ldsIgXA_"
    "ky7Wwp_0GOUa-2S8BM9u5d-_rj1jc1IkeHI5sfNvX_Q";
// Header alg HS512 but signed HMAC-SHA256 with kSecret: the header still decides refusal.
constexpr std::string_view kJwtHs512SignedAs256 =
    "eyJhbGciOiJIUzUxMiIsInR5cCI6IkpXVCJ9."
    "eyJ0eXBlIjoicG9zdGNhcmQudXBkYXRlZCIsImRhdGEiOnsiaWQiOiJwb3N0Y2FyZF94eXoiLCJzdGF0dXMiOiJwcm9jZX"
    "NzZWRfZm9yX2RlbGl2ZXJ5In0sImlhdCI6MTY5OTk5OTk5MH0.cnhmDs83i9rKgQrzWdxdHvhlyg1HQF_d5zt_Ejdxo_Y";
// Claims {"type":"letter.updated","data":{"id":"letter_abc"},"iat":1699999399} (now - 601 s).
constexpr std::string_view kJwtStaleIat =
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9."
    "eyJ0eXBlIjoibGV0dGVyLnVwZGF0ZWQiLCJkYXRhIjp7ImlkIjoibGV0dGVyX2FiYyJ9LCJpYXQiOjE2OTk5OTkzOTl9."
    "s63FT7pXerHtz_MmRvQZ9Y_b0k_GHLmzBYaN7IsRCD8";
// Same with iat 1700000601 (now + 601 s).
constexpr std::string_view kJwtFutureIat =
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9."
    "eyJ0eXBlIjoibGV0dGVyLnVwZGF0ZWQiLCJkYXRhIjp7ImlkIjoibGV0dGVyX2FiYyJ9LCJpYXQiOjE3MDAwMDA2MDF9."
    "M58da3DAZTsXAp0dt0zuI3h-bxu8twaawPVZFDOgWuk";
// Claims {"type":"tracker.visited","data":{"id":"tracker_1"}} (no iat).
constexpr std::string_view kJwtNoIat =
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9."
    "eyJ0eXBlIjoidHJhY2tlci52aXNpdGVkIiwiZGF0YSI6eyJpZCI6InRyYWNrZXJfMSJ9fQ.F0-"
    "xEKz1cbtEGjvkpU9d4MURNuR5HNHMyNVHuFF_V0w";
// Claims are the bytes "hello world".
constexpr std::string_view kJwtClaimsNotJson =
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.aGVsbG8gd29ybGQ.dZK99EptFxl8HrMh0W-CzzUINcKi9s_"
    "9WVipiBYFSCI";
// iat given as a string "1700000000".
constexpr std::string_view kJwtIatString =
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9."
    "eyJ0eXBlIjoibGV0dGVyLnVwZGF0ZWQiLCJkYXRhIjp7ImlkIjoibGV0dGVyX2FiYyJ9LCJpYXQiOiIxNzAwMDAwMDAwIn"
    "0.ubMQMOar5Nt5V_drbRoAY7nhx1wXGpZuY6lBQELIxMY";
// kJwtOk's header and signature around claims whose status was changed to "cancelled".
constexpr std::string_view kJwtModified =
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9."
    "eyJ0eXBlIjoicG9zdGNhcmQudXBkYXRlZCIsImRhdGEiOnsiaWQiOiJwb3N0Y2FyZF94eXoiLCJzdGF0dXMiOiJjYW5jZW"
    "xsZWQifSwiaWF0IjoxNjk5OTk5OTkwfQ.c0QHunjSfTnHj9AcO3o5h84E0iwgdPJXdko7zPh592k";

Headers Sig(std::string_view value) { return {Header{"PostGrid-Signature", std::string(value)}}; }
std::string JsonSig(std::string_view t, std::string_view v1) {
  return "t=" + std::string(t) + ",v1=" + std::string(v1);
}

struct Row {
  std::string name;
  Headers headers;
  std::string body;
  std::vector<std::string> secrets;
  int status;
  std::string reason;  // empty when accepted
  std::optional<PayloadFormat> format;
};

std::vector<std::string> Secrets() { return {std::string(kSecret)}; }

std::vector<Row> Rows() {
  const std::string body(kBody);
  const std::string ok_header = JsonSig("1700000000", kSigSeconds);
  const auto json = std::optional(PayloadFormat::kJson);
  const auto jwt = std::optional(PayloadFormat::kJwt);
  std::string truncated_signature(kJwtOk);
  truncated_signature.resize(truncated_signature.size() - 5);
  std::string two_parts(kJwtOk.substr(0, kJwtOk.rfind('.')));
  std::string modified_body = body;
  modified_body.replace(modified_body.find("\"ready\"}"), 7, "\"cancelled\"}");

  return {
      // Genuine deliveries.
      {"json_seconds", Sig(ok_header), body, Secrets(), 200, "", json},
      {"json_milliseconds", Sig(JsonSig("1700000000123", kSigMillis)), body, Secrets(), 200, "",
       json},
      {"json_header_name_any_case",
       {Header{"postgrid-signature", ok_header}},
       body,
       Secrets(),
       200,
       "",
       json},
      {"json_spaces_and_unknown_scheme",
       Sig("t=1700000000, v0=abc, v1=" + std::string(kSigSeconds)), body, Secrets(), 200, "", json},
      {"json_second_v1_matches",
       Sig("t=1700000000,v1=" + std::string(kSigWrongSecret) + ",v1=" + std::string(kSigSeconds)),
       body, Secrets(), 200, "", json},
      {"json_max_age_edge_accepted", Sig(JsonSig("1699999400", kSigEdge)), body, Secrets(), 200, "",
       json},
      {"json_rotation_new_secret",
       Sig(ok_header),
       body,
       {std::string(kOldSecret), std::string(kSecret)},
       200,
       "",
       json},
      {"json_rotation_old_secret",
       Sig(JsonSig("1700000000", kSigOldSecret)),
       body,
       {std::string(kSecret), std::string(kOldSecret)},
       200,
       "",
       json},
      {"jwt_ok", {}, std::string(kJwtOk), Secrets(), 200, "", jwt},
      {"jwt_trailing_newline", {}, std::string(kJwtOk) + "\n", Secrets(), 200, "", jwt},
      {"jwt_without_iat", {}, std::string(kJwtNoIat), Secrets(), 200, "", jwt},
      {"jwt_rotation_old_secret",
       {},
       std::string(kJwtOldSecret),
       {std::string(kSecret), std::string(kOldSecret)},
       200,
       "",
       jwt},

      // Forgeries and stale or garbled deliveries.
      {"json_wrong_secret", Sig(JsonSig("1700000000", kSigWrongSecret)), body, Secrets(), 401,
       "bad_signature", json},
      {"json_modified_body", Sig(ok_header), modified_body, Secrets(), 401, "bad_signature", json},
      {"json_t_changed", Sig(JsonSig("1700000001", kSigSeconds)), body, Secrets(), 401,
       "bad_signature", json},
      {"json_seconds_signature_sent_as_ms", Sig(JsonSig("1700000000000", kSigSeconds)), body,
       Secrets(), 401, "bad_signature", json},
      {"json_old_secret_after_rotation", Sig(JsonSig("1700000000", kSigOldSecret)), body, Secrets(),
       401, "bad_signature", json},
      {"json_no_secret_configured", Sig(ok_header), body, {}, 401, "bad_signature", json},
      {"json_expired_t", Sig(JsonSig("1699999399", kSigStale)), body, Secrets(), 401,
       "stale_timestamp", json},
      {"json_future_t", Sig(JsonSig("1700000601", kSigFuture)), body, Secrets(), 401,
       "future_timestamp", json},
      {"json_missing_header", {}, body, Secrets(), 400, "missing_signature", std::nullopt},
      {"json_malformed_header_garbage", Sig("garbage"), body, Secrets(), 400, "malformed_header",
       json},
      {"json_malformed_header_no_t", Sig("v1=" + std::string(kSigSeconds)), body, Secrets(), 400,
       "malformed_header", json},
      {"json_malformed_header_no_v1", Sig("t=1700000000"), body, Secrets(), 400, "malformed_header",
       json},
      {"json_malformed_header_t_not_digits", Sig(JsonSig("17000000x0", kSigSeconds)), body,
       Secrets(), 400, "malformed_header", json},
      {"json_malformed_header_t_too_long", Sig(JsonSig("17000000000000", kSigSeconds)), body,
       Secrets(), 400, "malformed_header", json},
      {"json_malformed_header_short_v1", Sig(JsonSig("1700000000", kSigSeconds.substr(0, 63))),
       body, Secrets(), 400, "malformed_header", json},
      {"json_malformed_header_two_t",
       Sig("t=1700000000,t=1700000000,v1=" + std::string(kSigSeconds)), body, Secrets(), 400,
       "malformed_header", json},
      {"json_duplicated_header",
       {Header{"PostGrid-Signature", ok_header}, Header{"postgrid-signature", ok_header}},
       body,
       Secrets(),
       400,
       "duplicate_header",
       json},
      {"json_signed_non_json_body", Sig(JsonSig("1700000000", kSigNotJson)), "hello world",
       Secrets(), 400, "not_json", json},
      {"empty_body", {}, "", Secrets(), 400, "empty_body", std::nullopt},
      {"empty_body_with_header", Sig(ok_header), "", Secrets(), 400, "empty_body", json},
      {"non_json_body_without_header",
       {},
       "hello world",
       Secrets(),
       400,
       "missing_signature",
       std::nullopt},
      {"jwt_wrong_secret", {}, std::string(kJwtWrongSecret), Secrets(), 401, "bad_signature", jwt},
      {"jwt_alg_none", {}, std::string(kJwtAlgNone), Secrets(), 401, "alg_not_allowed", jwt},
      {"jwt_rs256", {}, std::string(kJwtRs256), Secrets(), 401, "alg_not_allowed", jwt},
      {"jwt_hs512", {}, std::string(kJwtHs512), Secrets(), 401, "alg_not_allowed", jwt},
      {"jwt_hs512_header_hs256_mac",
       {},
       std::string(kJwtHs512SignedAs256),
       Secrets(),
       401,
       "alg_not_allowed",
       jwt},
      {"jwt_modified_claims", {}, std::string(kJwtModified), Secrets(), 401, "bad_signature", jwt},
      {"jwt_truncated_signature", {}, truncated_signature, Secrets(), 401, "bad_signature", jwt},
      {"jwt_truncated_to_two_parts", {}, two_parts, Secrets(), 400, "malformed_token", jwt},
      {"jwt_header_not_base64",
       {},
       "a.eyJ0eXBlIjoieCJ9.c0QHunjSfTnHj9AcO3o5h84E0iwgdPJXdko7zPh592k",
       Secrets(),
       400,
       "malformed_token",
       jwt},
      {"jwt_header_without_alg",
       {},
       "e30.e30.c0QHunjSfTnHj9AcO3o5h84E0iwgdPJXdko7zPh592k",
       Secrets(),
       400,
       "malformed_token",
       jwt},
      {"jwt_four_parts", {}, std::string(kJwtOk) + ".e30", Secrets(), 400, "malformed_token", jwt},
      {"jwt_expired_iat", {}, std::string(kJwtStaleIat), Secrets(), 401, "stale_timestamp", jwt},
      {"jwt_future_iat", {}, std::string(kJwtFutureIat), Secrets(), 401, "future_timestamp", jwt},
      {"jwt_claims_not_json", {}, std::string(kJwtClaimsNotJson), Secrets(), 400, "not_json", jwt},
      {"jwt_iat_not_a_number",
       {},
       std::string(kJwtIatString),
       Secrets(),
       400,
       "malformed_token",
       jwt},
      {"jwt_old_secret_after_rotation",
       {},
       std::string(kJwtOldSecret),
       Secrets(),
       401,
       "bad_signature",
       jwt},
      // A valid token with a PostGrid-Signature header is read as the JSON format and fails there.
      {"jwt_with_json_header", Sig(ok_header), std::string(kJwtOk), Secrets(), 401, "bad_signature",
       json},
  };
}

class VerifyTable : public ::testing::TestWithParam<Row> {};

TEST_P(VerifyTable, GivesTheExpectedStatusAndReason) {
  const Row& row = GetParam();
  const VerifyResult result = Verify(row.headers, row.body, row.secrets, kNow, kMaxAge);
  EXPECT_EQ(result.status, row.status);
  EXPECT_EQ(result.ok, row.status == 200);
  EXPECT_EQ(result.reason, row.reason);
  EXPECT_EQ(result.format, row.format);
  if (result.ok) {
    EXPECT_TRUE(result.payload.is_object());
    EXPECT_EQ(nlohmann::json::parse(result.payload_text), result.payload);
  } else {
    EXPECT_TRUE(result.payload.is_null());
    EXPECT_TRUE(result.payload_text.empty());
  }
}

INSTANTIATE_TEST_SUITE_P(Rows, VerifyTable, ::testing::ValuesIn(Rows()),
                         [](const ::testing::TestParamInfo<Row>& info) { return info.param.name; });

TEST(VerifyTable, CoversAtLeastFifteenForgeryClasses) {
  int refused = 0;
  for (const Row& row : Rows()) refused += row.status != 200 ? 1 : 0;
  EXPECT_GE(refused, 15);
}

TEST(Verify, JwtPayloadIsTheClaims) {
  const VerifyResult result = Verify({}, kJwtOk, Secrets(), kNow, kMaxAge);
  ASSERT_TRUE(result.ok);
  EXPECT_EQ(result.payload.at("type"), "postcard.updated");
  EXPECT_EQ(result.payload.at("data").at("id"), "postcard_xyz");
  // The text kept for storage is the token's claims segment decoded, not a re-serialisation
  // (which would order the keys).
  EXPECT_EQ(result.payload_text, R"({"type":"postcard.updated","data":{"id":"postcard_xyz",)"
                                 R"("status":"processed_for_delivery"},"iat":1699999990})");
}

TEST(Verify, JsonPayloadIsTheBody) {
  const VerifyResult result =
      Verify(Sig(JsonSig("1700000000", kSigSeconds)), kBody, Secrets(), kNow, kMaxAge);
  ASSERT_TRUE(result.ok);
  EXPECT_EQ(result.payload, nlohmann::json::parse(kBody));
  EXPECT_EQ(result.payload_text, kBody);
}

TEST(Verify, MaxAgeIsAppliedToMilliseconds) {
  // t = 1700000000123 ms is 123 ms after kNow; with max_age 100 ms it is in the future.
  const VerifyResult result = Verify(Sig(JsonSig("1700000000123", kSigMillis)), kBody, Secrets(),
                                     kNow, std::chrono::milliseconds(100));
  EXPECT_EQ(result.status, 401);
  EXPECT_EQ(result.reason, "future_timestamp");
}

TEST(Sha256Hex, MatchesAnIndependentDigest) { EXPECT_EQ(Sha256Hex(kBody), kBodySha256); }

}  // namespace
}  // namespace mailtrail::webhook
