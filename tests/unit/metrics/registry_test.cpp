#include "metrics/registry.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <stdexcept>
#include <thread>
#include <vector>

#include "promtool.hpp"

namespace mailtrail::metrics {
namespace {

TEST(Registry, RendersCountersAndGaugesExactly) {
  Registry registry;
  registry
      .GetCounter("mailtrail_api_requests_total", "API requests.",
                  {{"endpoint", "retrieve"}, {"status", "200"}})
      .Increment(3);
  registry
      .GetCounter("mailtrail_api_requests_total", "API requests.",
                  {{"endpoint", "list"}, {"status", "429"}})
      .Increment();
  registry.GetGauge("mailtrail_due_orders", "Orders due now.").Set(-2.5);

  EXPECT_EQ(registry.Render(),
            "# HELP mailtrail_api_requests_total API requests.\n"
            "# TYPE mailtrail_api_requests_total counter\n"
            "mailtrail_api_requests_total{endpoint=\"list\",status=\"429\"} 1\n"
            "mailtrail_api_requests_total{endpoint=\"retrieve\",status=\"200\"} 3\n"
            "# HELP mailtrail_due_orders Orders due now.\n"
            "# TYPE mailtrail_due_orders gauge\n"
            "mailtrail_due_orders -2.5\n");
}

TEST(Registry, SameNameAndLabelsIsTheSameSeries) {
  Registry registry;
  Counter& a = registry.GetCounter("x_total", "X.", {{"k", "v"}});
  Counter& b = registry.GetCounter("x_total", "X.", {{"k", "v"}});
  EXPECT_EQ(&a, &b);
  a.Increment(2);
  b.Increment(0.5);
  b.Increment(-7);  // ignored: counters never go down
  EXPECT_DOUBLE_EQ(a.Value(), 2.5);
}

TEST(Registry, RendersHistogramsWithCumulativeBucketsSumAndCount) {
  Registry registry;
  Histogram& histogram = registry.GetHistogram("mailtrail_request_seconds", "Latency.",
                                               {0.1, 0.5, 1}, {{"endpoint", "retrieve"}});
  histogram.Observe(0.05);
  histogram.Observe(0.1);  // upper-inclusive: lands in le="0.1"
  histogram.Observe(0.7);
  histogram.Observe(3);
  EXPECT_EQ(registry.Render(),
            "# HELP mailtrail_request_seconds Latency.\n"
            "# TYPE mailtrail_request_seconds histogram\n"
            "mailtrail_request_seconds_bucket{endpoint=\"retrieve\",le=\"0.1\"} 2\n"
            "mailtrail_request_seconds_bucket{endpoint=\"retrieve\",le=\"0.5\"} 2\n"
            "mailtrail_request_seconds_bucket{endpoint=\"retrieve\",le=\"1\"} 3\n"
            "mailtrail_request_seconds_bucket{endpoint=\"retrieve\",le=\"+Inf\"} 4\n"
            "mailtrail_request_seconds_sum{endpoint=\"retrieve\"} 3.85\n"
            "mailtrail_request_seconds_count{endpoint=\"retrieve\"} 4\n");
}

TEST(Registry, EmptyHistogramWithoutLabels) {
  Registry registry;
  registry.GetHistogram("h_seconds", "H.", {1});
  EXPECT_EQ(registry.Render(),
            "# HELP h_seconds H.\n# TYPE h_seconds histogram\n"
            "h_seconds_bucket{le=\"1\"} 0\nh_seconds_bucket{le=\"+Inf\"} 0\n"
            "h_seconds_sum 0\nh_seconds_count 0\n");
}

TEST(Registry, EscapesLabelValuesAndHelp) {
  Registry registry;
  registry.GetGauge("g", "Help with \\ and\nnewline \"quotes\" stay.", {{"v", "a\"b\\c\nd"}})
      .Set(1);
  EXPECT_EQ(registry.Render(),
            "# HELP g Help with \\\\ and\\nnewline \"quotes\" stay.\n"
            "# TYPE g gauge\n"
            "g{v=\"a\\\"b\\\\c\\nd\"} 1\n");
}

TEST(Registry, FormatsSpecialValues) {
  EXPECT_EQ(FormatValue(std::numeric_limits<double>::infinity()), "+Inf");
  EXPECT_EQ(FormatValue(-std::numeric_limits<double>::infinity()), "-Inf");
  EXPECT_EQ(FormatValue(std::nan("")), "NaN");
  EXPECT_EQ(FormatValue(0), "0");
  EXPECT_EQ(FormatValue(1e21), "1e+21");
  EXPECT_EQ(FormatValue(-3), "-3");
  EXPECT_EQ(FormatValue(1700000000.25), "1700000000.25");
  EXPECT_EQ(FormatValue(2.5e-05), "2.5e-05");
  EXPECT_EQ(FormatValue(0.1), "0.1");
  EXPECT_EQ(FormatValue(1700000000), "1700000000");
}

TEST(Registry, CallbackFamiliesAreEvaluatedAtEveryScrape) {
  Registry registry;
  double backlog = 1;
  registry.AddCallback("mailtrail_freshness_seconds", "Age of the most overdue order.",
                       MetricType::kGauge, [&backlog] {
                         return std::vector<Sample>{{{{"tier", "hourly"}}, backlog},
                                                    {{{"tier", "carrier"}}, backlog * 2}};
                       });
  EXPECT_EQ(registry.Render(),
            "# HELP mailtrail_freshness_seconds Age of the most overdue order.\n"
            "# TYPE mailtrail_freshness_seconds gauge\n"
            "mailtrail_freshness_seconds{tier=\"carrier\"} 2\n"
            "mailtrail_freshness_seconds{tier=\"hourly\"} 1\n");
  backlog = 5;
  EXPECT_NE(registry.Render().find("mailtrail_freshness_seconds{tier=\"hourly\"} 5\n"),
            std::string::npos);
}

TEST(Registry, ThrowingCallbackRendersItsFamilyEmpty) {
  Registry registry;
  registry.AddCallback("broken_total", "Broken.", MetricType::kCounter,
                       []() -> std::vector<Sample> { throw std::runtime_error("no"); });
  registry.GetCounter("fine_total", "Fine.").Increment();
  EXPECT_EQ(registry.Render(),
            "# HELP broken_total Broken.\n# TYPE broken_total counter\n"
            "# HELP fine_total Fine.\n# TYPE fine_total counter\nfine_total 1\n");
}

TEST(Registry, RejectsInvalidNamesAndConflicts) {
  Registry registry;
  EXPECT_THROW(registry.GetCounter("1abc", "x"), std::invalid_argument);
  EXPECT_THROW(registry.GetCounter("a-b", "x"), std::invalid_argument);
  EXPECT_THROW(registry.GetCounter("ok_total", "x", {{"__reserved", "v"}}), std::invalid_argument);
  EXPECT_THROW(registry.GetCounter("ok_total", "x", {{"bad-name", "v"}}), std::invalid_argument);
  EXPECT_THROW(registry.GetCounter("ok_total", "x", {{"a", "1"}, {"a", "2"}}),
               std::invalid_argument);
  EXPECT_THROW(registry.GetHistogram("h", "x", {1}, {{"le", "1"}}), std::invalid_argument);
  EXPECT_THROW(registry.GetHistogram("h", "x", {2, 1}), std::invalid_argument);
  registry.GetCounter("taken_total", "x");
  EXPECT_THROW(registry.GetGauge("taken_total", "x"), std::invalid_argument);
  EXPECT_THROW(registry.GetCounter("taken_total", "other help"), std::invalid_argument);
  EXPECT_THROW(registry.AddCallback("taken_total", "x", MetricType::kCounter,
                                    [] { return std::vector<Sample>{}; }),
               std::invalid_argument);
  registry.GetHistogram("h2", "x", {1, 2});
  EXPECT_THROW(registry.GetHistogram("h2", "x", {1, 3}, {{"a", "b"}}), std::invalid_argument);
}

TEST(Registry, ConcurrentUpdatesAreNotLost) {
  Registry registry;
  Counter& counter = registry.GetCounter("c_total", "C.");
  Histogram& histogram = registry.GetHistogram("h_seconds", "H.", {1});
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 10000; ++i) {
        counter.Increment();
        histogram.Observe(0.5);
        registry.GetGauge("g", "G.", {{"t", "x"}}).Add(1);
      }
    });
  }
  for (auto& thread : threads) thread.join();
  EXPECT_DOUBLE_EQ(counter.Value(), 40000);
  EXPECT_EQ(histogram.Collect().count, 40000u);
  EXPECT_DOUBLE_EQ(registry.GetGauge("g", "G.", {{"t", "x"}}).Value(), 40000);
}

TEST(Registry, EverythingItRendersPassesPromtool) {
  Registry registry;
  registry
      .GetCounter("mailtrail_api_requests_total", "API requests by endpoint and status.",
                  {{"endpoint", "retrieve"}, {"purpose", "poll"}, {"status", "200"}})
      .Increment(12);
  registry
      .GetCounter("mailtrail_unknown_enum_values_total", "Unknown enum values seen.",
                  {{"field", "status"}, {"value", "weird \"one\"\\\nnext"}})
      .Increment();
  registry
      .GetGauge("mailtrail_last_discovery_timestamp_seconds", "When the last discovery succeeded.")
      .Set(1700000000.25);
  registry.GetGauge("mailtrail_nan_ratio", "A NaN gauge.").Set(std::nan(""));
  Histogram& latency =
      registry.GetHistogram("mailtrail_api_request_duration_seconds", "Request latency.",
                            DefaultLatencyBuckets(), {{"endpoint", "list"}});
  for (double v : {0.001, 0.02, 0.3, 4.0, 20.0}) latency.Observe(v);
  registry.GetHistogram("mailtrail_api_request_duration_seconds", "Request latency.",
                        DefaultLatencyBuckets(), {{"endpoint", "retrieve"}});
  registry.AddCallback(
      "mailtrail_webhook_deliveries_total", "Webhook deliveries by result.", MetricType::kCounter,
      [] {
        return std::vector<Sample>{{{{"result", "accepted"}}, 3}, {{{"result", "refused_401"}}, 1}};
      });
  registry.AddCallback("mailtrail_orders", "Orders by type.", MetricType::kGauge,
                       [] { return std::vector<Sample>{}; });
  EXPECT_TRUE(testing::PromtoolAccepts(registry.Render()));
}

TEST(Registry, PromtoolCatchesABrokenExposition) {
  // The check itself must be able to fail: a counter without _total and a broken label.
  EXPECT_FALSE(testing::PromtoolAccepts("# HELP a A.\n# TYPE a counter\na{x=\"1} 1\n"));
}

}  // namespace
}  // namespace mailtrail::metrics
