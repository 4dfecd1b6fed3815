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
/// client's io_context). The semaphore must outlive its permits and waiters.
class AsyncSemaphore {
 public:
  /// RAII permit: returns itself to the semaphore when destroyed.
  class Permit {
   public:
    Permit() = default;
    explicit Permit(AsyncSemaphore* owner) : owner_(owner) {}
    Permit(Permit&& other) noexcept : owner_(std::exchange(other.owner_, nullptr)) {}
    Permit& operator=(Permit&& other) noexcept {
      if (this != &other) {
        Reset();
        owner_ = std::exchange(other.owner_, nullptr);
      }
      return *this;
    }
    Permit(const Permit&) = delete;
    Permit& operator=(const Permit&) = delete;
    ~Permit() { Reset(); }

    void Reset() {
      if (owner_ != nullptr) std::exchange(owner_, nullptr)->Release();
    }

   private:
    AsyncSemaphore* owner_ = nullptr;
  };

  AsyncSemaphore(net::any_io_executor executor, std::size_t count);

  /// Completes with a permit once fewer than `count` are out.
  net::awaitable<Permit> Acquire();

  std::size_t capacity() const { return capacity_; }
  /// Permits currently held.
  std::size_t in_use() const { return capacity_ - available_; }
  std::size_t waiting() const { return waiters_.size(); }

 private:
  void Release();

  net::any_io_executor executor_;
  std::size_t capacity_;
  std::size_t available_;
  // A waiter sleeps on a timer that never expires; Release cancels the front one, which hands
  // the permit over directly, so a newcomer cannot overtake a waiter.
  std::deque<std::shared_ptr<net::steady_timer>> waiters_;
};

}  // namespace mailtrail::netio
