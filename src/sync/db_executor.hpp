#pragma once

#include <algorithm>
#include <atomic>
#include <memory>
#include <pqxx/except>
#include <string>
#include <type_traits>
#include <vector>

#include "net/net.hpp"
#include "store/database.hpp"

namespace mailtrail::sync {

/// The database threads. libpqxx is blocking and a connection is not thread-safe, so every store
/// call runs on a single-thread pool that owns one Database, and coroutines on the I/O thread hop
/// there and back with `co_await db.Run(fn)` (style.md concurrency rule). The I/O thread never
/// waits on SQL.
///
/// Run() always uses the primary connection, which holds session state (the leader's advisory
/// lock) and keeps the order of the calls made on it. RunPooled() is for self-contained
/// transactions, the page writes of the sync: it takes whichever connection has the least work
/// queued, so that a full scan writes two pages at once (PostgreSQL's cost per new order is most of
/// a sync's CPU, and one backend uses one core; bench/README.md, benchmark 1). Two writes of one
/// order on two connections are safe: a page write locks its rows in id order, as it does against
/// another replica.
///
/// A lost connection (pqxx::broken_connection) resets that Database so its next call reconnects;
/// the error still reaches the caller, which decides when to retry.
class DbExecutor {
 public:
  /// Connections in all, the primary included (each connects on its first use).
  static constexpr std::size_t kDefaultConnections = 2;

  explicit DbExecutor(const std::string& url, std::size_t connections = kDefaultConnections) {
    for (std::size_t i = 0; i < std::max<std::size_t>(1, connections); ++i) {
      lanes_.push_back(std::make_unique<Lane>(url));
    }
  }
  ~DbExecutor() { Stop(); }
  DbExecutor(const DbExecutor&) = delete;
  DbExecutor& operator=(const DbExecutor&) = delete;

  /// Runs `fn(store::Database&)` on the primary connection's thread and resumes the caller on its
  /// own executor with the result (or the exception `fn` threw). `fn` is moved to the pool:
  /// capture by value.
  ///
  /// Hazard: pass a named lambda (`auto write = [..](..) {..}; co_await
  /// db.Run(std::move(write));`). g++ 12 mis-destroys a lambda with captures written inline in the
  /// co_await expression (seen here as a double free of the captured vector), so no call site does
  /// that.
  template <typename Fn>
  auto Run(Fn fn) -> net::awaitable<std::invoke_result_t<Fn&, store::Database&>> {
    return RunOn(*lanes_.front(), std::move(fn));
  }

  /// As Run(), on the connection with the least work queued. `fn` must not rely on session state
  /// or on the order of other calls: one transaction, committed or rolled back within `fn`.
  template <typename Fn>
  auto RunPooled(Fn fn) -> net::awaitable<std::invoke_result_t<Fn&, store::Database&>> {
    return RunOn(LeastBusyLane(), std::move(fn));
  }

  std::size_t connections() const { return lanes_.size(); }
  /// Whether the last database call succeeded (false after a failure, until one succeeds).
  bool reachable() const { return reachable_.load(); }
  std::uint64_t failures() const { return failures_.load(); }
  std::uint64_t reconnects() const { return reconnects_.load(); }

  /// Waits for running work and joins the threads. Idempotent.
  void Stop() {
    for (auto& lane : lanes_) lane->pool.join();
  }

 private:
  struct Lane {
    explicit Lane(std::string url) : database(std::move(url)) {}
    net::thread_pool pool{1};
    store::Database database;
    std::atomic<std::size_t> queued{0};  ///< calls handed to this lane and not finished
  };

  template <typename Fn>
  auto RunOn(Lane& lane, Fn fn) -> net::awaitable<std::invoke_result_t<Fn&, store::Database&>> {
    using Result = std::invoke_result_t<Fn&, store::Database&>;
    ++lane.queued;
    return net::co_spawn(lane.pool.get_executor(), Invoke<Result, Fn>(this, &lane, std::move(fn)),
                         net::use_awaitable);
  }

  Lane& LeastBusyLane() {
    Lane* best = lanes_.front().get();
    for (auto& lane : lanes_) {
      if (lane->queued.load() < best->queued.load()) best = lane.get();
    }
    return *best;
  }

  template <typename Result, typename Fn>
  static net::awaitable<Result> Invoke(DbExecutor* self, Lane* lane, Fn fn) {
    // Counted from the hand-over, so a call waiting for the thread counts as work queued.
    struct Finished {
      Lane* lane;
      ~Finished() { --lane->queued; }
    } finished{lane};
    try {
      const std::size_t connects_before = lane->database.connects();
      if constexpr (std::is_void_v<Result>) {
        fn(lane->database);
        self->Succeeded(lane->database.connects(), connects_before);
        co_return;
      } else {
        Result result = fn(lane->database);
        self->Succeeded(lane->database.connects(), connects_before);
        co_return result;
      }
    } catch (const pqxx::broken_connection&) {
      lane->database.Reset();
      self->Failed();
      throw;
    } catch (const pqxx::sql_error&) {
      // The server answered (with an error): it is reachable; the caller handles the error.
      self->reachable_.store(true);
      throw;
    }
  }

  void Succeeded(std::size_t connects_after, std::size_t connects_before) {
    if (connects_after > connects_before && connects_before > 0) ++reconnects_;
    reachable_.store(true);
  }
  void Failed() {
    reachable_.store(false);
    ++failures_;
  }

  std::vector<std::unique_ptr<Lane>> lanes_;
  std::atomic<bool> reachable_{false};
  std::atomic<std::uint64_t> failures_{0};
  std::atomic<std::uint64_t> reconnects_{0};
};

}  // namespace mailtrail::sync
