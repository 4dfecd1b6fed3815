#include "faults.hpp"

#include <stdexcept>

namespace mailtrail::sim {
namespace {

using Steady = std::chrono::steady_clock;

void SetKind(FaultSpec& spec, std::string_view kind) {
  if (kind == "429" || kind == "rate_limit") {
    spec.kind = FaultKind::kRateLimit;
  } else if (kind == "500" || kind == "502" || kind == "503") {
    spec.kind = FaultKind::kError;
    spec.status = std::stoi(std::string(kind));
  } else if (kind == "error") {
    spec.kind = FaultKind::kError;
  } else if (kind == "latency") {
    spec.kind = FaultKind::kLatency;
  } else if (kind == "reset") {
    spec.kind = FaultKind::kReset;
  } else if (kind == "truncate") {
    spec.kind = FaultKind::kTruncate;
  } else if (kind == "outage") {
    spec.kind = FaultKind::kOutage;
  } else {
    throw std::invalid_argument("unknown fault kind '" + std::string(kind) + "'");
  }
}

double ToDouble(std::string_view key, std::string_view value) {
  try {
    size_t used = 0;
    const double d = std::stod(std::string(value), &used);
    if (used != value.size()) throw std::invalid_argument("trailing characters");
    return d;
  } catch (const std::exception&) {
    throw std::invalid_argument("fault key '" + std::string(key) + "' needs a number, got '" +
                                std::string(value) + "'");
  }
}

void SetKey(FaultSpec& spec, std::string_view key, std::string_view value) {
  const auto now = Steady::now();
  const auto seconds = [](double s) {
    return std::chrono::duration_cast<Steady::duration>(std::chrono::duration<double>(s));
  };
  if (key == "rate") {
    spec.rate = ToDouble(key, value);
    if (spec.rate < 0 || spec.rate > 1) throw std::invalid_argument("rate must be in [0,1]");
  } else if (key == "endpoint") {
    spec.endpoint = std::string(value);
  } else if (key == "method") {
    spec.method = std::string(value);
  } else if (key == "status") {
    spec.status = static_cast<int>(ToDouble(key, value));
  } else if (key == "retry_after") {
    spec.retry_after_s = static_cast<int64_t>(ToDouble(key, value));
  } else if (key == "retry_after_ms") {
    spec.retry_after_ms = static_cast<int64_t>(ToDouble(key, value));
  } else if (key == "ms") {
    spec.latency_ms = static_cast<int64_t>(ToDouble(key, value));
  } else if (key == "count") {
    spec.remaining = static_cast<int64_t>(ToDouble(key, value));
  } else if (key == "after") {
    spec.from = now + seconds(ToDouble(key, value));
  } else if (key == "seconds") {
    const auto start = spec.from == Steady::time_point{} ? now : spec.from;
    spec.until = start + seconds(ToDouble(key, value));
  } else {
    throw std::invalid_argument("unknown fault key '" + std::string(key) + "'");
  }
}

void Validate(const FaultSpec& spec) {
  if (spec.kind == FaultKind::kError && spec.status != 500 && spec.status != 502 &&
      spec.status != 503) {
    throw std::invalid_argument("error fault status must be 500, 502 or 503");
  }
  if (spec.kind == FaultKind::kLatency && spec.latency_ms <= 0) {
    throw std::invalid_argument("latency fault needs ms > 0");
  }
}

}  // namespace

std::string_view FaultKindName(FaultKind kind) {
  switch (kind) {
    case FaultKind::kRateLimit:
      return "429";
    case FaultKind::kError:
      return "error";
    case FaultKind::kLatency:
      return "latency";
    case FaultKind::kReset:
      return "reset";
    case FaultKind::kTruncate:
      return "truncate";
    case FaultKind::kOutage:
      return "outage";
  }
  return "?";
}

FaultSpec ParseFaultFlag(std::string_view text) {
  FaultSpec spec;
  const size_t colon = text.find(':');
  SetKind(spec, text.substr(0, colon));
  if (colon != std::string_view::npos) {
    std::string_view rest = text.substr(colon + 1);
    // `after` must be applied before `seconds`, whatever the order on the command line.
    std::vector<std::pair<std::string_view, std::string_view>> pairs;
    while (!rest.empty()) {
      const size_t comma = rest.find(',');
      const std::string_view part = rest.substr(0, comma);
      const size_t eq = part.find('=');
      if (eq == std::string_view::npos) {
        throw std::invalid_argument("fault option '" + std::string(part) + "' is not key=value");
      }
      pairs.emplace_back(part.substr(0, eq), part.substr(eq + 1));
      if (comma == std::string_view::npos) break;
      rest.remove_prefix(comma + 1);
    }
    for (const auto& [k, v] : pairs) {
      if (k == "after") SetKey(spec, k, v);
    }
    for (const auto& [k, v] : pairs) {
      if (k != "after") SetKey(spec, k, v);
    }
  }
  Validate(spec);
  return spec;
}

FaultSpec FaultFromJson(const nlohmann::json& body) {
  if (!body.is_object() || !body.contains("kind") || !body["kind"].is_string()) {
    throw std::invalid_argument("fault needs a string 'kind'");
  }
  FaultSpec spec;
  SetKind(spec, body["kind"].get<std::string>());
  const auto as_text = [](const nlohmann::json& v) {
    return v.is_string() ? v.get<std::string>() : v.dump();
  };
  if (body.contains("after")) SetKey(spec, "after", as_text(body["after"]));
  for (const auto& [key, value] : body.items()) {
    if (key == "kind" || key == "after" || value.is_null()) continue;
    SetKey(spec, key, as_text(value));
  }
  Validate(spec);
  return spec;
}

nlohmann::json FaultToJson(const FaultSpec& f) {
  nlohmann::json j = {{"id", f.id},          {"kind", FaultKindName(f.kind)},
                      {"rate", f.rate},      {"endpoint", f.endpoint},
                      {"method", f.method},  {"fired", f.fired},
                      {"count", f.remaining}};
  if (f.kind == FaultKind::kError) j["status"] = f.status;
  if (f.retry_after_s) j["retry_after"] = *f.retry_after_s;
  if (f.retry_after_ms) j["retry_after_ms"] = *f.retry_after_ms;
  if (f.kind == FaultKind::kLatency) j["ms"] = f.latency_ms;
  if (f.until != Steady::time_point::max()) {
    j["secondsLeft"] = std::chrono::duration<double>(f.until - Steady::now()).count();
  }
  return j;
}

uint64_t Faults::Add(FaultSpec spec) {
  spec.id = next_id_++;
  faults_.push_back(std::move(spec));
  return faults_.back().id;
}

bool Faults::Remove(uint64_t id) {
  for (auto it = faults_.begin(); it != faults_.end(); ++it) {
    if (it->id == id) {
      faults_.erase(it);
      return true;
    }
  }
  return false;
}

FaultDecision Faults::Decide(std::string_view method, std::string_view path) {
  FaultDecision decision;
  const auto now = Steady::now();
  for (auto& f : faults_) {
    if (f.remaining == 0 || now < f.from || now >= f.until) continue;
    if (!f.endpoint.empty() && path.find(f.endpoint) == std::string_view::npos) continue;
    if (!f.method.empty() && f.method != method) continue;
    if (f.kind == FaultKind::kLatency) {
      if (rng_.Chance(f.rate)) {
        decision.latency_ms += f.latency_ms;
        ++f.fired;
        if (f.remaining > 0) --f.remaining;
      }
      continue;
    }
    if (decision.action) continue;
    if (f.kind != FaultKind::kOutage && !rng_.Chance(f.rate)) continue;
    ++f.fired;
    if (f.remaining > 0) --f.remaining;
    decision.action = f;
  }
  return decision;
}

}  // namespace mailtrail::sim
