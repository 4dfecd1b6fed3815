#include "net/async_semaphore.hpp"

#include <algorithm>

namespace mailtrail::netio {

AsyncSemaphore::AsyncSemaphore(net::any_io_executor executor, std::size_t count)
    : executor_(std::move(executor)),
      capacity_(std::max<std::size_t>(1, count)),
      available_(capacity_) {}

net::awaitable<AsyncSemaphore::Permit> AsyncSemaphore::Acquire() {
  if (available_ > 0 && waiters_.empty()) {
    --available_;
    co_return Permit(this);
  }
  auto timer = std::make_shared<net::steady_timer>(executor_);
  timer->expires_at(net::steady_timer::time_point::max());
  waiters_.push_back(timer);
  beast::error_code ec;  // operation_aborted is the wake-up signal from Release
  co_await timer->async_wait(net::redirect_error(net::use_awaitable, ec));
  co_return Permit(this);
}

void AsyncSemaphore::Release() {
  if (!waiters_.empty()) {
    auto next = std::move(waiters_.front());
    waiters_.pop_front();
    next->cancel();
    return;
  }
  ++available_;
}

}  // namespace mailtrail::netio
