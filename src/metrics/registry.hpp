#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace mailtrail::metrics {

/// A label set, in the order given (rendered in that order). Names must match
/// `[a-zA-Z_][a-zA-Z0-9_]*` and not start with `__`; values are any UTF-8 text (escaped on output).
using Labels = std::vector<std::pair<std::string, std::string>>;

enum class MetricType { kCounter, kGauge, kHistogram };

/// A monotonically increasing value. Thread-safe, lock-free.
class Counter {
 public:
  /// Adds `by` (must be >= 0; a negative amount is ignored, a counter never goes down).
  void Increment(double by = 1.0);
  double Value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> value_{0.0};
};

/// A value that goes up and down. Thread-safe, lock-free.
class Gauge {
 public:
  void Set(double value) { value_.store(value, std::memory_order_relaxed); }
  void Add(double by);
  double Value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> value_{0.0};
};

/// A histogram with fixed upper bounds (the `+Inf` bucket is implicit). Thread-safe (a mutex per
/// histogram; Observe is a few comparisons under it).
class Histogram {
 public:
  /// `bounds` must be finite and strictly increasing; throws std::invalid_argument otherwise.
  explicit Histogram(std::vector<double> bounds);

  void Observe(double value);

  struct Snapshot {
    std::vector<double> bounds;
    std::vector<std::uint64_t> cumulative;  ///< One per bound, then one for +Inf (== count).
    double sum = 0;
    std::uint64_t count = 0;
  };
  Snapshot Collect() const;

 private:
  std::vector<double> bounds_;
  mutable std::mutex mutex_;
  std::vector<std::uint64_t> counts_;  // per bucket, not cumulative; last = above every bound
  double sum_ = 0;
  std::uint64_t count_ = 0;
};

/// One series produced by a callback at scrape time.
struct Sample {
  Labels labels;
  double value = 0;
};
/// Returns the current series of a callback family. Called on the scraping thread, outside the
/// registry's lock; must be cheap and thread-safe (read atomics or a cached snapshot, never SQL).
using CollectFn = std::function<std::vector<Sample>()>;

/// Latency buckets in seconds, 5 ms to 10 s.
std::vector<double> DefaultLatencyBuckets();

/// A set of metric families rendered in the Prometheus text exposition format 0.0.4.
///
/// Families are created on first use and live as long as the registry; the references returned
/// stay valid, so hot paths keep them and update without any lookup. Asking again for the same
/// name and labels returns the same series. A name used with another type or help text, an
/// invalid name or label name, or a callback family whose name is taken throws
/// std::invalid_argument. Thread-safe.
class Registry {
 public:
  Registry();
  ~Registry();
  Registry(const Registry&) = delete;
  Registry& operator=(const Registry&) = delete;

  Counter& GetCounter(std::string_view name, std::string_view help, const Labels& labels = {});
  Gauge& GetGauge(std::string_view name, std::string_view help, const Labels& labels = {});
  /// Every series of one histogram family must use the same `bounds`.
  Histogram& GetHistogram(std::string_view name, std::string_view help,
                          const std::vector<double>& bounds, const Labels& labels = {});
  /// A counter or gauge family whose series are produced by `collect` at every scrape.
  void AddCallback(std::string_view name, std::string_view help, MetricType type,
                   CollectFn collect);

  /// The whole registry in text format 0.0.4: families sorted by name, each with `# HELP` and
  /// `# TYPE`, then its series (histograms as `_bucket{le=...}` with `+Inf`, `_sum`, `_count`).
  /// A callback that throws is skipped (its family is rendered without series).
  std::string Render() const;

 private:
  struct Family;
  Family& FamilyFor(std::string_view name, std::string_view help, MetricType type);

  mutable std::mutex mutex_;
  std::map<std::string, std::unique_ptr<Family>, std::less<>> families_;
};

/// Escapes a label value for the text format (`\` -> `\\`, `"` -> `\"`, newline -> `\n`).
std::string EscapeLabelValue(std::string_view value);
/// Formats a sample value: shortest round-trip decimal, `+Inf`, `-Inf`, `NaN`.
std::string FormatValue(double value);

}  // namespace mailtrail::metrics
