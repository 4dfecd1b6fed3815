// Fuzzes the webhook verifier and event parser (webhook/verify.hpp). Input layout: the bytes up
// to the first '\n' are PostGrid-Signature header values separated by '\r' (an empty first line
// means no header, i.e. the JWT format); the rest is the body. Verify and ParseEvent may throw
// nothing but std::bad_alloc.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <string>
#include <string_view>
#include <vector>

#include "fuzz_support.hpp"
#include "webhook/verify.hpp"

namespace {

using mailtrail::fuzz::Check;
using mailtrail::fuzz::FailUnexpected;
namespace webhook = mailtrail::webhook;

// The seeds in corpus/webhook/ are signed with these (corpus/make_webhook_seeds.py), so the
// fuzzer starts past the signature check and can mutate the payload of genuine deliveries.
const std::vector<std::string> kSecrets = {"whsec_fuzz_secret_0123456789",
                                           "whsec_fuzz_old_secret_abcdef"};
const mailtrail::domain::Timestamp kNow{std::chrono::seconds(1700000000)};
constexpr std::chrono::milliseconds kMaxAge = std::chrono::minutes(10);

webhook::Headers SplitHeaders(std::string_view line) {
  webhook::Headers headers;
  if (line.empty()) return headers;
  std::size_t start = 0;
  while (true) {
    const std::size_t end = line.find('\r', start);
    const std::string_view value = line.substr(start, end - start);
    // Alternate the spelling: header names are case-insensitive.
    headers.push_back({headers.size() % 2 == 0 ? "PostGrid-Signature" : "postgrid-signature",
                       std::string(value)});
    if (end == std::string_view::npos) break;
    start = end + 1;
  }
  return headers;
}

void CheckEvent(const webhook::Event& event) {
  if (event.order) Check(!event.order->id.empty(), "ParseEvent returned an order with no id");
}

void FuzzOne(std::string_view input) {
  const std::size_t newline = input.find('\n');
  const std::string_view header_line =
      newline == std::string_view::npos ? std::string_view() : input.substr(0, newline);
  const std::string_view body =
      newline == std::string_view::npos ? input : input.substr(newline + 1);

  const webhook::VerifyResult result =
      webhook::Verify(SplitHeaders(header_line), body, kSecrets, kNow, kMaxAge);
  if (result.ok) {
    Check(result.status == 200 && result.reason.empty(), "ok result without status 200");
    Check(result.payload.is_object(), "verified payload is not a JSON object");
    Check(result.format.has_value(), "verified payload without a format");
    CheckEvent(webhook::ParseEvent(result.payload));
  } else {
    Check(result.status == 400 || result.status == 401, "refusal with a status other than 400/401");
    Check(!result.reason.empty(), "refusal without a reason");
    Check(result.payload.is_null(), "refusal that still carries a payload");
  }

  // The signature check keeps mutated bodies away from ParseEvent; feed it the body directly as
  // well, since a verified payload can hold anything a genuine secret holder chooses to sign.
  const auto json = nlohmann::json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (!json.is_discarded()) CheckEvent(webhook::ParseEvent(json));
  Check(webhook::Sha256Hex(body).size() == 64, "Sha256Hex is not 64 hex digits");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  try {
    FuzzOne(std::string_view(reinterpret_cast<const char*>(data), size));
  } catch (const std::bad_alloc&) {
    throw;
  } catch (const std::exception& error) {
    FailUnexpected("webhook Verify/ParseEvent", error);
  }
  return 0;
}
