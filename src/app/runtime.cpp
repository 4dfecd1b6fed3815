#include "app/runtime.hpp"

#include <unistd.h>

#include <array>
#include <random>

namespace mailtrail::app {

domain::Timestamp SystemNow() {
  return std::chrono::time_point_cast<std::chrono::microseconds>(std::chrono::system_clock::now());
}

postgrid::ClientOptions ClientOptionsFrom(const config::Config& config) {
  postgrid::ClientOptions options;
  options.base_url = config.postgrid.base_url;
  options.api_key = config.postgrid.api_key;
  options.requests_per_second = config.postgrid.requests_per_second;
  options.max_concurrency = static_cast<std::size_t>(config.postgrid.max_concurrency);
  options.timeout = config.postgrid.timeout;
  return options;
}

domain::PollPolicy PollPolicyFrom(const config::Config& config) {
  return {config.poll.interval, config.poll.carrier_interval, config.poll.completed_grace};
}

// A claim is fetched and then written in one transaction of about ten statements whatever its
// size, so a larger claim costs fewer round trips: 16 per worker instead of 4 cut the daemon's CPU
// per refreshed order by 15 % and PostgreSQL's by 25 % (issue 10, benchmark 3). But a claim must be
// fetched well within its lease even at a low rate: at most a quarter of the lease's worth of
// requests at the configured rate (a replica's share is lower when several run; a quarter leaves
// room for four).
std::size_t ClaimBatch(std::size_t workers, double requests_per_second,
                       std::chrono::milliseconds lease) {
  const std::size_t most = std::max<std::size_t>(workers, std::min<std::size_t>(workers * 16, 512));
  const double fetchable_in_quarter_lease =
      requests_per_second * std::chrono::duration<double>(lease).count() / 4;
  if (fetchable_in_quarter_lease >= static_cast<double>(most)) return most;
  return std::max(workers, static_cast<std::size_t>(fetchable_in_quarter_lease));
}

sync::SchedulerOptions SchedulerOptionsFrom(const config::Config& config, bool leader_jobs) {
  sync::SchedulerOptions options;
  options.types = config.postgrid.order_types;
  options.discovery_interval = config.poll.discovery_interval;
  options.poll_interval = config.poll.interval;
  options.full_scan_interval = config.poll.full_scan_interval;
  options.requests_per_second = config.postgrid.requests_per_second;
  options.refresh_workers = static_cast<std::size_t>(config.postgrid.max_concurrency);
  options.webhook_workers = std::max<std::size_t>(1, options.refresh_workers / 2);
  // Short test intervals want a quick poll loop; production's hour does not need more than 1 s.
  options.idle_tick = std::clamp(config.poll.interval / 10, std::chrono::milliseconds(100),
                                 std::chrono::milliseconds(1000));
  options.error_backoff = std::clamp(config.poll.interval / 4, std::chrono::milliseconds(500),
                                     std::chrono::milliseconds(5000));
  // A lease must outlast a refresh with all its retries, and come back within an interval.
  const auto attempt_budget = config.postgrid.timeout * 5 + std::chrono::seconds(20);
  options.lease = std::clamp(config.poll.interval / 2, std::chrono::milliseconds(2000),
                             std::chrono::milliseconds(std::chrono::minutes(5)));
  options.lease = std::max(options.lease, std::min(attempt_budget, config.poll.interval));
  options.claim_batch =
      ClaimBatch(options.refresh_workers, options.requests_per_second, options.lease);
  options.not_found_retry = config.poll.interval;
  options.leader_jobs = leader_jobs;
  std::array<char, 256> host{};
  if (::gethostname(host.data(), host.size() - 1) != 0) {
    std::snprintf(host.data(), host.size(), "unknown");
  }
  options.hostname = host.data();
  std::random_device random;
  options.replica_id = std::string(host.data()) + ":" + std::to_string(::getpid()) + ":" +
                       std::to_string(random() % 100000);
  return options;
}

Runtime::Runtime(const config::Config& config, bool leader_jobs,
                 std::function<void(postgrid::EndpointKind, double)> observe_latency) {
  postgrid::ClientOptions client_options = ClientOptionsFrom(config);
  client_options.observe_latency = std::move(observe_latency);
  // One-shot commands report an unreachable API after a few tries; the daemon keeps the full
  // retry budget because it has nothing better to do than wait.
  if (!leader_jobs) client_options.max_attempts = 3;
  client = std::make_unique<postgrid::Client>(io.get_executor(), std::move(client_options));
  db = std::make_unique<sync::DbExecutor>(config.database.url);
  syncer = std::make_unique<sync::Syncer>(*client, *db, PollPolicyFrom(config), SystemNow);
  scheduler = std::make_unique<sync::Scheduler>(io.get_executor(), *syncer, *client, *db,
                                                SchedulerOptionsFrom(config, leader_jobs));
}

Runtime::~Runtime() {
  // The scheduler and client hold timers and sockets of `io`: destroy them before it.
  scheduler.reset();
  syncer.reset();
  client.reset();
  db.reset();
}

void RunToCompletion(net::io_context& io, net::awaitable<void> task) {
  std::exception_ptr error;
  bool done = false;
  net::co_spawn(io, std::move(task), [&](const std::exception_ptr& e) {
    error = e;
    done = true;
  });
  io.restart();
  io.run();
  if (error) std::rethrow_exception(error);
  if (!done) throw std::runtime_error("the task did not complete");
}

}  // namespace mailtrail::app
