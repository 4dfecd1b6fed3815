#pragma once

#include <chrono>
#include <exception>
#include <memory>
#include <optional>
#include <string>

#include "config/config.hpp"
#include "net/net.hpp"
#include "postgrid/client.hpp"
#include "sync/db_executor.hpp"
#include "sync/scheduler.hpp"
#include "sync/syncer.hpp"

namespace mailtrail::app {

/// The wall clock at PostgreSQL precision.
domain::Timestamp SystemNow();

/// The client settings of contract.md's `postgrid.*` keys.
postgrid::ClientOptions ClientOptionsFrom(const config::Config& config);
/// The polling tiers of `poll.*`.
domain::PollPolicy PollPolicyFrom(const config::Config& config);
/// Orders a poll step claims: 16 per worker (at most 512, at least one per worker), fewer when the
/// configured rate could not fetch them within a quarter of the lease.
std::size_t ClaimBatch(std::size_t workers, double requests_per_second,
                       std::chrono::milliseconds lease);
/// The scheduler settings of `poll.*` and `postgrid.*`; `leader_jobs` false for CLI commands that
/// must not take part in leader election.
sync::SchedulerOptions SchedulerOptionsFrom(const config::Config& config, bool leader_jobs);

/// One io_context with the PostGrid client, the database thread, the Syncer and the Scheduler,
/// wired by constructor injection: what every command that talks to PostGrid needs.
struct Runtime {
  /// `observe_latency`: per-response latency hook for metrics (the daemon's); may be empty.
  explicit Runtime(const config::Config& config, bool leader_jobs = false,
                   std::function<void(postgrid::EndpointKind, double)> observe_latency = {});
  ~Runtime();

  net::io_context io{1};
  std::unique_ptr<postgrid::Client> client;
  std::unique_ptr<sync::DbExecutor> db;
  std::unique_ptr<sync::Syncer> syncer;
  std::unique_ptr<sync::Scheduler> scheduler;
};

/// Runs `task` on `io` until it completes and returns its result (rethrowing its exception).
template <typename T>
T RunToCompletion(net::io_context& io, net::awaitable<T> task) {
  std::optional<T> result;
  std::exception_ptr error;
  net::co_spawn(io, std::move(task), [&](const std::exception_ptr& e, T value) {
    error = e;
    if (!e) result = std::move(value);
  });
  io.restart();
  io.run();
  if (error) std::rethrow_exception(error);
  return std::move(*result);
}

void RunToCompletion(net::io_context& io, net::awaitable<void> task);

}  // namespace mailtrail::app
