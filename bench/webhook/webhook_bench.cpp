// Webhook benchmarks (issue 10 benchmark 5, issue 7's latency target) against the real
// `mailtrail run`, a real PostgreSQL (MAILTRAIL_TEST_DSN, from scripts/pg_tmp.sh) and postgrid-sim
// as the API.
//
//   webhook_bench ingest  [--deliveries N] [--seconds S] [--connections C] [--orders M]
//     A bounded burst (N deliveries or S seconds, whichever ends first) of genuine deliveries,
//     alternately JWT and JSON (JSON `t` alternately in milliseconds and seconds), each body
//     unique, naming real orders of the simulator, sent by this program's own load generator over
//     C keep-alive connections on loopback and signed with the daemon's secrets (the simulator's
//     signing code). Figure: deliveries answered 2xx whose body digest is found in
//     webhook_deliveries as verified, per second of the burst; response p50/p99.
//     Targets: >= 5,000/s, p99 < 50 ms, and no 2xx for a delivery that is not stored.
//
//   webhook_bench latency [--rate R] [--seconds S] [--orders M (default 2000)]
//     R real changes per second made in the simulator (one planned step of a live order each,
//     round robin so an order's steps are seconds apart); the simulator announces each by one
//     webhook (JWT for letters, postcards, cheques and self-mailers, JSON for boxes and snap
//     packs). A poller sees order_changes rows appear (every 5 ms); figure: time from the step to
//     the order's first new row, p50/p99 (an upper bound on webhook arrival -> row). The daemon's
//     own histogram mailtrail_webhook_to_row_seconds is printed beside it. Target: p99 < 500 ms,
//     and every step that changed a tracked field reaches the database.
//
// Exit status: 0 when every target is met, 1 on a miss, 2 on a setup failure. Rows
// `| benchmark | figure | target | PASS/FAIL |` are appended to $MAILTRAIL_BENCH_RESULTS when set.
// clang-format off
#include <utility>  // first: Asio 1.74's awaitable.hpp uses std::exchange without it
// clang-format on
#include <fcntl.h>
#include <openssl/sha.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <iterator>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <pqxx/pqxx>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "e2e_world.hpp"
#include "mailtrail_process.hpp"
#include "pg_test_database.hpp"
#include "signing.hpp"
#include "sim_process.hpp"

namespace mailtrail::bench {
namespace {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = net::ip::tcp;
using Clock = std::chrono::steady_clock;
using nlohmann::json;
using namespace std::chrono_literals;

constexpr const char* kLiveKey = "live_sk_sim";
constexpr const char* kJwtSecret = "whsec_bench_jwt_secret_0123456789";
constexpr const char* kJsonSecret = "whsec_bench_json_secret_0123456789";
constexpr const char* kPath = "/webhooks/postgrid";

struct Options {
  std::string mode;
  long deliveries = 50000;
  double seconds = 20;
  int connections = 32;
  int orders = 500;
  double rate = 100;
};

Options ParseOptions(int argc, char** argv) {
  Options options;
  if (argc < 2) throw std::invalid_argument("usage: webhook_bench ingest|latency [options]");
  options.mode = argv[1];
  bool orders_given = false;
  for (int i = 2; i < argc; ++i) {
    const std::string flag = argv[i];
    if (i + 1 >= argc) throw std::invalid_argument(flag + " needs a value");
    const std::string value = argv[++i];
    if (flag == "--deliveries") {
      options.deliveries = std::stol(value);
    } else if (flag == "--seconds") {
      options.seconds = std::stod(value);
    } else if (flag == "--connections") {
      options.connections = std::stoi(value);
    } else if (flag == "--orders") {
      options.orders = std::stoi(value);
      orders_given = true;
    } else if (flag == "--rate") {
      options.rate = std::stod(value);
    } else {
      throw std::invalid_argument("unknown flag " + flag);
    }
  }
  // Latency: enough orders that each is stepped once every ~15 s at most, so a step's row is not
  // confused with the next step's of the same order.
  if (options.mode == "latency" && options.seconds == 20) options.seconds = 30;
  if (options.mode == "latency" && !orders_given) options.orders = 2000;
  return options;
}

/// Appends one table row to $MAILTRAIL_BENCH_RESULTS (when set) and prints it.
void Report(const std::string& benchmark, const std::string& figure, const std::string& target,
            bool pass) {
  const std::string row =
      "| " + benchmark + " | " + figure + " | " + target + " | " + (pass ? "PASS" : "FAIL") + " |";
  std::cout << row << std::endl;
  if (const char* path = std::getenv("MAILTRAIL_BENCH_RESULTS"); path && *path) {
    std::ofstream(path, std::ios::app) << row << "\n";
  }
}

std::string Fixed(double value, int decimals) {
  char text[64];
  std::snprintf(text, sizeof text, "%.*f", decimals, value);
  return text;
}

/// The 1-minute load average, for the record beside figures measured on a shared machine.
std::string LoadAverage() {
  std::ifstream in("/proc/loadavg");
  std::string first;
  in >> first;
  return first.empty() ? "?" : first;
}

double Percentile(std::vector<double> values, double p) {
  if (values.empty()) return 0;
  std::sort(values.begin(), values.end());
  const auto rank = static_cast<std::size_t>(p * static_cast<double>(values.size() - 1) + 0.5);
  return values[std::min(rank, values.size() - 1)];
}

std::string Sha256Hex(const std::string& bytes) {
  unsigned char digest[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(bytes.data()), bytes.size(), digest);
  return sim::HexLower(std::string_view(reinterpret_cast<const char*>(digest), sizeof digest));
}

std::string IsoMillis(std::chrono::system_clock::time_point t) {
  const auto ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
  const std::time_t seconds = ms / 1000;
  std::tm tm{};
  gmtime_r(&seconds, &tm);
  char text[80];
  std::snprintf(text, sizeof text, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                static_cast<int>(ms % 1000));
  return text;
}

/// `mailtrail run` as a child process, its output in a log file: the build's binary, or the one
/// $MAILTRAIL_BENCH_DAEMON names (to compare two builds of the daemon on the same machine and
/// load). SIGKILL on destruction if still running.
class Daemon {
 public:
  Daemon(const std::vector<std::string>& args, std::filesystem::path log_path)
      : log_path_(std::move(log_path)) {
    const char* override_binary = std::getenv("MAILTRAIL_BENCH_DAEMON");
    std::string binary =
        override_binary && *override_binary ? override_binary : e2e::MailtrailBinary();
    std::cout << "daemon: " << binary << std::endl;
    pid_ = ::fork();
    if (pid_ < 0) throw std::runtime_error("fork failed");
    if (pid_ == 0) {
      const int fd = ::open(log_path_.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0600);
      if (fd >= 0) {
        ::dup2(fd, STDOUT_FILENO);
        ::dup2(fd, STDERR_FILENO);
        ::close(fd);
      }
      std::vector<std::string> copy = args;
      std::vector<char*> argv{binary.data()};
      for (auto& arg : copy) argv.push_back(arg.data());
      argv.push_back(nullptr);
      ::execv(binary.c_str(), argv.data());
      ::_exit(127);
    }
  }
  ~Daemon() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
  }
  Daemon(const Daemon&) = delete;
  Daemon& operator=(const Daemon&) = delete;

  /// SIGTERM, then waits up to `timeout`; the exit code, or -1 when it had to be killed.
  int Terminate(std::chrono::milliseconds timeout) {
    ::kill(pid_, SIGTERM);
    const auto deadline = Clock::now() + timeout;
    while (Clock::now() < deadline) {
      int status = 0;
      if (::waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
      }
      std::this_thread::sleep_for(20ms);
    }
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
    pid_ = -1;
    return -1;
  }
  /// User + system CPU seconds the daemon has used so far (/proc/PID/stat), 0 if unreadable.
  double CpuSeconds() const {
    std::ifstream in("/proc/" + std::to_string(pid_) + "/stat");
    std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    const auto close = text.rfind(')');  // the command name may hold spaces
    if (close == std::string::npos) return 0;
    std::istringstream fields(text.substr(close + 2));
    std::string field;
    double ticks = 0;
    for (int i = 3; i <= 15 && fields >> field; ++i) {
      if (i == 14 || i == 15) ticks += std::stod(field);  // utime, stime
    }
    return ticks / static_cast<double>(::sysconf(_SC_CLK_TCK));
  }
  std::string Log() const {
    std::ifstream in(log_path_);
    std::ostringstream text;
    text << in.rdbuf();
    return text.str();
  }

 private:
  pid_t pid_ = -1;
  std::filesystem::path log_path_;
};

/// The simulator, a fresh database and `mailtrail run` between them, with webhooks the only
/// trigger after start-up (polls, discovery and full scans an hour apart).
class World {
 public:
  World(std::vector<std::string> sim_args, double requests_per_second) : sim_(std::move(sim_args)) {
    e2e::MailtrailConfig config;
    config.api_url = sim_.api_url();
    config.api_key = kLiveKey;
    config.database_url = database_.dsn();
    config.requests_per_second = requests_per_second;
    config.interval = "1h";
    config.carrier_interval = "1h";
    config.discovery_interval = "1h";
    config.full_scan_interval = "1h";
    config.webhook_port = webhook_port_;
    config.metrics_port = metrics_port_;
    config.secrets = {kJwtSecret, kJsonSecret};
    config.log_level = "warn";
    const auto path = dir_.Write("mailtrail.yaml", config.Yaml());
    daemon_ = std::make_unique<Daemon>(std::vector<std::string>{"run", "--config", path.string()},
                                       dir_.path() / "daemon.log");
  }

  /// Waits until the start-up full scan has recorded every live order and the API is quiet.
  void WaitUntilSynced(std::size_t live_orders) {
    const bool synced = e2e::WaitUntil(
        [&] {
          return e2e::Count(database_.dsn(), "SELECT count(*) FROM mailtrail.orders") ==
                 static_cast<long>(live_orders);
        },
        180s);
    if (!synced) throw std::runtime_error("the daemon did not sync the world:\n" + daemon_->Log());
    if (!e2e::WaitForApiQuiet(sim_, 1500ms, 60s)) {
      throw std::runtime_error("API traffic did not settle after start-up");
    }
  }

  sim::testing::SimProcess& sim() { return sim_; }
  const std::string& dsn() const { return database_.dsn(); }
  std::uint16_t webhook_port() const { return webhook_port_; }
  std::uint16_t metrics_port() const { return metrics_port_; }
  std::string webhook_url() const {
    return "http://127.0.0.1:" + std::to_string(webhook_port_) + kPath;
  }
  Daemon& daemon() { return *daemon_; }

 private:
  std::uint16_t webhook_port_ = e2e::FreePort();
  std::uint16_t metrics_port_ = e2e::FreePort();
  e2e::TempDir dir_;
  testing::TestDatabase database_;
  sim::testing::SimProcess sim_;
  std::unique_ptr<Daemon> daemon_;
};

// ---- ingest -------------------------------------------------------------------------------

struct Prepared {
  std::string request;  // the whole HTTP/1.1 request, sent byte for byte
  std::string body_sha256;
};

/// One delivery per index: JWT on even indexes, JSON on odd ones (its `t` in milliseconds or
/// seconds in turn); `data` is the real order with a unique `updatedAt`, so no two bodies match.
std::vector<Prepared> PrepareDeliveries(const std::vector<json>& orders, long count,
                                        std::uint16_t port) {
  std::vector<Prepared> prepared;
  prepared.reserve(static_cast<std::size_t>(count));
  const auto wall = std::chrono::system_clock::now();
  const std::int64_t now_s =
      std::chrono::duration_cast<std::chrono::seconds>(wall.time_since_epoch()).count();
  for (long i = 0; i < count; ++i) {
    json data = orders[static_cast<std::size_t>(i) % orders.size()];
    data["updatedAt"] = IsoMillis(wall - std::chrono::hours(1) + std::chrono::milliseconds(i));
    const std::string type = data["object"].get<std::string>() + ".updated";
    std::string body;
    std::string headers;
    if (i % 2 == 0) {
      const json claims = {{"type", type}, {"data", data}, {"iat", now_s}};
      body = sim::MakeJwtHs256(sim::kJwtHeaderHs256, claims.dump(), kJwtSecret);
      headers = "Content-Type: application/jwt\r\n";
    } else {
      const json event = {{"id", "event_bench_" + std::to_string(i)},
                          {"object", "event"},
                          {"type", type},
                          {"live", true},
                          {"createdAt", data["updatedAt"]},
                          {"data", data},
                          {"updatedFields", {{"status", data["status"]}}}};
      body = event.dump();
      const std::int64_t t = (i % 4 == 1) ? now_s * 1000 : now_s;
      headers = "Content-Type: application/json\r\nPostGrid-Signature: " +
                sim::PostGridSignature(kJsonSecret, t, body) + "\r\n";
    }
    Prepared p;
    p.request = "POST " + std::string(kPath) +
                " HTTP/1.1\r\nHost: 127.0.0.1:" + std::to_string(port) +
                "\r\nUser-Agent: mailtrail-webhook-bench\r\n" + headers +
                "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
    p.body_sha256 = Sha256Hex(body);
    prepared.push_back(std::move(p));
  }
  return prepared;
}

struct LoadState {
  const std::vector<Prepared>* prepared = nullptr;
  std::size_t next = 0;
  Clock::time_point start;
  Clock::time_point stop_sending;  // no new request after this
  Clock::time_point last_response;
  std::vector<int> status;         // per delivery; 0: not answered
  std::vector<double> latency_ms;  // per delivery
  long connection_errors = 0;
};

/// One keep-alive connection: sends the next unsent delivery, waits for its answer, repeats.
/// A broken connection is counted and replaced.
net::awaitable<void> Connection(LoadState* state, std::uint16_t port) {
  auto executor = co_await net::this_coro::executor;
  const tcp::endpoint endpoint(net::ip::make_address("127.0.0.1"), port);
  while (state->next < state->prepared->size() && Clock::now() < state->stop_sending) {
    beast::tcp_stream stream(executor);
    beast::error_code ec;
    stream.expires_after(5s);
    co_await stream.async_connect(endpoint, net::redirect_error(net::use_awaitable, ec));
    if (ec) {
      ++state->connection_errors;
      continue;
    }
    stream.socket().set_option(tcp::no_delay(true));
    beast::flat_buffer buffer;
    while (state->next < state->prepared->size() && Clock::now() < state->stop_sending) {
      const std::size_t index = state->next++;
      const Prepared& p = (*state->prepared)[index];
      const auto sent = Clock::now();
      stream.expires_after(30s);
      co_await net::async_write(stream, net::buffer(p.request),
                                net::redirect_error(net::use_awaitable, ec));
      http::response<http::string_body> response;
      if (!ec) {
        co_await http::async_read(stream, buffer, response,
                                  net::redirect_error(net::use_awaitable, ec));
      }
      if (ec) {
        ++state->connection_errors;
        break;
      }
      const auto now = Clock::now();
      state->status[index] = response.result_int();
      state->latency_ms[index] = std::chrono::duration<double, std::milli>(now - sent).count();
      state->last_response = std::max(state->last_response, now);
      if (!response.keep_alive()) break;
    }
    stream.socket().shutdown(tcp::socket::shutdown_both, ec);
  }
}

int RunIngest(const Options& options) {
  World world({"--orders", std::to_string(options.orders), "--seed", "1010", "--paused",
               "--history-days", "3", "--live-fraction", "1"},
              400);
  auto summaries = e2e::SimOrders(world.sim(), true);
  world.WaitUntilSynced(summaries.size());

  // The real orders (GET by id), return envelope orders left out (nested route).
  std::vector<json> orders;
  for (const auto& [id, summary] : summaries) {
    const auto type = summary["type"].get<std::string>();
    if (type == "return_envelope_orders") continue;
    const auto result = world.sim().Api("GET", "/" + type + "/" + id, kLiveKey);
    if (result.status != 200) throw std::runtime_error("GET " + id + ": " + result.body);
    orders.push_back(json::parse(result.body));
  }
  std::cout << "ingest: " << orders.size() << " orders to name; preparing " << options.deliveries
            << " signed deliveries" << std::endl;
  const auto prepared = PrepareDeliveries(orders, options.deliveries, world.webhook_port());

  LoadState state;
  state.prepared = &prepared;
  state.status.assign(prepared.size(), 0);
  state.latency_ms.assign(prepared.size(), 0);
  net::io_context io;
  const double cpu_before = world.daemon().CpuSeconds();
  state.start = Clock::now();
  state.stop_sending = state.start + std::chrono::duration_cast<Clock::duration>(
                                         std::chrono::duration<double>(options.seconds));
  state.last_response = state.start;
  for (int c = 0; c < options.connections; ++c) {
    net::co_spawn(io, Connection(&state, world.webhook_port()), [](std::exception_ptr error) {
      if (!error) return;
      try {
        std::rethrow_exception(error);
      } catch (const std::exception& e) {
        std::cerr << "connection failed: " << e.what() << std::endl;
      }
    });
  }
  // Hard bound: whatever is in flight 30 s after the last send is abandoned.
  std::thread runner([&io] { io.run(); });
  const auto hard_stop = state.stop_sending + 30s;
  while (!io.stopped() && Clock::now() < hard_stop) std::this_thread::sleep_for(50ms);
  io.stop();
  runner.join();
  const double burst_s = std::chrono::duration<double>(state.last_response - state.start).count();
  // Includes the refreshes the deliveries triggered (GET, diff, write) and their bookkeeping.
  const double cpu_s = world.daemon().CpuSeconds() - cpu_before;

  long sent = 0;
  long ok = 0;
  long by_class[6] = {0, 0, 0, 0, 0, 0};
  std::vector<double> latencies;
  std::vector<std::size_t> ok_indexes;
  for (std::size_t i = 0; i < prepared.size(); ++i) {
    if (state.status[i] == 0) continue;
    ++sent;
    ++by_class[std::min(state.status[i] / 100, 5)];
    latencies.push_back(state.latency_ms[i]);
    if (state.status[i] / 100 == 2) {
      ++ok;
      ok_indexes.push_back(i);
    }
  }

  std::unordered_set<std::string> stored;
  {
    pqxx::connection connection(world.dsn());
    pqxx::read_transaction tx(connection);
    for (const auto& row :
         tx.exec("SELECT body_sha256 FROM mailtrail.webhook_deliveries WHERE verified")) {
      stored.insert(row[0].c_str());
    }
  }
  long confirmed = 0;
  for (const auto i : ok_indexes) confirmed += stored.count(prepared[i].body_sha256);
  const long ok_not_stored = ok - confirmed;

  const double rate = burst_s > 0 ? static_cast<double>(confirmed) / burst_s : 0;
  const double cpu_us = confirmed > 0 ? cpu_s * 1e6 / static_cast<double>(confirmed) : 0;
  const double p50 = Percentile(latencies, 0.50);
  const double p99 = Percentile(latencies, 0.99);
  std::cout << "ingest: " << sent << " answered (" << by_class[2] << " 2xx, " << by_class[4]
            << " 4xx, " << by_class[5] << " 5xx) over " << options.connections << " connections in "
            << Fixed(burst_s, 2) << " s; " << confirmed << " 2xx found in webhook_deliveries; "
            << ok_not_stored << " 2xx NOT stored; connection errors " << state.connection_errors
            << "\n"
            << "ingest: " << Fixed(rate, 0)
            << " recorded deliveries/s (target >= 5000); response p50 " << Fixed(p50, 2)
            << " ms, p99 " << Fixed(p99, 2) << " ms (target < 50), max "
            << Fixed(latencies.empty() ? 0 : *std::max_element(latencies.begin(), latencies.end()),
                     2)
            << " ms\n"
            << "ingest: daemon CPU " << Fixed(cpu_s, 2) << " s for the burst = " << Fixed(cpu_us, 0)
            << " us per recorded delivery (refreshes included), i.e. "
            << Fixed(cpu_us > 0 ? 1e6 / cpu_us : 0, 0)
            << " deliveries/s per core the daemon gets; load average " << LoadAverage()
            << std::endl;
  const std::string metrics = e2e::LocalGet(world.metrics_port(), "/metrics").body;
  for (const char* name : {"mailtrail_webhook_deliveries_total", "mailtrail_webhook_overflow_total",
                           "mailtrail_database_errors_total"}) {
    std::istringstream lines(metrics);
    for (std::string line; std::getline(lines, line);) {
      if (line.rfind(name, 0) == 0) std::cout << "daemon: " << line << "\n";
    }
  }
  const int daemon_exit = world.daemon().Terminate(15s);
  if (daemon_exit != 0) std::cout << "daemon exit " << daemon_exit << "\n" << world.daemon().Log();

  const bool rate_ok = rate >= 5000;
  const bool p99_ok = p99 < 50;
  const bool honest = ok_not_stored == 0;
  Report("webhook ingest: verified deliveries recorded per second (" + std::to_string(confirmed) +
             " in " + Fixed(burst_s, 1) + " s, " + std::to_string(options.connections) +
             " keep-alive connections; daemon CPU " + Fixed(cpu_us, 0) +
             " us/delivery; load average " + LoadAverage() + ")",
         Fixed(rate, 0) + "/s", ">= 5000/s", rate_ok);
  Report("webhook ingest: response time p50 / p99", Fixed(p50, 1) + " / " + Fixed(p99, 1) + " ms",
         "p99 < 50 ms", p99_ok);
  Report("webhook ingest: 2xx answers not stored", std::to_string(ok_not_stored), "0", honest);
  return rate_ok && p99_ok && honest ? 0 : 1;
}

// ---- latency ------------------------------------------------------------------------------

/// What of an order's simulator summary maps to order_changes fields (updatedAt excluded).
std::string TrackedState(const json& summary) {
  json copy = summary;
  copy.erase("updatedAt");
  return copy.dump();
}

struct Seen {
  std::mutex mutex;
  // order id -> times its new webhook-sourced order_changes rows were first seen.
  std::unordered_map<std::string, std::vector<Clock::time_point>> rows;
  std::atomic<bool> stop{false};
  std::string error;
};

void PollChanges(const std::string& dsn, long after_id, Seen* seen) {
  try {
    pqxx::connection connection(dsn);
    connection.prepare("new_rows",
                       "SELECT id, order_id FROM mailtrail.order_changes WHERE id > $1 "
                       "ORDER BY id");
    // Ids are drawn when a row is inserted, not when its transaction commits: a transaction that
    // drew lower ids can commit after one with higher ids (the daemon writes on two connections,
    // and a webhook worker's write holds many orders). So each poll looks back kLookBack ids
    // below the highest seen and remembers the ids it has counted; reading only `id > highest`
    // reported such rows as never written.
    constexpr long kLookBack = 5000;
    long last = after_id;
    std::unordered_set<long> counted;
    while (!seen->stop.load()) {
      pqxx::nontransaction tx(connection);
      const pqxx::result rows = tx.exec_prepared("new_rows", std::max(after_id, last - kLookBack));
      const auto now = Clock::now();
      if (!rows.empty()) {
        std::lock_guard lock(seen->mutex);
        for (const auto& row : rows) {
          const long id = row[0].as<long>();
          if (!counted.insert(id).second) continue;
          last = std::max(last, id);
          seen->rows[row[1].c_str()].push_back(now);
        }
      }
      std::this_thread::sleep_for(5ms);
    }
  } catch (const std::exception& e) {
    std::lock_guard lock(seen->mutex);
    seen->error = e.what();
  }
}

/// p50/p99 of a Prometheus histogram from the difference of two scrapes, as bucket upper bounds.
std::pair<std::string, std::string> HistogramPercentiles(const std::string& before,
                                                         const std::string& after,
                                                         const std::string& name) {
  auto buckets = [&name](const std::string& text) {
    std::map<double, double> out;
    std::istringstream lines(text);
    const std::string prefix = name + "_bucket{le=\"";
    for (std::string line; std::getline(lines, line);) {
      if (line.rfind(prefix, 0) != 0) continue;
      const auto end = line.find('"', prefix.size());
      const std::string le = line.substr(prefix.size(), end - prefix.size());
      const double bound = le == "+Inf" ? 1e300 : std::stod(le);
      out[bound] = std::stod(line.substr(line.rfind(' ') + 1));
    }
    return out;
  };
  const auto a = buckets(before);
  const auto b = buckets(after);
  if (b.empty()) return {"n/a", "n/a"};
  const double total = b.rbegin()->second - (a.empty() ? 0 : a.rbegin()->second);
  auto at = [&](double p) -> std::string {
    for (const auto& [bound, count] : b) {
      const double delta = count - (a.count(bound) ? a.at(bound) : 0);
      if (delta >= p * total)
        return bound > 1e299 ? "+Inf" : "<= " + Fixed(bound * 1000, 0) + " ms";
    }
    return "n/a";
  };
  return {at(0.5), at(0.99)};
}

int RunLatency(const Options& options) {
  World world(
      {"--orders", std::to_string(options.orders), "--seed", "2020", "--paused", "--history-days",
       "0", "--live-fraction", "1", "--start", "2026-03-10T15:00:00.000Z"},
      400);
  // One webhook per change: JWT for four types, JSON for the others (both formats measured).
  e2e::PostJson(
      world.sim(), "/__sim/webhook-targets",
      {{"url", world.webhook_url()},
       {"secret", kJwtSecret},
       {"format", "jwt"},
       {"mode", "live"},
       {"events",
        {"letter.created", "letter.updated", "postcard.created", "postcard.updated",
         "cheque.created", "cheque.updated", "self_mailer.created", "self_mailer.updated"}}});
  e2e::PostJson(
      world.sim(), "/__sim/webhook-targets",
      {{"url", world.webhook_url()},
       {"secret", kJsonSecret},
       {"format", "json"},
       {"mode", "live"},
       {"events", {"box.created", "box.updated", "snap_pack.created", "snap_pack.updated"}}});
  auto summaries = e2e::SimOrders(world.sim(), true);
  world.WaitUntilSynced(summaries.size());
  std::vector<std::string> active;
  std::unordered_map<std::string, std::string> state;
  for (const auto& [id, summary] : summaries) {
    if (summary["type"] == "return_envelope_orders") continue;
    active.push_back(id);
    state[id] = TrackedState(summary);
  }

  const long after_id =
      e2e::Count(world.dsn(), "SELECT coalesce(max(id), 0) FROM mailtrail.order_changes");
  const std::string metrics_before = e2e::LocalGet(world.metrics_port(), "/metrics").body;
  Seen seen;
  std::thread poller(PollChanges, world.dsn(), after_id, &seen);

  struct Step {
    std::string order;
    Clock::time_point at;
    bool changed = false;
  };
  std::vector<Step> steps;
  const auto period = std::chrono::duration_cast<Clock::duration>(
      std::chrono::duration<double>(1.0 / options.rate));
  const auto start = Clock::now();
  const auto end = start + std::chrono::duration_cast<Clock::duration>(
                               std::chrono::duration<double>(options.seconds));
  std::size_t cursor = 0;
  long behind = 0;
  for (long k = 0; !active.empty(); ++k) {
    const auto due = start + period * k;
    if (due >= end) break;
    if (Clock::now() < due) {
      std::this_thread::sleep_until(due);
    } else if (Clock::now() - due > 50ms) {
      ++behind;
    }
    cursor %= active.size();
    const std::string id = active[cursor];
    const auto at = Clock::now();
    const auto result = world.sim().Post("/__sim/orders/" + id + "/step");
    if (result.status == 422) {  // its plan is finished: drop it, try the next order now
      active.erase(active.begin() + static_cast<long>(cursor));
      --k;
      continue;
    }
    if (result.status != 200) throw std::runtime_error("step " + id + ": " + result.body);
    const std::string now_state = TrackedState(json::parse(result.body));
    steps.push_back({id, at, now_state != state[id]});
    state[id] = now_state;
    ++cursor;
  }
  const auto stepped = Clock::now();
  // Let the last changes land (generously: a miss shows as a missing row, not a hang).
  std::this_thread::sleep_for(5s);
  seen.stop = true;
  poller.join();
  if (!seen.error.empty()) throw std::runtime_error("poller: " + seen.error);
  const std::string metrics_after = e2e::LocalGet(world.metrics_port(), "/metrics").body;
  const double stepped_s = std::chrono::duration<double>(stepped - start).count();

  // Each step's latency: the first row of its order seen after the step and before the order's
  // next step.
  std::unordered_map<std::string, std::vector<std::size_t>> by_order;
  for (std::size_t i = 0; i < steps.size(); ++i) by_order[steps[i].order].push_back(i);
  std::vector<double> latencies;
  long changed = 0;
  long missing = 0;
  long unchanged_with_rows = 0;
  for (const auto& [order, indexes] : by_order) {
    const auto& times = seen.rows[order];
    for (std::size_t j = 0; j < indexes.size(); ++j) {
      const Step& step = steps[indexes[j]];
      const auto until =
          j + 1 < indexes.size() ? steps[indexes[j + 1]].at : Clock::time_point::max();
      std::optional<Clock::time_point> first;
      for (const auto t : times) {
        if (t >= step.at && t < until) {
          first = t;
          break;
        }
      }
      if (!step.changed) {
        if (first) ++unchanged_with_rows;
        continue;
      }
      ++changed;
      if (!first) {
        if (++missing <= 5) {
          std::cout << "latency: no order_changes row of " << order << " for its step at +"
                    << Fixed(std::chrono::duration<double>(step.at - start).count(), 3)
                    << " s before its next step\n";
        }
        continue;
      }
      latencies.push_back(std::chrono::duration<double, std::milli>(*first - step.at).count());
    }
  }
  const double p50 = Percentile(latencies, 0.50);
  const double p99 = Percentile(latencies, 0.99);
  const auto [hist_p50, hist_p99] =
      HistogramPercentiles(metrics_before, metrics_after, "mailtrail_webhook_to_row_seconds");
  const double achieved_rate = static_cast<double>(steps.size()) / stepped_s;
  std::cout << "latency: " << steps.size() << " steps in " << Fixed(stepped_s, 1) << " s ("
            << Fixed(achieved_rate, 1) << " changes/s, each one webhook; " << behind
            << " steps sent > 50 ms late); " << changed << " changed a tracked field, " << missing
            << " of them never reached order_changes; " << unchanged_with_rows
            << " others wrote rows anyway\n"
            << "latency: step -> order_changes row p50 " << Fixed(p50, 1) << " ms, p99 "
            << Fixed(p99, 1) << " ms (target p99 < 500), max "
            << Fixed(latencies.empty() ? 0 : *std::max_element(latencies.begin(), latencies.end()),
                     1)
            << " ms; daemon histogram mailtrail_webhook_to_row_seconds p50 " << hist_p50 << ", p99 "
            << hist_p99 << std::endl;
  const int daemon_exit = world.daemon().Terminate(15s);
  if (daemon_exit != 0) std::cout << "daemon exit " << daemon_exit << "\n" << world.daemon().Log();

  const bool rate_ok = achieved_rate >= 0.95 * options.rate;
  const bool p99_ok = !latencies.empty() && p99 < 500;
  const bool complete = missing == 0;
  Report("webhook -> order_changes row at " + Fixed(achieved_rate, 0) + " deliveries/s (" +
             std::to_string(latencies.size()) + " changes; daemon histogram p50 " + hist_p50 +
             ", p99 " + hist_p99 + "; load average " + LoadAverage() + ")",
         "p50 " + Fixed(p50, 1) + " ms, p99 " + Fixed(p99, 1) + " ms", "p99 < 500 ms at 100/s",
         rate_ok && p99_ok);
  Report("webhook latency: changes that never reached order_changes", std::to_string(missing), "0",
         complete);
  return rate_ok && p99_ok && complete ? 0 : 1;
}

}  // namespace
}  // namespace mailtrail::bench

int main(int argc, char** argv) {
  using namespace mailtrail::bench;
  try {
    const Options options = ParseOptions(argc, argv);
    ::unsetenv("MAILTRAIL_POSTGRID_API_KEY");
    ::unsetenv("MAILTRAIL_DATABASE_URL");
    ::unsetenv("MAILTRAIL_WEBHOOK_SECRETS");
    if (options.mode == "ingest") return RunIngest(options);
    if (options.mode == "latency") return RunLatency(options);
    std::cerr << "unknown mode " << options.mode << " (ingest|latency)\n";
    return 2;
  } catch (const std::exception& e) {
    std::cerr << "webhook_bench: " << e.what() << std::endl;
    return 2;
  }
}
