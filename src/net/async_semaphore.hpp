#pragma once

#include <cstddef>
#include <deque>
#include <memory>

#include "net/net.hpp"

namespace mailtrail::netio {

/// A counting semaphore for coroutines (Asio 1.74 has none): at most `count` permits are out at
/// once; Acquire() waits in FIFO order for a free one.
///
/// Thread affinity: all calls, and destruction of permits, on one single-threaded executor (the
/// client's io_context). Permits share the semaphore's state, so a permit held by a coroutine
/// frame that is destroyed after the semaphore (an io_context torn down after its client) is
/// still safe to release.
class AsyncSemaphore {
  struct State;

 public:
  /// RAII permit: returns itself to the semaphore when destroyed or Reset().
  class Permit {
   public:
    Permit() = default;
    Permit(Permit&& other) noexcept = default;
    // Release() cancels a timer, which throws only when the reactor itself fails; terminating
    // is the right answer then.
    Permit& operator=(Permit&& other) noexcept {  // NOLINT(bugprone-exception-escape)
      if (this != &other) {
        Reset();
        state_ = std::move(other.state_);
      }
      return *this;
    }
    Permit(const Permit&) = delete;
    Permit& operator=(const Permit&) = delete;
    ~Permit() { Reset(); }  // NOLINT(bugprone-exception-escape): as operator= above

    void Reset();
    bool held() const { return state_ != nullptr; }

   private:
    friend class AsyncSemaphore;
    explicit Permit(std::shared_ptr<State> state) : state_(std::move(state)) {}
    std::shared_ptr<State> state_;
  };

  AsyncSemaphore(net::any_io_executor executor, std::size_t count);

  /// Completes with a permit once fewer than `count` are out.
  net::awaitable<Permit> Acquire();

  std::size_t capacity() const { return state_->capacity; }
  /// Permits currently held (or handed to a waiter that has not resumed yet).
  std::size_t in_use() const { return state_->capacity - state_->available; }
  std::size_t waiting() const { return state_->waiters.size(); }

 private:
  struct State {
    std::size_t capacity = 1;
    std::size_t available = 1;
    // A waiter sleeps on a timer that never expires; Release cancels the front one, which hands
    // the permit over directly, so a newcomer cannot overtake a waiter.
    std::deque<std::shared_ptr<net::steady_timer>> waiters;
    void Release();
  };

  net::any_io_executor executor_;
  std::shared_ptr<State> state_;
};

}  // namespace mailtrail::netio
