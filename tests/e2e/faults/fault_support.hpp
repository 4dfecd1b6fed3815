#pragma once

// Helpers for the fault suites (issue 9): a daemon's CPU time from /proc, a sampler of the
// simulator's request counter (request rate per window), stepping a world one planned step per
// order, and the comparison of the whole database with the simulator's ground truth.

#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <fstream>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <pqxx/pqxx>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "e2e_world.hpp"
#include "mailtrail_process.hpp"
#include "sim_process.hpp"

namespace mailtrail::e2e::faults {

/// User + system CPU seconds `pid` has used so far (fields 14 and 15 of /proc/PID/stat);
/// -1 when the process is gone.
inline double CpuSeconds(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  // The command name (field 2) may hold spaces: count fields after its closing parenthesis.
  const auto close = text.rfind(')');
  if (close == std::string::npos) return -1;
  std::istringstream fields(text.substr(close + 2));
  std::string field;
  long utime = 0, stime = 0;
  for (int index = 3; fields >> field; ++index) {
    if (index == 14) utime = std::stol(field);
    if (index == 15) {
      stime = std::stol(field);
      return static_cast<double>(utime + stime) / static_cast<double>(::sysconf(_SC_CLK_TCK));
    }
  }
  return -1;
}

/// Measures how much of one core `pid` used between construction and Share().
class CpuMeter {
 public:
  explicit CpuMeter(pid_t pid)
      : pid_(pid), cpu_(CpuSeconds(pid)), start_(std::chrono::steady_clock::now()) {}
  /// CPU seconds per wall second since construction (1.0 = one core busy all the time).
  double Share() const {
    const double wall =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
    return (CpuSeconds(pid_) - cpu_) / wall;
  }

 private:
  pid_t pid_;
  double cpu_;
  std::chrono::steady_clock::time_point start_;
};

/// Samples the simulator's API request counter (`/__sim/stats` total: every API request it
/// received, faulted ones included) every `period` on its own thread, to find the busiest
/// window. The counter must not be reset while sampling.
class RateSampler {
 public:
  struct Sample {
    std::chrono::steady_clock::time_point at;
    long total;
  };
  struct Window {
    double seconds = 0;
    long requests = 0;
    double rate = 0;   ///< requests / seconds
    double start = 0;  ///< seconds since sampling began
  };

  RateSampler(const sim::testing::SimProcess& sim, std::chrono::milliseconds period)
      : sim_(sim), period_(period), thread_([this] { Run(); }) {}
  ~RateSampler() { Stop(); }
  RateSampler(const RateSampler&) = delete;
  RateSampler& operator=(const RateSampler&) = delete;

  void Stop() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
  }

  std::vector<Sample> samples() const {
    std::lock_guard lock(mutex_);
    return samples_;
  }

  /// The window of at least `length` (the shortest such between two samples) with the highest
  /// request rate; a window's rate is its requests over its true length, so a longer window
  /// than asked never inflates it.
  Window Busiest(std::chrono::milliseconds length) const {
    const auto all = samples();
    Window best;
    std::size_t j = 0;
    for (std::size_t i = 0; i < all.size(); ++i) {
      if (j < i) j = i;
      while (j < all.size() && all[j].at - all[i].at < length) ++j;
      if (j == all.size()) break;
      const double seconds = std::chrono::duration<double>(all[j].at - all[i].at).count();
      const long requests = all[j].total - all[i].total;
      const double rate = static_cast<double>(requests) / seconds;
      if (rate > best.rate) {
        best = {seconds, requests, rate,
                std::chrono::duration<double>(all[i].at - all.front().at).count()};
      }
    }
    return best;
  }

  /// Requests counted over the whole sampling.
  long Total() const {
    const auto all = samples();
    return all.size() < 2 ? 0 : all.back().total - all.front().total;
  }

 private:
  void Run() {
    while (!stop_) {
      const auto stats = sim_.Get("/__sim/stats");
      const auto now = std::chrono::steady_clock::now();
      if (stats.status == 200) {
        const long total = nlohmann::json::parse(stats.body)["total"].get<long>();
        std::lock_guard lock(mutex_);
        samples_.push_back({now, total});
      }
      std::this_thread::sleep_for(period_);
    }
  }

  const sim::testing::SimProcess& sim_;
  std::chrono::milliseconds period_;
  std::atomic<bool> stop_{false};
  mutable std::mutex mutex_;
  std::vector<Sample> samples_;
  std::thread thread_;
};

/// Applies the next planned step of up to `limit` orders of `active` (one true change each, so
/// a refresh can see every transition); orders whose plan is finished leave `active`. Returns the
/// number of steps applied. Throws on an unexpected simulator answer.
inline std::size_t StepAll(const sim::testing::SimProcess& sim, std::set<std::string>& active,
                           std::size_t limit = SIZE_MAX) {
  std::size_t steps = 0;
  for (auto it = active.begin(); it != active.end() && steps < limit;) {
    const auto result = sim.Post("/__sim/orders/" + *it + "/step");
    if (result.status == 422) {
      it = active.erase(it);
      continue;
    }
    if (result.status != 200) {
      throw std::runtime_error("step " + *it + ": " + std::to_string(result.status) + " " +
                               result.body);
    }
    ++steps;
    ++it;
  }
  return steps;
}

/// Waits up to `timeout` until every order of the simulator's current world (of one mode)
/// matches the database; returns the orders still differing (empty: converged).
inline std::vector<std::string> WaitConverged(const std::string& dsn,
                                              const sim::testing::SimProcess& sim,
                                              std::chrono::milliseconds timeout) {
  const auto now = SimOrders(sim, true);
  std::vector<std::string> diverging;
  WaitUntil(
      [&] {
        try {
          diverging = Diverging(dsn, now);
        } catch (const std::exception& e) {
          diverging = {std::string("database: ") + e.what()};
        }
        return diverging.empty();
      },
      timeout);
  return diverging;
}

/// What the truth comparison saw.
struct TruthTally {
  std::size_t orders = 0;
  std::size_t transitions = 0;
  std::size_t events = 0;
};

/// For every live order of the simulator: the stored order_changes are the truth's transitions,
/// each exactly once and in order, and the stored carrier events are the truth's, each once
/// (EXPECTs). No order is stored that the simulator does not have.
inline TruthTally ExpectDatabaseEqualsTruth(const std::string& dsn,
                                            const sim::testing::SimProcess& sim) {
  const auto world = SimOrders(sim, true);
  pqxx::connection connection(dsn);
  pqxx::read_transaction tx(connection);
  TruthTally tally;
  for (const auto& [id, order] : world) {
    const nlohmann::json truth = GetJson(sim, "/__sim/orders/" + id + "/truth");
    const auto want = TruthTransitions(truth);
    for (const auto& [field, list] : want) tally.transitions += list.size();
    EXPECT_EQ(StoredTransitions(tx, id), want) << "order_changes of " << id;
    const auto events = TruthEvents(truth);
    tally.events += events.size();
    EXPECT_EQ(StoredEvents(tx, id), events) << "carrier events of " << id;
    ++tally.orders;
  }
  EXPECT_EQ(tx.exec("SELECT count(*) FROM mailtrail.orders")[0][0].as<std::size_t>(), world.size());
  return tally;
}

}  // namespace mailtrail::e2e::faults
