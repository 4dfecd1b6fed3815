#include "app/daemon.hpp"

#include <spdlog/spdlog.h>
#include <systemd/sd-daemon.h>

#include <csignal>
#include <map>
#include <nlohmann/json.hpp>
#include <pqxx/pqxx>

#include "app/paths.hpp"
#include "app/runtime.hpp"
#include "metrics/http_server.hpp"
#include "metrics/registry.hpp"
#include "store/migrator.hpp"
#include "store/webhook_repository.hpp"
#include "webhook/server.hpp"
#include "webhook/verify.hpp"

namespace mailtrail::app {
namespace {

using namespace std::chrono_literals;

/// Order counts refreshed by a periodic query on the database thread; scrapes read this copy.
struct OrderStats {
  std::mutex mutex;
  std::vector<metrics::Sample> by_state;   // order_type, status, terminal
  std::vector<metrics::Sample> due;        // tier (check_reason)
  std::vector<metrics::Sample> freshness;  // tier: seconds the most overdue order is late
};

struct DaemonState {
  bool migrated = false;
  bool stopping = false;
  int exit_code = 0;
  std::string not_ready_reason = "migrations not applied yet";
};

// Group commit: the listener hands over every delivery that arrived while the previous batch was
// being stored; one statement records them all.
net::awaitable<std::vector<domain::DeliveryRecordOutcome>> RecordDeliveries(
    sync::DbExecutor* db, std::vector<domain::WebhookDelivery> deliveries) {
  auto record = [deliveries = std::move(deliveries)](store::Database& database) {
    store::WebhookRepository repository(database.Get());
    return repository.RecordDeliveries(deliveries);
  };
  co_return co_await db->Run(std::move(record));
}

net::awaitable<void> MarkProcessed(sync::DbExecutor* db, std::vector<std::int64_t> ids) {
  const domain::Timestamp now = SystemNow();
  auto mark = [ids = std::move(ids), now](store::Database& database) {
    store::WebhookRepository repository(database.Get());
    repository.MarkProcessed(ids, now);
  };
  co_await db->Run(std::move(mark));
}

// Verified deliveries whose refresh never ran: a 200 was answered, then the process died (kill,
// crash) or stopped with the refresh still queued. The stored payload names the order again.
// Deliveries a previous incarnation answered 2xx but died before refreshing: their orders are
// refreshed again so that no accepted webhook is lost. Capped, oldest first; the rest wait for
// the next start (polls cover their orders meanwhile).
constexpr std::size_t kUnprocessedAtStartup = 100000;

net::awaitable<std::vector<std::pair<domain::OrderRef, std::int64_t>>> LoadUnprocessed(
    sync::DbExecutor* db) {
  auto load = [](store::Database& database) {
    return store::WebhookRepository(database.Get()).LoadUnprocessed(kUnprocessedAtStartup);
  };
  const auto stored = co_await db->Run(std::move(load));
  std::vector<std::pair<domain::OrderRef, std::int64_t>> pending;
  pending.reserve(stored.size());
  for (const auto& delivery : stored) {
    // Verified payloads were parsed once already; one that no longer names an order can only
    // come from a hand edit of the table, and is left as it is.
    const auto payload = nlohmann::json::parse(delivery.payload, nullptr, false);
    const auto event = payload.is_discarded() ? webhook::Event{} : webhook::ParseEvent(payload);
    if (!event.order) {
      spdlog::warn(
          "webhook delivery {} is unprocessed but its stored payload names no order; "
          "not refreshing it",
          delivery.id);
      continue;
    }
    pending.emplace_back(*event.order, delivery.id);
  }
  co_return pending;
}

void LogIfFailed(const std::exception_ptr& error, const char* what) {
  if (!error) return;
  try {
    std::rethrow_exception(error);
  } catch (const std::exception& e) {
    spdlog::warn("{}: {}", what, e.what());
  }
}

net::awaitable<void> Sleep(net::steady_timer& timer, std::chrono::milliseconds duration) {
  timer.expires_after(duration);
  boost::system::error_code ignored;  // cancelled at shutdown
  co_await timer.async_wait(net::redirect_error(net::use_awaitable, ignored));
}

// Applies migrations, waiting with backoff while the database is unreachable. A migration the
// runner refuses (edited, failing, unknown) is fatal: retrying cannot fix it.
net::awaitable<bool> MigrateWithBackoff(sync::DbExecutor* db, std::filesystem::path directory,
                                        DaemonState* state, net::steady_timer* timer) {
  auto delay = 500ms;
  while (!state->stopping) {
    std::string problem;
    try {
      auto migrate = [directory](store::Database& database) {
        return store::Migrate(database.Get(), directory);
      };
      const auto report = co_await db->Run(std::move(migrate));
      for (const auto& name : report.applied) spdlog::info("applied migration {}", name);
      spdlog::info("schema up to date ({} migrations applied before)", report.already_applied);
      co_return true;
    } catch (const store::MigrationError& e) {
      spdlog::critical("cannot start: {}", e.what());
      co_return false;
    } catch (const std::exception& e) {
      problem = e.what();
    }
    state->not_ready_reason = "database unreachable: " + problem;
    spdlog::warn("database not reachable ({}); retrying in {} ms", problem, delay.count());
    co_await Sleep(*timer, delay);
    delay = std::min<std::chrono::milliseconds>(delay * 2, 30s);
  }
  co_return false;
}

net::awaitable<void> RefreshStats(sync::DbExecutor* db, std::shared_ptr<OrderStats> stats) {
  struct Rows {
    std::vector<metrics::Sample> by_state, due, freshness;
  };
  auto count_orders = [](store::Database& database) {
    Rows out;
    pqxx::read_transaction tx(database.Get());
    for (const auto& row : tx.exec(
             "SELECT order_type, coalesce(status, ''), terminal, count(*) FROM mailtrail.orders "
             "GROUP BY 1, 2, 3")) {
      out.by_state.push_back({{{"order_type", row[0].c_str()},
                               {"status", row[1].c_str()},
                               {"terminal", row[2].as<bool>() ? "true" : "false"}},
                              row[3].as<double>()});
    }
    for (const auto& row : tx.exec(
             "SELECT coalesce(check_reason, ''), count(*) FILTER (WHERE next_check_at <= now()), "
             "coalesce(extract(epoch FROM now() - min(next_check_at) FILTER (WHERE "
             "next_check_at <= now())), 0) FROM mailtrail.orders WHERE NOT terminal "
             "GROUP BY 1")) {
      out.due.push_back({{{"tier", row[0].c_str()}}, row[1].as<double>()});
      out.freshness.push_back({{{"tier", row[0].c_str()}}, row[2].as<double>()});
    }
    return out;
  };
  Rows rows = co_await db->Run(std::move(count_orders));
  std::lock_guard lock(stats->mutex);
  stats->by_state = std::move(rows.by_state);
  stats->due = std::move(rows.due);
  stats->freshness = std::move(rows.freshness);
}

void RegisterMetrics(metrics::Registry& registry, Runtime& runtime,
                     const std::shared_ptr<OrderStats>& stats, webhook::Server& server) {
  auto* client = runtime.client.get();
  auto* syncer = runtime.syncer.get();
  auto* scheduler = runtime.scheduler.get();
  auto* db = runtime.db.get();
  registry.AddCallback(
      "mailtrail_api_requests_total",
      "PostGrid API requests by endpoint, purpose and HTTP status (0: no response).",
      metrics::MetricType::kCounter, [client] {
        std::vector<metrics::Sample> samples;
        for (const auto& cell : client->RequestCounts()) {
          samples.push_back({{{"endpoint", std::string(postgrid::EndpointKindName(cell.endpoint))},
                              {"purpose", std::string(postgrid::PurposeName(cell.purpose))},
                              {"status", std::to_string(cell.status)}},
                             static_cast<double>(cell.count)});
        }
        return samples;
      });
  registry.AddCallback(
      "mailtrail_api_rate_limit_pause_seconds",
      "Seconds left of the pause a 429 imposed on every request.", metrics::MetricType::kGauge,
      [client] {
        return std::vector<metrics::Sample>{
            {{}, static_cast<double>(client->rate_limiter().PauseRemaining().count()) / 1000.0}};
      });
  registry.AddCallback(
      "mailtrail_api_retries_total",
      "PostGrid API attempts that failed and were retried (5xx, 429, timeouts, "
      "connection errors).",
      metrics::MetricType::kCounter, [client] {
        return std::vector<metrics::Sample>{{{}, static_cast<double>(client->retries())}};
      });
  registry.AddCallback("mailtrail_api_retry_wait_seconds_total",
                       "Seconds spent waiting before retries (backoff and 429 Retry-After).",
                       metrics::MetricType::kCounter, [client] {
                         return std::vector<metrics::Sample>{{{}, client->retry_wait_seconds()}};
                       });
  registry.AddCallback(
      "mailtrail_unknown_enum_values_total",
      "Values PostGrid sent that this build does not know (kept verbatim), by field.",
      metrics::MetricType::kCounter, [syncer] {
        const auto& counters = syncer->counters();
        return std::vector<metrics::Sample>{
            {{{"field", "status"}}, static_cast<double>(counters.unknown_status.load())},
            {{{"field", "imb_status"}}, static_cast<double>(counters.unknown_imb_status.load())},
            {{{"field", "carrier_status"}},
             static_cast<double>(counters.unknown_carrier_status.load())}};
      });
  registry.AddCallback("mailtrail_api_rate_limit_requests_per_second",
                       "This replica's share of postgrid.requests_per_second.",
                       metrics::MetricType::kGauge, [client] {
                         return std::vector<metrics::Sample>{{{}, client->rate_limiter().rate()}};
                       });
  registry.AddCallback(
      "mailtrail_changes_total", "order_changes rows written, by field and source.",
      metrics::MetricType::kCounter, [syncer] {
        std::vector<metrics::Sample> samples;
        const auto& counters = syncer->counters();
        for (auto field : domain::kAllFields) {
          for (int source = 0; source < 5; ++source) {
            const auto value =
                counters.changes[static_cast<std::size_t>(field)][static_cast<std::size_t>(source)]
                    .load();
            if (value == 0) continue;
            samples.push_back(
                {{{"field", std::string(domain::FieldName(field))},
                  {"source", std::string(store::SourceName(static_cast<store::Source>(source)))}},
                 static_cast<double>(value)});
          }
        }
        return samples;
      });
  registry.AddCallback("mailtrail_refreshes_total",
                       "Order snapshots recorded (fetched and diffed).",
                       metrics::MetricType::kCounter, [syncer] {
                         return std::vector<metrics::Sample>{
                             {{}, static_cast<double>(syncer->counters().refreshes.load())}};
                       });
  registry.AddCallback("mailtrail_refresh_failures_total",
                       "Refreshes that failed (API, mapping or database error).",
                       metrics::MetricType::kCounter, [syncer] {
                         return std::vector<metrics::Sample>{
                             {{}, static_cast<double>(syncer->counters().refresh_failures.load())}};
                       });
  registry.AddCallback("mailtrail_mapping_errors_total",
                       "PostGrid objects that could not be read (malformed JSON or fields).",
                       metrics::MetricType::kCounter, [syncer] {
                         return std::vector<metrics::Sample>{
                             {{}, static_cast<double>(syncer->counters().mapping_errors.load())}};
                       });
  registry.AddCallback("mailtrail_carrier_events_total", "carrier_tracking_events rows written.",
                       metrics::MetricType::kCounter, [syncer] {
                         return std::vector<metrics::Sample>{
                             {{}, static_cast<double>(syncer->counters().tracking_events.load())}};
                       });
  registry.AddCallback("mailtrail_orders", "Stored orders by type, status and terminal flag.",
                       metrics::MetricType::kGauge, [stats] {
                         std::lock_guard lock(stats->mutex);
                         return stats->by_state;
                       });
  registry.AddCallback("mailtrail_orders_due", "Non-terminal orders due now, by polling tier.",
                       metrics::MetricType::kGauge, [stats] {
                         std::lock_guard lock(stats->mutex);
                         return stats->due;
                       });
  registry.AddCallback(
      "mailtrail_freshness_lag_seconds",
      "How late the most overdue order of each polling tier is (0: nothing overdue).",
      metrics::MetricType::kGauge, [stats] {
        std::lock_guard lock(stats->mutex);
        return stats->freshness;
      });
  registry.AddCallback(
      "mailtrail_last_success_timestamp_seconds",
      "Unix time of the last successful discovery and full scan seen by this replica.",
      metrics::MetricType::kGauge, [scheduler] {
        std::vector<metrics::Sample> samples;
        const auto& state = scheduler->state();
        const auto seconds = [](domain::Timestamp t) {
          return std::chrono::duration<double>(t.time_since_epoch()).count();
        };
        if (state.last_discovery) {
          samples.push_back({{{"job", "discovery"}}, seconds(*state.last_discovery)});
        }
        if (state.last_full_scan) {
          samples.push_back({{{"job", "full_scan"}}, seconds(*state.last_full_scan)});
        }
        return samples;
      });
  registry.AddCallback(
      "mailtrail_leader", "1 while this replica runs discovery and full scans.",
      metrics::MetricType::kGauge, [scheduler] {
        return std::vector<metrics::Sample>{{{}, scheduler->state().leader ? 1.0 : 0.0}};
      });
  registry.AddCallback("mailtrail_replicas", "Live mailtrail replicas sharing the database.",
                       metrics::MetricType::kGauge, [scheduler] {
                         return std::vector<metrics::Sample>{
                             {{}, static_cast<double>(scheduler->state().live_replicas)}};
                       });
  registry.AddCallback("mailtrail_webhook_queue", "Webhook refreshes waiting to run.",
                       metrics::MetricType::kGauge, [scheduler] {
                         return std::vector<metrics::Sample>{
                             {{}, static_cast<double>(scheduler->state().webhook_queue)}};
                       });
  registry.AddCallback(
      "mailtrail_webhook_overflow_total",
      "Webhook refreshes that found the queue full and were left to the scheduler.",
      metrics::MetricType::kCounter, [scheduler] {
        return std::vector<metrics::Sample>{
            {{}, static_cast<double>(scheduler->state().webhook_overflow)}};
      });
  registry.AddCallback(
      "mailtrail_webhook_deliveries_total",
      "Webhook requests by result (accepted, ignored, duplicate, refused_401, ...).",
      metrics::MetricType::kCounter, [&server] {
        std::vector<metrics::Sample> samples;
        for (const auto& [result, count] : server.Counts()) {
          samples.push_back({{{"result", result}}, static_cast<double>(count)});
        }
        return samples;
      });
  registry.AddCallback(
      "mailtrail_database_errors_total",
      "Database calls that failed because the connection was lost.", metrics::MetricType::kCounter,
      [db] {
        return std::vector<metrics::Sample>{{{}, static_cast<double>(db->failures())}};
      });
  registry.AddCallback(
      "mailtrail_database_reconnects_total", "Database connections re-established after a loss.",
      metrics::MetricType::kCounter, [db] {
        return std::vector<metrics::Sample>{{{}, static_cast<double>(db->reconnects())}};
      });
}

}  // namespace

int RunDaemon(const config::Config& config, const CommandLine& line) {
  metrics::Registry registry;
  // Histograms are created up front: the client observes latencies from its first request on.
  std::map<postgrid::EndpointKind, metrics::Histogram*> api_latency;
  for (auto kind :
       {postgrid::EndpointKind::kRetrieve, postgrid::EndpointKind::kList,
        postgrid::EndpointKind::kListReturnEnvelopes, postgrid::EndpointKind::kListEnvelopeOrders,
        postgrid::EndpointKind::kProgress, postgrid::EndpointKind::kEvents}) {
    api_latency[kind] = &registry.GetHistogram(
        "mailtrail_api_request_duration_seconds",
        "PostGrid API response latency (request sent to response read), by endpoint.",
        metrics::DefaultLatencyBuckets(),
        {{"endpoint", std::string(postgrid::EndpointKindName(kind))}});
  }
  Runtime runtime(config, /*leader_jobs=*/true,
                  [api_latency](postgrid::EndpointKind kind, double seconds) {
                    if (auto it = api_latency.find(kind); it != api_latency.end()) {
                      it->second->Observe(seconds);
                    }
                  });
  auto& webhook_latency = registry.GetHistogram(
      "mailtrail_webhook_to_row_seconds",
      "From a verified webhook's arrival to its order's refresh being written (coalesced ones "
      "count from the first).",
      metrics::DefaultLatencyBuckets());
  runtime.scheduler->SetWebhookLatencyCallback(
      [&webhook_latency](double seconds) { webhook_latency.Observe(seconds); });
  auto& io = runtime.io;
  DaemonState state;
  auto stats = std::make_shared<OrderStats>();

  webhook::ServerOptions webhook_options;
  webhook_options.host = config.webhook.listen.host;
  webhook_options.port = config.webhook.listen.port;
  webhook_options.path = config.webhook.path;
  webhook_options.secrets = config.webhook.secrets;
  webhook_options.max_age = config.webhook.max_age;
  webhook_options.max_body = config.webhook.max_body;
  auto* db = runtime.db.get();
  auto* scheduler = runtime.scheduler.get();
  webhook::Server webhook_server(
      io.get_executor(), webhook_options,
      webhook::GroupCommit{[db](std::vector<domain::WebhookDelivery> deliveries) {
        return RecordDeliveries(db, std::move(deliveries));
      }},
      [scheduler](domain::OrderRef ref, std::int64_t delivery_id) {
        scheduler->Trigger(std::move(ref), delivery_id);
      });
  scheduler->SetProcessedCallback([&io, db](std::vector<std::int64_t> ids) {
    net::co_spawn(io, MarkProcessed(db, std::move(ids)), [](const std::exception_ptr& error) {
      LogIfFailed(error, "could not mark webhook deliveries processed");
    });
  });

  RegisterMetrics(registry, runtime, stats, webhook_server);
  metrics::HttpServerOptions metrics_options;
  metrics_options.host = config.metrics.listen.host;
  metrics_options.port = config.metrics.listen.port;
  metrics::HttpServer metrics_server(io.get_executor(), metrics_options, registry, [&state, db] {
    if (!state.migrated) return std::optional<std::string>(state.not_ready_reason);
    if (!db->reachable()) return std::optional<std::string>("database unreachable");
    return std::optional<std::string>();
  });

  try {
    metrics_server.Start();
    spdlog::info("metrics, /healthz and /readyz on {}:{}", metrics_options.host,
                 metrics_server.Port());
  } catch (const std::exception& e) {
    spdlog::critical("cannot listen for metrics on {}: {}",
                     config::FormatHostPort(config.metrics.listen), e.what());
    return 1;
  }

  net::steady_timer startup_timer(io);
  net::steady_timer stats_timer(io);
  net::steady_timer watchdog_timer(io);
  net::steady_timer shutdown_timer(io);

  auto begin_shutdown = [&](const char* why) {
    if (state.stopping) return;
    state.stopping = true;
    spdlog::info("{}: stopping (in-flight writes finish)", why);
    sd_notify(0, "STOPPING=1");
    webhook_server.Stop();
    scheduler->Stop();
    startup_timer.cancel();
    stats_timer.cancel();
    watchdog_timer.cancel();
    // Give in-flight refreshes up to 8 s (systemd's stop timeout is longer), then stop the loop.
    net::co_spawn(
        io,
        [](Runtime* runtime, metrics::HttpServer* metrics_server,
           net::steady_timer* timer) -> net::awaitable<void> {
          for (int i = 0; i < 80 && !runtime->scheduler->stopped(); ++i) {
            co_await Sleep(*timer, 100ms);
          }
          metrics_server->Stop();
          runtime->io.stop();
        }(&runtime, &metrics_server, &shutdown_timer),
        net::detached);
  };

  net::signal_set signals(io, SIGINT, SIGTERM);
  signals.async_wait([&](const boost::system::error_code& error, int signal) {
    if (!error) begin_shutdown(signal == SIGTERM ? "SIGTERM" : "SIGINT");
  });

  const auto migrations = ResolveMigrationsDir(line.Value("--migrations"));
  net::co_spawn(
      io,
      [](Runtime* runtime, DaemonState* state, std::filesystem::path directory,
         net::steady_timer* timer, webhook::Server* server,
         const config::Config* config) -> net::awaitable<void> {
        const bool migrated =
            co_await MigrateWithBackoff(runtime->db.get(), directory, state, timer);
        if (state->stopping) co_return;
        if (!migrated) {
          state->exit_code = 1;
          runtime->io.stop();
          co_return;
        }
        state->migrated = true;
        try {
          server->Start();
        } catch (const std::exception& e) {
          spdlog::critical("cannot listen for webhooks on {}: {}",
                           config::FormatHostPort(config->webhook.listen), e.what());
          state->exit_code = 1;
          runtime->io.stop();
          co_return;
        }
        spdlog::info("webhooks on {}:{}{}", config->webhook.listen.host, server->Port(),
                     config->webhook.path);
        runtime->scheduler->Start();
        sd_notify(0, "READY=1\nSTATUS=migrations applied, listening, syncing");
        spdlog::info("mailtrail is running");
        // A delivery answered 200 promised a refresh; the previous run may have died before it.
        try {
          const auto pending = co_await LoadUnprocessed(runtime->db.get());
          if (!pending.empty()) {
            spdlog::info(
                "refreshing the orders of {} webhook deliveries a previous run accepted "
                "but did not process",
                pending.size());
          }
          for (const auto& [ref, delivery_id] : pending) {
            if (state->stopping) break;
            runtime->scheduler->Trigger(ref, delivery_id);
          }
        } catch (const std::exception& e) {
          spdlog::warn("could not load unprocessed webhook deliveries: {}", e.what());
        }
      }(&runtime, &state, migrations, &startup_timer, &webhook_server, &config),
      [&](const std::exception_ptr& error) {
        if (!error) return;
        LogIfFailed(error, "start-up failed");
        state.exit_code = 1;
        io.stop();
      });

  // Order statistics for /metrics and the systemd STATUS line, refreshed off the I/O thread.
  net::co_spawn(
      io,
      [](sync::DbExecutor* db, std::shared_ptr<OrderStats> stats, DaemonState* state,
         net::steady_timer* timer, sync::Scheduler* scheduler) -> net::awaitable<void> {
        while (!state->stopping) {
          if (state->migrated) {
            try {
              co_await RefreshStats(db, stats);
              double orders = 0, due = 0;
              {
                std::lock_guard lock(stats->mutex);
                for (const auto& s : stats->by_state) orders += s.value;
                for (const auto& s : stats->due) due += s.value;
              }
              const std::string status = "STATUS=" + std::to_string(static_cast<long>(orders)) +
                                         " orders, " + std::to_string(static_cast<long>(due)) +
                                         " due" + (scheduler->state().leader ? ", leader" : "");
              sd_notify(0, status.c_str());
            } catch (const std::exception& e) {
              spdlog::debug("order statistics not refreshed: {}", e.what());
            }
          }
          co_await Sleep(*timer, 15s);
        }
      }(db, stats, &state, &stats_timer, scheduler),
      net::detached);

  // The watchdog is pinged from the event loop itself, so a hung loop stops the pings.
  std::uint64_t watchdog_usec = 0;
  if (sd_watchdog_enabled(0, &watchdog_usec) > 0 && watchdog_usec > 0) {
    net::co_spawn(
        io,
        [](DaemonState* state, net::steady_timer* timer, std::chrono::milliseconds period)
            -> net::awaitable<void> {
          while (!state->stopping) {
            sd_notify(0, "WATCHDOG=1");
            co_await Sleep(*timer, period);
          }
        }(&state, &watchdog_timer,
            std::chrono::milliseconds(static_cast<std::int64_t>(watchdog_usec / 2000))),
        net::detached);
  }

  io.run();
  spdlog::info("mailtrail stopped");
  return state.exit_code;
}

}  // namespace mailtrail::app
