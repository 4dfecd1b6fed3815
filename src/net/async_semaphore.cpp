#include "net/async_semaphore.hpp"

#include <algorithm>

namespace mailtrail::netio {

AsyncSemaphore::AsyncSemaphore(net::any_io_executor executor, std::size_t count)
    : executor_(std::move(executor)), state_(std::make_shared<State>()) {
  state_->capacity = std::max<std::size_t>(1, count);
  state_->available = state_->capacity;
}

net::awaitable<AsyncSemaphore::Permit> AsyncSemaphore::Acquire() {
  std::shared_ptr<State> state = state_;
  if (state->available > 0 && state->waiters.empty()) {
    --state->available;
    co_return Permit(std::move(state));
  }
  auto timer = std::make_shared<net::steady_timer>(executor_);
  timer->expires_at(net::steady_timer::time_point::max());
  state->waiters.push_back(timer);
  beast::error_code ec;  // operation_aborted is the wake-up signal from Release
  co_await timer->async_wait(net::redirect_error(net::use_awaitable, ec));
  co_return Permit(std::move(state));
}

void AsyncSemaphore::State::Release() {
  if (!waiters.empty()) {
    auto next = std::move(waiters.front());
    waiters.pop_front();
    next->cancel();
    return;
  }
  ++available;
}

void AsyncSemaphore::Permit::Reset() {
  if (state_) std::exchange(state_, nullptr)->Release();
}

}  // namespace mailtrail::netio
