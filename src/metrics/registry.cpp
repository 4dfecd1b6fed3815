#include "metrics/registry.hpp"

#include <algorithm>
#include <array>
#include <charconv>
#include <cmath>
#include <exception>
#include <stdexcept>
#include <system_error>
#include <variant>

namespace mailtrail::metrics {
namespace {

bool IsMetricName(std::string_view name) {
  if (name.empty()) return false;
  for (std::size_t i = 0; i < name.size(); ++i) {
    const char c = name[i];
    const bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':';
    if (!alpha && !(i > 0 && c >= '0' && c <= '9')) return false;
  }
  return true;
}

bool IsLabelName(std::string_view name) {
  if (name.empty() || name.starts_with("__") || name.find(':') != std::string_view::npos) {
    return false;
  }
  return IsMetricName(name);
}

std::string_view TypeName(MetricType type) {
  switch (type) {
    case MetricType::kCounter:
      return "counter";
    case MetricType::kGauge:
      return "gauge";
    case MetricType::kHistogram:
      return "histogram";
  }
  return "untyped";
}

std::string EscapeHelp(std::string_view help) {
  std::string out;
  out.reserve(help.size());
  for (char c : help) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

void ValidateLabels(const Labels& labels, bool histogram) {
  for (std::size_t i = 0; i < labels.size(); ++i) {
    const std::string& name = labels[i].first;
    if (!IsLabelName(name)) throw std::invalid_argument("invalid label name '" + name + "'");
    if (histogram && name == "le") {
      throw std::invalid_argument("label 'le' is reserved for histogram buckets");
    }
    for (std::size_t j = 0; j < i; ++j) {
      if (labels[j].first == name) throw std::invalid_argument("duplicate label '" + name + "'");
    }
  }
}

/// `{a="x",b="y"}` plus an optional extra label (histogram `le`); empty when there are none.
std::string RenderLabels(const Labels& labels, std::string_view extra_name = {},
                         std::string_view extra_value = {}) {
  if (labels.empty() && extra_name.empty()) return {};
  std::string out = "{";
  bool first = true;
  auto add = [&](std::string_view name, std::string_view value) {
    if (!first) out += ',';
    first = false;
    out.append(name).append("=\"").append(EscapeLabelValue(value)).append("\"");
  };
  for (const auto& [name, value] : labels) add(name, value);
  if (!extra_name.empty()) add(extra_name, extra_value);
  out += '}';
  return out;
}

void AtomicAdd(std::atomic<double>& target, double by) {
  double current = target.load(std::memory_order_relaxed);
  while (!target.compare_exchange_weak(current, current + by, std::memory_order_relaxed)) {
  }
}

}  // namespace

void Counter::Increment(double by) {
  if (!(by > 0)) return;
  AtomicAdd(value_, by);
}

void Gauge::Add(double by) { AtomicAdd(value_, by); }

Histogram::Histogram(std::vector<double> bounds) : bounds_(std::move(bounds)) {
  for (std::size_t i = 0; i < bounds_.size(); ++i) {
    if (!std::isfinite(bounds_[i])) throw std::invalid_argument("histogram bound is not finite");
    if (i > 0 && !(bounds_[i] > bounds_[i - 1])) {
      throw std::invalid_argument("histogram bounds must increase strictly");
    }
  }
  counts_.assign(bounds_.size() + 1, 0);
}

void Histogram::Observe(double value) {
  // Prometheus buckets are upper-inclusive: value <= le.
  const auto bucket = static_cast<std::size_t>(
      std::lower_bound(bounds_.begin(), bounds_.end(), value) - bounds_.begin());
  std::lock_guard lock(mutex_);
  ++counts_[bucket];
  sum_ += value;
  ++count_;
}

Histogram::Snapshot Histogram::Collect() const {
  Snapshot snapshot;
  snapshot.bounds = bounds_;
  std::lock_guard lock(mutex_);
  std::uint64_t running = 0;
  for (std::uint64_t count : counts_) {
    running += count;
    snapshot.cumulative.push_back(running);
  }
  snapshot.sum = sum_;
  snapshot.count = count_;
  return snapshot;
}

std::vector<double> DefaultLatencyBuckets() {
  return {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};
}

struct Registry::Family {
  std::string name;
  std::string help;
  MetricType type = MetricType::kCounter;
  std::vector<double> bounds;  // histograms
  // Series keyed by their label set; std::map keeps rendering order stable.
  std::map<Labels, std::unique_ptr<Counter>> counters;
  std::map<Labels, std::unique_ptr<Gauge>> gauges;
  std::map<Labels, std::unique_ptr<Histogram>> histograms;
  CollectFn collect;  // callback families only
};

Registry::Registry() = default;
Registry::~Registry() = default;

Registry::Family& Registry::FamilyFor(std::string_view name, std::string_view help,
                                      MetricType type) {
  if (!IsMetricName(name))
    throw std::invalid_argument("invalid metric name '" + std::string(name) + "'");
  auto found = families_.find(name);
  if (found == families_.end()) {
    auto family = std::make_unique<Family>();
    family->name = std::string(name);
    family->help = std::string(help);
    family->type = type;
    found = families_.emplace(family->name, std::move(family)).first;
    return *found->second;
  }
  Family& family = *found->second;
  if (family.type != type || family.help != help || family.collect) {
    throw std::invalid_argument("metric '" + std::string(name) +
                                "' is already registered with another type, help or as a callback");
  }
  return family;
}

Counter& Registry::GetCounter(std::string_view name, std::string_view help, const Labels& labels) {
  ValidateLabels(labels, false);
  std::lock_guard lock(mutex_);
  Family& family = FamilyFor(name, help, MetricType::kCounter);
  auto& slot = family.counters[labels];
  if (!slot) slot = std::make_unique<Counter>();
  return *slot;
}

Gauge& Registry::GetGauge(std::string_view name, std::string_view help, const Labels& labels) {
  ValidateLabels(labels, false);
  std::lock_guard lock(mutex_);
  Family& family = FamilyFor(name, help, MetricType::kGauge);
  auto& slot = family.gauges[labels];
  if (!slot) slot = std::make_unique<Gauge>();
  return *slot;
}

Histogram& Registry::GetHistogram(std::string_view name, std::string_view help,
                                  const std::vector<double>& bounds, const Labels& labels) {
  ValidateLabels(labels, true);
  auto fresh = std::make_unique<Histogram>(bounds);  // validates the bounds before any change
  std::lock_guard lock(mutex_);
  const bool existed = families_.find(name) != families_.end();
  Family& family = FamilyFor(name, help, MetricType::kHistogram);
  if (!existed) {
    family.bounds = bounds;
  } else if (family.bounds != bounds) {
    throw std::invalid_argument("histogram '" + std::string(name) + "' has other buckets");
  }
  auto& slot = family.histograms[labels];
  if (!slot) slot = std::move(fresh);
  return *slot;
}

void Registry::AddCallback(std::string_view name, std::string_view help, MetricType type,
                           CollectFn collect) {
  if (type == MetricType::kHistogram) {
    throw std::invalid_argument("callback families are counters or gauges");
  }
  if (!IsMetricName(name))
    throw std::invalid_argument("invalid metric name '" + std::string(name) + "'");
  if (!collect) throw std::invalid_argument("callback for '" + std::string(name) + "' is empty");
  std::lock_guard lock(mutex_);
  if (families_.find(name) != families_.end()) {
    throw std::invalid_argument("metric '" + std::string(name) + "' is already registered");
  }
  auto family = std::make_unique<Family>();
  family->name = std::string(name);
  family->help = std::string(help);
  family->type = type;
  family->collect = std::move(collect);
  families_.emplace(family->name, std::move(family));
}

std::string Registry::Render() const {
  // Snapshot under the lock, format outside it; callbacks run without the lock so they may take
  // their own locks (or even use this registry) without deadlocking.
  struct Rendered {
    const Family* family;
    CollectFn collect;
  };
  std::vector<Rendered> families;
  {
    std::lock_guard lock(mutex_);
    for (const auto& [name, family] : families_)
      families.push_back({family.get(), family->collect});
  }

  std::string out;
  for (const Rendered& entry : families) {
    const Family& family = *entry.family;
    out.append("# HELP ").append(family.name).append(" ").append(EscapeHelp(family.help));
    out.append("\n# TYPE ").append(family.name).append(" ").append(TypeName(family.type));
    out.append("\n");
    auto line = [&out](std::string_view name, const std::string& labels, double value) {
      out.append(name).append(labels).append(" ").append(FormatValue(value)).append("\n");
    };

    if (entry.collect) {
      std::vector<Sample> samples;
      try {
        samples = entry.collect();
      } catch (const std::exception&) {
        // A broken callback must not take the whole scrape down; its family renders empty.
        samples.clear();
      }
      std::map<Labels, double> unique;  // sorted and de-duplicated: the last value wins
      for (Sample& sample : samples) {
        try {
          ValidateLabels(sample.labels, false);
        } catch (const std::invalid_argument&) {
          continue;  // an invalid label set would make the whole exposition unparseable
        }
        unique[std::move(sample.labels)] = sample.value;
      }
      for (const auto& [labels, value] : unique) line(family.name, RenderLabels(labels), value);
      continue;
    }

    std::lock_guard lock(mutex_);  // series maps may grow concurrently
    for (const auto& [labels, counter] : family.counters) {
      line(family.name, RenderLabels(labels), counter->Value());
    }
    for (const auto& [labels, gauge] : family.gauges) {
      line(family.name, RenderLabels(labels), gauge->Value());
    }
    for (const auto& [labels, histogram] : family.histograms) {
      const Histogram::Snapshot snapshot = histogram->Collect();
      const std::string bucket_name = family.name + "_bucket";
      for (std::size_t i = 0; i < snapshot.bounds.size(); ++i) {
        line(bucket_name, RenderLabels(labels, "le", FormatValue(snapshot.bounds[i])),
             static_cast<double>(snapshot.cumulative[i]));
      }
      line(bucket_name, RenderLabels(labels, "le", "+Inf"),
           static_cast<double>(snapshot.cumulative.back()));
      line(family.name + "_sum", RenderLabels(labels), snapshot.sum);
      line(family.name + "_count", RenderLabels(labels), static_cast<double>(snapshot.count));
    }
  }
  return out;
}

std::string EscapeLabelValue(std::string_view value) {
  std::string out;
  out.reserve(value.size());
  for (char c : value) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '"') {
      out += "\\\"";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

std::string FormatValue(double value) {
  if (std::isnan(value)) return "NaN";
  if (std::isinf(value)) return value > 0 ? "+Inf" : "-Inf";
  std::array<char, 64> buffer{};
  // Whole numbers (counts, unix timestamps) read better as integers than as `1.7e+09`; below
  // 2^53 every integer is exact in a double.
  if (std::abs(value) < 9007199254740992.0 && value == std::trunc(value)) {
    const auto result = std::to_chars(buffer.data(), buffer.data() + buffer.size(),
                                      static_cast<std::int64_t>(value));
    return {buffer.data(), result.ptr};
  }
  const auto result = std::to_chars(buffer.data(), buffer.data() + buffer.size(), value);
  if (result.ec != std::errc()) return "NaN";  // cannot happen with 64 bytes; stay parseable
  return {buffer.data(), result.ptr};
}

}  // namespace mailtrail::metrics
