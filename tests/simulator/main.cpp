// postgrid-sim: a PostGrid Print & Mail API simulator for mailtrail's tests and demo.
// See tests/simulator/README.md for the API it serves and its control API.
#include <csignal>
#include <cstdio>
#include <iostream>
#include <stdexcept>
#include <string>
#include <vector>

#include "server.hpp"

namespace {

using mailtrail::sim::Server;
using mailtrail::sim::ServerOptions;
using mailtrail::sim::WorldOptions;

constexpr const char* kHelp =
    R"(postgrid-sim: simulates PostGrid's Print & Mail API (see tests/simulator/README.md)

Usage: postgrid-sim [flags]

World
  --orders N               seeded orders, mixed over all 7 order types and both modes (default 0)
  --seed S                 seed for the world, its ids and its plans (default 1)
  --speed X                simulated seconds per real second (default 1; 3600 = an hour a second;
                           0 freezes the clock until the control API advances it)
  --paused                 start with the clock paused (drive it with POST /__sim/advance)
  --start ISO              simulated "now" at startup, e.g. 2026-01-05T12:00:00.000Z
                           (default: the wall clock)
  --history-days D         seeded orders are created over the D days before start (default 5);
                           their planned steps up to start are already applied
  --live-fraction F        share of seeded orders in the live world (default 0.5)
  --unknown-enum-rate R    share of orders that also show values PostGrid does not document
                           (carrier status held_for_review/customs_review, imbStatus in_process)
                           (default 0.01)

API
  --listen HOST:PORT       address to bind; port 0 picks a free port (default 127.0.0.1:0)
  --test-key K             the test-mode API key (default test_sk_sim)
  --live-key K             the live-mode API key (default live_sk_sim)
  --body-limit BYTES       largest request body accepted (default 1048576)

Webhooks (a target gets every order event of both modes unless --webhook-events narrows it)
  --webhook-url U          deliver events to U (http://127.x.x.x:PORT/path); may repeat
  --webhook-secret S       signing secret (>= 20 chars) for the matching --webhook-url (the n-th
                           secret goes with the n-th URL; the last one given fills the rest)
  --webhook-format F       jwt (default) or json, paired with the URLs like --webhook-secret
  --webhook-events LIST    comma-separated event types, e.g. letter.updated,postcard.updated
  --webhook-timestamp U    ms (default) or s: the unit of t= in PostGrid-Signature (json format)
  --webhook-retry-delays L simulated delays before retries after a non-200 (default 1h,2h,4h)

Faults (may repeat; the control API at /__sim/faults does the same at run time)
  --fault SPEC             KIND[:key=value,...]; KIND is 429, 500, 502, 503, latency, reset,
                           truncate or outage; keys: rate (0..1, default 1), endpoint (path
                           substring, e.g. /letters), method, retry_after (s), retry_after_ms,
                           ms (latency), count (firings), after (s from start), seconds (window)
                           e.g. --fault 429:rate=0.05,retry_after=2 --fault outage:after=30,seconds=10

Other
  --help                   this text

On start the first line on stdout is `listening on HOST:PORT`. SIGINT/SIGTERM stop it cleanly.
)";

[[noreturn]] void Usage(const std::string& message) {
  std::cerr << "postgrid-sim: " << message << "\n(run postgrid-sim --help)\n";
  std::exit(2);
}

double ToDouble(const std::string& flag, const std::string& value) {
  try {
    size_t used = 0;
    const double d = std::stod(value, &used);
    if (used != value.size()) throw std::invalid_argument("trailing");
    return d;
  } catch (const std::exception&) {
    Usage(flag + " needs a number, got '" + value + "'");
  }
}

uint64_t ToCount(const std::string& flag, const std::string& value) {
  try {
    size_t used = 0;
    const auto n = std::stoull(value, &used);
    if (used != value.size() || value[0] == '-') throw std::invalid_argument("trailing");
    return n;
  } catch (const std::exception&) {
    Usage(flag + " needs a non-negative integer, got '" + value + "'");
  }
}

}  // namespace

int main(int argc, char** argv) {
  WorldOptions world_options;
  ServerOptions server_options;
  std::vector<std::string> webhook_urls, webhook_secrets, webhook_formats;
  std::vector<std::string> webhook_events;
  bool seconds_timestamp = false;
  std::vector<mailtrail::sim::FaultSpec> faults;
  std::string listen = "127.0.0.1:0";

  const std::vector<std::string> args(argv + 1, argv + argc);
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& flag = args[i];
    if (flag == "--help" || flag == "-h") {
      std::cout << kHelp;
      return 0;
    }
    if (flag == "--paused") {
      world_options.paused = true;
      continue;
    }
    if (i + 1 >= args.size()) Usage("unknown flag or missing value: " + flag);
    const std::string value = args[++i];
    if (flag == "--listen") {
      listen = value;
    } else if (flag == "--orders") {
      world_options.orders = ToCount(flag, value);
    } else if (flag == "--seed") {
      world_options.seed = ToCount(flag, value);
    } else if (flag == "--speed") {
      world_options.speed = ToDouble(flag, value);
      if (world_options.speed < 0) Usage("--speed must be >= 0");
    } else if (flag == "--start") {
      const auto t = mailtrail::sim::ParseIso(value);
      if (!t) Usage("--start needs an ISO-8601 UTC time like 2026-01-05T12:00:00.000Z");
      world_options.start_ms = *t;
    } else if (flag == "--history-days") {
      world_options.history_days = ToDouble(flag, value);
    } else if (flag == "--live-fraction") {
      world_options.live_fraction = ToDouble(flag, value);
    } else if (flag == "--unknown-enum-rate") {
      world_options.unknown_enum_rate = ToDouble(flag, value);
    } else if (flag == "--test-key") {
      server_options.test_key = value;
    } else if (flag == "--live-key") {
      server_options.live_key = value;
    } else if (flag == "--body-limit") {
      server_options.body_limit = ToCount(flag, value);
    } else if (flag == "--webhook-url") {
      webhook_urls.push_back(value);
    } else if (flag == "--webhook-secret") {
      if (value.size() < 20) Usage("--webhook-secret must be at least 20 characters");
      webhook_secrets.push_back(value);
    } else if (flag == "--webhook-format") {
      if (value != "jwt" && value != "json") Usage("--webhook-format is jwt or json");
      webhook_formats.push_back(value);
    } else if (flag == "--webhook-events") {
      size_t start = 0;
      while (start <= value.size()) {
        const size_t comma = value.find(',', start);
        const std::string e = value.substr(start, comma - start);
        if (!e.empty()) webhook_events.push_back(e);
        if (comma == std::string::npos) break;
        start = comma + 1;
      }
    } else if (flag == "--webhook-timestamp") {
      if (value != "ms" && value != "s") Usage("--webhook-timestamp is ms or s");
      seconds_timestamp = value == "s";
    } else if (flag == "--webhook-retry-delays") {
      server_options.retry_delays_ms.clear();
      size_t start = 0;
      while (start <= value.size()) {
        const size_t comma = value.find(',', start);
        const std::string d = value.substr(start, comma - start);
        if (!d.empty()) {
          const auto ms = mailtrail::sim::ParseDurationMs(d);
          if (!ms) Usage("--webhook-retry-delays: bad duration '" + d + "'");
          server_options.retry_delays_ms.push_back(*ms);
        }
        if (comma == std::string::npos) break;
        start = comma + 1;
      }
    } else if (flag == "--fault") {
      try {
        faults.push_back(mailtrail::sim::ParseFaultFlag(value));
      } catch (const std::invalid_argument& ex) {
        Usage(std::string("--fault: ") + ex.what());
      }
    } else {
      Usage("unknown flag: " + flag);
    }
  }
  const size_t colon = listen.rfind(':');
  if (colon == std::string::npos) Usage("--listen needs HOST:PORT");
  server_options.host = listen.substr(0, colon);
  server_options.port = static_cast<uint16_t>(ToCount("--listen port", listen.substr(colon + 1)));
  if (!webhook_urls.empty() && webhook_secrets.empty()) {
    Usage("--webhook-url needs a --webhook-secret");
  }

  try {
    mailtrail::sim::net::io_context ioc;
    mailtrail::sim::World world(world_options);
    Server server(ioc, world, server_options, world_options.seed);
    for (auto& f : faults) server.faults().Add(std::move(f));
    for (size_t i = 0; i < webhook_urls.size(); ++i) {
      mailtrail::sim::WebhookTarget t;
      t.url = webhook_urls[i];
      t.secret = webhook_secrets[std::min(i, webhook_secrets.size() - 1)];
      t.jwt = webhook_formats.empty() ||
              webhook_formats[std::min(i, webhook_formats.size() - 1)] == "jwt";
      t.events = webhook_events;
      t.seconds_timestamp = seconds_timestamp;
      t.mode = 2;
      server.AddTarget(std::move(t));
    }
    // Handlers first: a script may signal as soon as it has read the address line.
    mailtrail::sim::net::signal_set signals(ioc, SIGINT, SIGTERM);
    signals.async_wait([&](const boost::system::error_code&, int) {
      server.Stop();
      ioc.stop();
    });
    server.Start();
    std::cout << "listening on " << server.host() << ":" << server.port() << std::endl;
    ioc.run();
    return 0;
  } catch (const std::exception& ex) {
    std::cerr << "postgrid-sim: " << ex.what() << std::endl;
    return 1;
  }
}
