#pragma once

#include <gtest/gtest.h>

#include <future>
#include <nlohmann/json.hpp>
#include <thread>

#include "server.hpp"
#include "sim_process.hpp"
#include "world.hpp"

namespace mailtrail::sim::test {

using Json = nlohmann::json;
using testing::HttpResult;

inline constexpr int64_t kStartMs = 1795000000000;
inline constexpr const char* kTestKey = "test_sk_sim";
inline constexpr const char* kLiveKey = "live_sk_sim";

/// A simulator on its own io_context thread, bound to 127.0.0.1:0, clock paused at kStartMs.
/// Tests talk to it only over HTTP (the World belongs to the server thread).
class InProcessSim {
 public:
  explicit InProcessSim(uint64_t orders = 300, ServerOptions server_options = {})
      : world_(MakeOptions(orders)), server_(ioc_, world_, std::move(server_options), 1) {
    server_.Start();
    port_ = server_.port();
    thread_ = std::thread([this] { ioc_.run(); });
  }
  ~InProcessSim() {
    net::post(ioc_, [this] {
      server_.Stop();
      ioc_.stop();
    });
    thread_.join();
  }

  uint16_t port() const { return port_; }

  HttpResult Api(const std::string& method, const std::string& target,
                 const std::string& key = kTestKey, const std::string& body = "") const {
    testing::Headers headers;
    if (!key.empty()) headers.emplace_back("X-API-Key", key);
    return testing::HttpRequest("127.0.0.1", port_, method, "/print-mail/v1" + target, body,
                                headers);
  }
  HttpResult Ctl(const std::string& method, const std::string& target,
                 const std::string& body = "") const {
    return testing::HttpRequest("127.0.0.1", port_, method, "/__sim" + target, body);
  }
  /// Parses a response body, failing the test on invalid JSON.
  static Json J(const HttpResult& r) {
    try {
      return Json::parse(r.body);
    } catch (const std::exception& ex) {
      ADD_FAILURE() << "invalid JSON (" << ex.what() << "): status " << r.status << " " << r.error
                    << " body: " << r.body.substr(0, 300);
      return Json();
    }
  }
  /// Creates an order through the control API; returns its id.
  std::string Create(const Json& spec) const {
    const auto r = Ctl("POST", "/orders", spec.dump());
    EXPECT_EQ(r.status, 201) << r.body;
    return J(r).value("id", "");
  }

 private:
  static WorldOptions MakeOptions(uint64_t orders) {
    WorldOptions o;
    o.orders = orders;
    o.seed = 11;
    o.start_ms = kStartMs;
    o.paused = true;
    o.unknown_enum_rate = 0;
    return o;
  }

  net::io_context ioc_;
  World world_;
  Server server_;
  uint16_t port_ = 0;
  std::thread thread_;
};

}  // namespace mailtrail::sim::test
