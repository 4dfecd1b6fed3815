#pragma once

#include <atomic>
#include <pqxx/except>
#include <string>
#include <type_traits>

#include "net/net.hpp"
#include "store/database.hpp"

namespace mailtrail::sync {

/// The database thread. libpqxx is blocking and a connection is not thread-safe, so every store
/// call runs on this single-thread pool with the one Database it owns, and coroutines on the I/O
/// thread hop here and back with `co_await db.Run(fn)` (style.md concurrency rule). The I/O
/// thread never waits on SQL.
///
/// A lost connection (pqxx::broken_connection) resets the Database so the next call reconnects;
/// the error still reaches the caller, which decides when to retry.
class DbExecutor {
 public:
  explicit DbExecutor(std::string url) : database_(std::move(url)) {}
  ~DbExecutor() { Stop(); }
  DbExecutor(const DbExecutor&) = delete;
  DbExecutor& operator=(const DbExecutor&) = delete;

  /// Runs `fn(store::Database&)` on the database thread and resumes the caller on its own
  /// executor with the result (or the exception `fn` threw). `fn` is moved to the pool: capture by
  /// value.
  ///
  /// Hazard: pass a named lambda (`auto write = [..](..) {..}; co_await
  /// db.Run(std::move(write));`). g++ 12 mis-destroys a lambda with captures written inline in the
  /// co_await expression (seen here as a double free of the captured vector), so no call site does
  /// that.
  template <typename Fn>
  auto Run(Fn fn) -> net::awaitable<std::invoke_result_t<Fn&, store::Database&>> {
    using Result = std::invoke_result_t<Fn&, store::Database&>;
    return net::co_spawn(pool_.get_executor(), Invoke<Result, Fn>(this, std::move(fn)),
                         net::use_awaitable);
  }

  /// Whether the last database call succeeded (false after a failure, until one succeeds).
  bool reachable() const { return reachable_.load(); }
  std::uint64_t failures() const { return failures_.load(); }
  std::uint64_t reconnects() const { return reconnects_.load(); }

  /// Waits for running work and joins the thread. Idempotent.
  void Stop() { pool_.join(); }

 private:
  template <typename Result, typename Fn>
  static net::awaitable<Result> Invoke(DbExecutor* self, Fn fn) {
    try {
      const std::size_t connects_before = self->database_.connects();
      if constexpr (std::is_void_v<Result>) {
        fn(self->database_);
        self->Succeeded(connects_before);
        co_return;
      } else {
        Result result = fn(self->database_);
        self->Succeeded(connects_before);
        co_return result;
      }
    } catch (const pqxx::broken_connection&) {
      self->database_.Reset();
      self->Failed();
      throw;
    } catch (const pqxx::sql_error&) {
      // The server answered (with an error): it is reachable; the caller handles the error.
      self->reachable_.store(true);
      throw;
    }
  }

  void Succeeded(std::size_t connects_before) {
    if (database_.connects() > connects_before && connects_before > 0) ++reconnects_;
    reachable_.store(true);
  }
  void Failed() {
    reachable_.store(false);
    ++failures_;
  }

  net::thread_pool pool_{1};
  store::Database database_;
  std::atomic<bool> reachable_{false};
  std::atomic<std::uint64_t> failures_{0};
  std::atomic<std::uint64_t> reconnects_{0};
};

}  // namespace mailtrail::sync
