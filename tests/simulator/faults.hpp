#pragma once

#include <chrono>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "sim_util.hpp"

/// Fault injection for the API (never for the control API). Windows are in real time, because
/// the clients that suffer them (retry/backoff loops) run on real time.
namespace mailtrail::sim {

enum class FaultKind {
  kRateLimit,  ///< 429 rate_limit_exceeded_error with Retry-After (s) or retry-after-ms
  kError,      ///< 500 / 502 / 503 (502 with an HTML body, like a gateway)
  kLatency,    ///< delay the response by latency_ms
  kReset,      ///< send half of the response, then reset the connection
  kTruncate,   ///< 200 with a body cut in half (Content-Length matches the cut body)
  kOutage,     ///< every request: the connection is closed without a response
};
std::string_view FaultKindName(FaultKind kind);

struct FaultSpec {
  uint64_t id = 0;
  FaultKind kind = FaultKind::kError;
  double rate = 1.0;  ///< probability per matching request
  std::string
      endpoint;  ///< substring of the path after /print-mail/v1 (e.g. `/letters`); empty = all
  std::string method;                     ///< empty = any
  int status = 503;                       ///< kError: 500, 502 or 503
  std::optional<int64_t> retry_after_s;   ///< kRateLimit: `Retry-After` header
  std::optional<int64_t> retry_after_ms;  ///< kRateLimit: `retry-after-ms` header
  int64_t latency_ms = 0;                 ///< kLatency
  int64_t remaining = -1;                 ///< firings left; -1 = unlimited
  std::chrono::steady_clock::time_point from{};
  std::chrono::steady_clock::time_point until = std::chrono::steady_clock::time_point::max();
  uint64_t fired = 0;
};

/// Parses a `--fault` flag: `KIND[:key=value,...]`, KIND one of 429, 500, 502, 503, latency,
/// reset, truncate, outage; keys rate, endpoint, method, retry_after, retry_after_ms, ms, count,
/// seconds (window length from now), after (window start, seconds from now).
/// Throws std::invalid_argument with the reason.
FaultSpec ParseFaultFlag(std::string_view text);
/// Parses the control API's JSON form (same keys; `kind` as above). Throws std::invalid_argument.
FaultSpec FaultFromJson(const nlohmann::json& body);
nlohmann::json FaultToJson(const FaultSpec& fault);

/// What to do to one request.
struct FaultDecision {
  int64_t latency_ms = 0;
  std::optional<FaultSpec> action;  ///< the one non-latency fault that fired, if any
};

/// The active faults. Not thread-safe (server thread).
class Faults {
 public:
  explicit Faults(uint64_t seed) : rng_(Mix64(seed ^ 0xFA017)) {}
  uint64_t Add(FaultSpec spec);
  bool Remove(uint64_t id);
  void Clear() { faults_.clear(); }
  const std::vector<FaultSpec>& list() const { return faults_; }
  /// Decides for one API request (`path` is after the /print-mail/v1 prefix).
  FaultDecision Decide(std::string_view method, std::string_view path);

 private:
  Rng rng_;
  uint64_t next_id_ = 1;
  std::vector<FaultSpec> faults_;
};

}  // namespace mailtrail::sim
