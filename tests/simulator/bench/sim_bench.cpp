// Load generator for postgrid-sim's README figures: starts the simulator (SimProcess), records
// its startup time and memory, then drives GET /{type}/{id} over keep-alive connections for a
// bounded time and count. Not a test; run by hand (see tests/simulator/README.md).
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

// clang-format off
// Boost.Asio 1.74's awaitable.hpp uses std::exchange without including <utility>.
#include <utility>
#include <boost/asio.hpp>
#include <boost/beast.hpp>
// clang-format on
#include <utility>

#include "sim_process.hpp"

namespace {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = net::ip::tcp;
using mailtrail::sim::testing::SimProcess;

struct Totals {
  uint64_t ok = 0, failed = 0, bytes = 0;
};

std::string ProcStatus(pid_t pid, const std::string& key) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(key + ":", 0) == 0) return line.substr(key.size() + 1);
  }
  return "?";
}

net::awaitable<void> Client(std::string host, uint16_t port, std::vector<std::string>* targets,
                            size_t offset, std::chrono::steady_clock::time_point until,
                            uint64_t max_requests, Totals* totals) {
  beast::tcp_stream stream(co_await net::this_coro::executor);
  boost::system::error_code ec;
  stream.expires_after(std::chrono::seconds(10));
  co_await stream.async_connect(tcp::endpoint(net::ip::make_address(host), port),
                                net::redirect_error(net::use_awaitable, ec));
  if (ec) {
    ++totals->failed;
    co_return;
  }
  beast::flat_buffer buffer;
  for (uint64_t i = offset;
       std::chrono::steady_clock::now() < until && totals->ok + totals->failed < max_requests;
       ++i) {
    http::request<http::empty_body> req{http::verb::get, (*targets)[i % targets->size()], 11};
    req.set(http::field::host, host);
    req.set("X-API-Key", "test_sk_sim");
    req.keep_alive(true);
    stream.expires_after(std::chrono::seconds(10));
    co_await http::async_write(stream, req, net::redirect_error(net::use_awaitable, ec));
    if (ec) break;
    http::response<http::string_body> res;
    co_await http::async_read(stream, buffer, res, net::redirect_error(net::use_awaitable, ec));
    if (ec) break;
    if (res.result_int() == 200) {
      ++totals->ok;
      totals->bytes += res.body().size();
    } else {
      ++totals->failed;
    }
  }
  if (ec) ++totals->failed;
}

}  // namespace

int main(int argc, char** argv) {
  std::string orders = "100000";
  int connections = 8;
  double seconds = 10;
  uint64_t max_requests = 2'000'000;
  uint64_t max_rss_mib = 0;  // 0 = no check
  double min_rps = 0;        // 0 = no check
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i];
    const std::string value = argv[i + 1];
    if (flag == "--orders")
      orders = value;
    else if (flag == "--connections")
      connections = std::stoi(value);
    else if (flag == "--seconds")
      seconds = std::stod(value);
    else if (flag == "--max-requests")
      max_requests = std::stoull(value);
    else if (flag == "--max-rss-mib")
      max_rss_mib = std::stoull(value);
    else if (flag == "--min-rps")
      min_rps = std::stod(value);
    else {
      std::cerr << "usage: postgrid-sim-bench [--orders N] [--connections C] [--seconds S] "
                   "[--max-requests M] [--max-rss-mib MIB] [--min-rps R]\n";
      return 2;
    }
  }
  const auto t0 = std::chrono::steady_clock::now();
  SimProcess sim({"--orders", orders, "--seed", "7", "--paused", "--live-fraction", "0.5"},
                 std::chrono::minutes(10));
  const double startup =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::cout << "orders=" << orders << " startup_s=" << startup
            << " VmRSS=" << ProcStatus(sim.pid(), "VmRSS")
            << " VmHWM=" << ProcStatus(sim.pid(), "VmHWM") << std::endl;

  // Ids of test-mode orders of every flat type, from the control API.
  std::vector<std::string> targets;
  for (const char* type :
       {"letters", "postcards", "cheques", "self_mailers", "boxes", "snap_packs"}) {
    const auto r = sim.Get(std::string("/__sim/orders?live=false&limit=500&type=") + type);
    size_t pos = 0;
    while ((pos = r.body.find("\"id\":\"", pos)) != std::string::npos) {
      pos += 6;
      const size_t end = r.body.find('"', pos);
      targets.push_back("/print-mail/v1/" + std::string(type) + "/" +
                        r.body.substr(pos, end - pos));
    }
  }
  if (targets.empty()) {
    std::cerr << "no orders to fetch\n";
    return 1;
  }
  net::io_context ioc;
  Totals totals;
  const auto start = std::chrono::steady_clock::now();
  const auto until = start + std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                                 std::chrono::duration<double>(seconds));
  for (int c = 0; c < connections; ++c) {
    net::co_spawn(ioc,
                  Client(sim.host(), sim.port(), &targets, static_cast<size_t>(c) * 7919, until,
                         max_requests, &totals),
                  net::detached);
  }
  ioc.run();
  const double elapsed =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::cout << "GET /{type}/{id}: connections=" << connections << " requests=" << totals.ok
            << " failed=" << totals.failed << " seconds=" << elapsed
            << " rps=" << static_cast<uint64_t>(static_cast<double>(totals.ok) / elapsed)
            << " avg_body_bytes=" << (totals.ok ? totals.bytes / totals.ok : 0)
            << " sim_VmRSS_after=" << ProcStatus(sim.pid(), "VmRSS") << std::endl;
  // Let every order live out its plan (30 simulated days), then measure memory again: the
  // ground truth and events only grow.
  const auto advanced = sim.Post("/__sim/advance", R"({"duration":"30d"})");
  const std::string rss_lived = ProcStatus(sim.pid(), "VmRSS");
  std::cout << "after 30 simulated days (HTTP " << advanced.status << "): VmRSS=" << rss_lived
            << " VmHWM=" << ProcStatus(sim.pid(), "VmHWM") << std::endl;
  const double rps = static_cast<double>(totals.ok) / elapsed;
  const uint64_t hwm_mib = std::stoull(ProcStatus(sim.pid(), "VmHWM")) / 1024;
  const bool rps_met = min_rps <= 0 || rps >= min_rps;
  const bool rss_met = max_rss_mib == 0 || hwm_mib <= max_rss_mib;
  std::cout << "GET rate " << static_cast<uint64_t>(rps) << "/s (target >= " << min_rps
            << "): " << (rps_met ? "PASS" : "FAIL") << "; peak RSS " << hwm_mib
            << " MiB (target <= " << max_rss_mib << "): " << (rss_met ? "PASS" : "FAIL")
            << std::endl;
  if (const char* results = std::getenv("MAILTRAIL_BENCH_RESULTS");
      results != nullptr && *results != '\0') {
    std::ofstream out(results, std::ios::app);
    out << "| postgrid-sim GET /{type}/{id} (" << orders << " orders, " << connections
        << " keep-alive connections) | " << static_cast<uint64_t>(rps) << " req/s | >= " << min_rps
        << " | " << (rps_met ? "PASS" : "FAIL") << " |\n";
    out << "| postgrid-sim peak RSS (" << orders << " orders, after 30 simulated days) | "
        << hwm_mib << " MiB | <= " << max_rss_mib << " MiB | " << (rss_met ? "PASS" : "FAIL")
        << " |\n";
  }
  if (!rss_met) std::cerr << "peak RSS " << hwm_mib << " MiB exceeds " << max_rss_mib << " MiB\n";
  if (!rps_met) std::cerr << "GET rate " << rps << "/s is under " << min_rps << "/s\n";
  return totals.failed == 0 && advanced.status == 200 && rps_met && rss_met ? 0 : 1;
}
