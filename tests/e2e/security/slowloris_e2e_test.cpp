// Slowloris (issue 9, Security): 1,000 concurrent slow connections against `mailtrail run`'s
// webhook listener: headers trickled a byte at a time, bodies trickled a byte at a time, and
// idle connections. While they are all open the listener keeps answering genuine deliveries
// (signed with a configured secret, each checked to land in webhook_deliveries), and the slow
// ones are cut off by the per-connection deadlines (webhook::ServerOptions: header 10 s, body
// 30 s), not by the client giving up.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <filesystem>
#include <iostream>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "e2e_world.hpp"
#include "mailtrail_process.hpp"
#include "pg_test_database.hpp"
#include "sim_process.hpp"

namespace mailtrail::e2e {
namespace {

using nlohmann::json;
using sim::testing::SimProcess;
using Clock = std::chrono::steady_clock;

constexpr const char* kLiveKey = "live_sk_sim";
constexpr const char* kSecret = "whsec_slowloris_e2e_0123456789";
constexpr const char* kPath = "/webhooks/postgrid";
constexpr int kSlowConnections = 1000;
// The listener's deadlines (webhook::ServerOptions defaults; the daemon does not change them).
constexpr auto kHeaderTimeout = 10s;
constexpr auto kBodyTimeout = 30s;
// How late a cut-off may come on a loaded 2-core machine, and how early (timer granularity).
constexpr auto kLateMargin = 20s;
constexpr auto kEarlyMargin = 1s;

enum class SlowKind { kIdle, kHeaderTrickle, kBodyTrickle };

const char* Name(SlowKind kind) {
  switch (kind) {
    case SlowKind::kIdle:
      return "idle";
    case SlowKind::kHeaderTrickle:
      return "header trickle";
    case SlowKind::kBodyTrickle:
      return "body trickle";
  }
  return "?";
}

/// One attacking connection: what it sends and when the server closed it.
struct SlowConnection {
  int fd = -1;
  SlowKind kind = SlowKind::kIdle;
  std::string to_send;   // trickled one byte per tick
  std::size_t sent = 0;  // bytes of to_send already written
  Clock::time_point opened;
  Clock::time_point body_started;  // body trickle: when the header was complete
  std::optional<Clock::time_point> closed;
  std::string received;  // whatever the server answered before closing
};

/// The number of open file descriptors of `pid` (its sockets among them).
long OpenFds(pid_t pid) {
  std::error_code ec;
  long count = 0;
  for (auto it = std::filesystem::directory_iterator("/proc/" + std::to_string(pid) + "/fd", ec);
       !ec && it != std::filesystem::directory_iterator(); it.increment(ec)) {
    ++count;
  }
  return count;
}

int ConnectBlocking(std::uint16_t port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) throw std::runtime_error("socket: " + std::string(std::strerror(errno)));
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  address.sin_port = htons(port);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0) {
    const std::string error = std::strerror(errno);
    ::close(fd);
    throw std::runtime_error("connect: " + error);
  }
  ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK);
  return fd;
}

/// Reads what the server sent; marks the connection closed on EOF or error.
void Drain(SlowConnection& connection, Clock::time_point now) {
  char buffer[4096];
  while (!connection.closed) {
    const ssize_t n = ::recv(connection.fd, buffer, sizeof buffer, 0);
    if (n > 0) {
      connection.received.append(buffer, static_cast<std::size_t>(n));
      continue;
    }
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
    if (n < 0 && errno == EINTR) continue;
    connection.closed = now;  // 0: orderly close; <0: reset
  }
}

class SlowlorisE2eTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ::unsetenv("MAILTRAIL_POSTGRID_API_KEY");
    ::unsetenv("MAILTRAIL_DATABASE_URL");
    ::unsetenv("MAILTRAIL_WEBHOOK_SECRETS");
    // 1,000 attacking sockets here and as many in the daemon (which inherits this limit).
    rlimit limit{};
    ASSERT_EQ(::getrlimit(RLIMIT_NOFILE, &limit), 0);
    const rlim_t wanted = 8192;
    if (limit.rlim_cur < wanted) {
      limit.rlim_cur = std::min<rlim_t>(wanted, limit.rlim_max);
      ASSERT_EQ(::setrlimit(RLIMIT_NOFILE, &limit), 0);
    }
    ASSERT_GE(limit.rlim_cur, static_cast<rlim_t>(kSlowConnections + 200))
        << "the hard RLIMIT_NOFILE (" << limit.rlim_max << ") is too low for this test";
  }

  std::uint16_t webhook_port_ = FreePort();
  std::uint16_t metrics_port_ = FreePort();
  TempDir dir_;
};

TEST_F(SlowlorisE2eTest, ThousandSlowConnectionsAreCutOffWhileGenuineDeliveriesLand) {
  mailtrail::testing::TestDatabase database;
  SimProcess sim({"--orders", "80", "--seed", "9001", "--paused", "--history-days", "0",
                  "--live-fraction", "1", "--start", "2026-03-10T15:00:00.000Z"});
  const auto world = SimOrders(sim, true);
  ASSERT_GE(world.size(), 60u);

  MailtrailConfig config;
  config.api_url = sim.api_url();
  config.api_key = kLiveKey;
  config.database_url = database.dsn();
  config.interval = "1h";
  config.carrier_interval = "1h";
  config.discovery_interval = "1h";
  config.full_scan_interval = "1h";
  config.webhook_port = webhook_port_;
  config.metrics_port = metrics_port_;
  config.secrets = {kSecret};
  const auto config_path = dir_.Write("mailtrail.yaml", config.Yaml());
  // The daemon starts with the soft limit systemd gives a service by default (1024; the hard
  // limit stays high), as deployed: 1,000 slow connections must not starve it of descriptors.
  rlimit limit{};
  ASSERT_EQ(::getrlimit(RLIMIT_NOFILE, &limit), 0);
  const rlim_t test_soft = limit.rlim_cur;
  limit.rlim_cur = std::min<rlim_t>(1024, limit.rlim_max);
  ASSERT_EQ(::setrlimit(RLIMIT_NOFILE, &limit), 0);
  DaemonProcess daemon({"run", "--config", config_path.string()}, dir_.path() / "daemon.log");
  limit.rlim_cur = test_soft;
  ASSERT_EQ(::setrlimit(RLIMIT_NOFILE, &limit), 0);
  ASSERT_TRUE(WaitUntil(
      [&] {
        return Count(database.dsn(), "SELECT count(*) FROM mailtrail.orders") ==
                   static_cast<long>(world.size()) &&
               LocalGet(metrics_port_, "/readyz").status == 200;
      },
      90s))
      << daemon.Log();
  const long baseline_fds = OpenFds(daemon.pid());
  ASSERT_GT(baseline_fds, 0);

  // ---- the attack -----------------------------------------------------------------------------
  const std::string header_text =
      "POST " + std::string(kPath) +
      " HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
      "PostGrid-Signature: t=1,v1=00\r\nX-Padding: " +
      std::string(200, 'p') + "\r\n";  // never terminated by the blank line
  const std::string body_header = "POST " + std::string(kPath) +
                                  " HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: "
                                  "application/json\r\nContent-Length: 100000\r\n\r\n";
  std::vector<SlowConnection> slow(kSlowConnections);
  const auto attack_start = Clock::now();
  for (int i = 0; i < kSlowConnections; ++i) {
    SlowConnection& c = slow[i];
    c.kind = static_cast<SlowKind>(i % 3);
    c.fd = ConnectBlocking(webhook_port_);
    c.opened = Clock::now();
    if (c.kind == SlowKind::kHeaderTrickle) c.to_send = header_text;
    if (c.kind == SlowKind::kBodyTrickle) {
      // The header at once, then the body a byte at a time (never complete: 100,000 bytes).
      ASSERT_EQ(::send(c.fd, body_header.data(), body_header.size(), MSG_NOSIGNAL),
                static_cast<ssize_t>(body_header.size()));
      c.body_started = Clock::now();
      c.to_send = std::string(100000, '{');
    }
  }
  const auto connected = Clock::now();

  // Genuine deliveries from the simulator while the attack runs: one every ~1.5 s, each for a
  // different order, so each must be a new verified row.
  struct Genuine {
    std::string order_id;
    int status = 0;
    std::chrono::milliseconds latency{0};
    std::string detail;
  };
  std::vector<Genuine> genuine;
  std::mutex genuine_mutex;
  std::atomic<bool> attack_over{false};
  std::vector<std::string> ids;
  for (const auto& [id, order] : world) ids.push_back(id);
  std::thread sender([&] {
    for (std::size_t i = 0; i < ids.size() && !attack_over; ++i) {
      const auto sent = Clock::now();
      const auto result =
          sim.Post("/__sim/webhooks/forge",
                   json{{"url", "http://127.0.0.1:" + std::to_string(webhook_port_) + kPath},
                        {"secret", kSecret},
                        {"kind", "valid"},
                        {"format", i % 2 == 0 ? "jwt" : "json"},
                        {"orderId", ids[i]}}
                       .dump());
      Genuine g;
      g.order_id = ids[i];
      g.latency = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - sent);
      if (result.status == 200) {
        const json answer = json::parse(result.body);
        g.status = answer["statusCode"].get<int>();
        g.detail = answer.value("error", "") + answer.value("responseBody", "");
      } else {
        g.detail = "simulator: " + std::to_string(result.status) + " " + result.error;
      }
      {
        std::lock_guard lock(genuine_mutex);
        genuine.push_back(std::move(g));
      }
      std::this_thread::sleep_for(1500ms);
    }
  });

  // Trickle a byte per connection per second and watch for the server's cut-offs.
  long peak_fds = 0;
  const auto give_up = connected + kHeaderTimeout + kBodyTimeout + kLateMargin + 10s;
  std::size_t open = slow.size();
  auto next_tick = Clock::now();
  while (open > 0 && Clock::now() < give_up) {
    peak_fds = std::max(peak_fds, OpenFds(daemon.pid()));
    std::vector<pollfd> fds;
    std::vector<SlowConnection*> owners;
    for (auto& c : slow) {
      if (c.closed) continue;
      fds.push_back(pollfd{c.fd, POLLIN, 0});
      owners.push_back(&c);
    }
    ::poll(fds.data(), fds.size(), 200);
    const auto now = Clock::now();
    for (std::size_t i = 0; i < fds.size(); ++i) {
      if (fds[i].revents != 0) Drain(*owners[i], now);
    }
    if (now >= next_tick) {
      next_tick = now + 1s;
      for (auto* c : owners) {
        if (c->closed || c->sent >= c->to_send.size()) continue;
        const ssize_t n = ::send(c->fd, c->to_send.data() + c->sent, 1, MSG_NOSIGNAL);
        if (n == 1) {
          ++c->sent;
        } else if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
          c->closed = now;  // reset by the server
        }
      }
    }
    open = std::count_if(slow.begin(), slow.end(), [](const auto& c) { return !c.closed; });
  }
  attack_over = true;
  sender.join();
  for (auto& c : slow) ::close(c.fd);

  // ---- every slow connection was cut off by its deadline ------------------------------------
  std::map<SlowKind, std::pair<Clock::duration, Clock::duration>> span;  // min, max lifetime
  std::size_t cut = 0;
  for (const auto& c : slow) {
    if (!c.closed) continue;
    ++cut;
    const Clock::time_point from = c.kind == SlowKind::kBodyTrickle ? c.body_started : c.opened;
    const auto life = *c.closed - from;
    auto [it, inserted] = span.try_emplace(c.kind, life, life);
    it->second.first = std::min(it->second.first, life);
    it->second.second = std::max(it->second.second, life);
    const auto deadline = c.kind == SlowKind::kBodyTrickle ? kBodyTimeout : kHeaderTimeout;
    EXPECT_GE(life, deadline - kEarlyMargin)
        << Name(c.kind) << " connection closed before its deadline; it got: " << c.received;
    EXPECT_LE(life, deadline + kLateMargin) << Name(c.kind) << " connection outlived its deadline";
    if (c.kind != SlowKind::kBodyTrickle) {
      // A header that never completes gets no response (nothing to answer yet).
      EXPECT_EQ(c.received, "") << Name(c.kind);
    }
  }
  EXPECT_EQ(cut, slow.size())
      << "connections still open after "
      << std::chrono::duration_cast<std::chrono::seconds>(Clock::now() - attack_start).count()
      << " s";
  for (const auto& [kind, minmax] : span) {
    std::cout << "[ measured ] " << Name(kind) << ": cut off after "
              << std::chrono::duration_cast<std::chrono::milliseconds>(minmax.first).count() << "-"
              << std::chrono::duration_cast<std::chrono::milliseconds>(minmax.second).count()
              << " ms\n";
  }
  std::cout << "[ measured ] daemon file descriptors: " << baseline_fds << " before, " << peak_fds
            << " at the peak of the attack\n";
  EXPECT_GE(peak_fds, baseline_fds + kSlowConnections - 50)
      << "the daemon should have held (nearly) every slow connection open at once";

  // ---- every genuine delivery was answered 200 and recorded -------------------------------
  ASSERT_GE(genuine.size(), 20u) << "the attack should last long enough for 20 deliveries";
  std::chrono::milliseconds worst{0};
  std::size_t during_attack = 0;
  for (const auto& g : genuine) {
    EXPECT_EQ(g.status, 200) << g.order_id << ": " << g.detail;
    worst = std::max(worst, g.latency);
    ++during_attack;
  }
  std::cout << "[ measured ] " << during_attack
            << " genuine deliveries during the attack, slowest answered in " << worst.count()
            << " ms\n";
  for (const auto& g : genuine) {
    EXPECT_TRUE(WaitUntil(
        [&] {
          return Count(database.dsn(),
                       "SELECT count(*) FROM mailtrail.webhook_deliveries WHERE verified AND "
                       "order_id = '" +
                           g.order_id + "'") == 1;
        },
        15s))
        << g.order_id << " not recorded";
  }
  EXPECT_EQ(
      Count(database.dsn(), "SELECT count(*) FROM mailtrail.webhook_deliveries WHERE NOT verified"),
      0)
      << "no slow connection may have produced a delivery";

  // ---- afterwards: the daemon is alive, answers, and has let go of the sockets ------------
  EXPECT_TRUE(daemon.running());
  const auto after =
      sim.Post("/__sim/webhooks/forge",
               json{{"url", "http://127.0.0.1:" + std::to_string(webhook_port_) + kPath},
                    {"secret", kSecret},
                    {"kind", "valid"},
                    {"format", "jwt"},
                    {"orderId", ids.back()}}
                   .dump());
  ASSERT_EQ(after.status, 200) << after.error;
  EXPECT_EQ(json::parse(after.body)["statusCode"], 200) << after.body;
  EXPECT_TRUE(WaitUntil([&] { return OpenFds(daemon.pid()) <= baseline_fds + 10; }, 10s))
      << OpenFds(daemon.pid()) << " descriptors open, " << baseline_fds << " before the attack";
  EXPECT_EQ(LocalGet(metrics_port_, "/readyz").status, 200);
  EXPECT_EQ(daemon.Terminate(15s), 0) << daemon.Log();
}

}  // namespace
}  // namespace mailtrail::e2e
