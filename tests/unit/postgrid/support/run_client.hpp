#pragma once

#include <chrono>
#include <exception>
#include <optional>
#include <stdexcept>
#include <utility>
#include <vector>

#include "net/net.hpp"

namespace mailtrail::postgrid::testing {

/// The outcome of one coroutine run by RunAll.
template <class T>
struct Outcome {
  std::optional<T> value;
  std::exception_ptr error;
};

/// Runs every task concurrently on `ioc` (the test thread) until all finish; throws
/// std::runtime_error if they have not finished within `timeout` (every wait has a deadline).
template <class T>
std::vector<Outcome<T>> RunAll(net::io_context& ioc, std::vector<net::awaitable<T>> tasks,
                               std::chrono::milliseconds timeout = std::chrono::seconds(60)) {
  std::vector<Outcome<T>> outcomes(tasks.size());
  std::size_t finished = 0;
  for (std::size_t i = 0; i < tasks.size(); ++i) {
    net::co_spawn(ioc, std::move(tasks[i]),
                  [&outcomes, &finished, i](std::exception_ptr error, T value) {
                    if (error) {
                      outcomes[i].error = error;
                    } else {
                      outcomes[i].value = std::move(value);
                    }
                    ++finished;
                  });
  }
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  ioc.restart();
  while (finished < tasks.size() && std::chrono::steady_clock::now() < deadline) {
    ioc.run_one_until(deadline);
  }
  if (finished < tasks.size()) {
    ioc.stop();
    throw std::runtime_error("client tasks did not finish within the test deadline");
  }
  return outcomes;
}

/// Runs one task to completion on `ioc`; rethrows its exception.
template <class T>
T RunOne(net::io_context& ioc, net::awaitable<T> task,
         std::chrono::milliseconds timeout = std::chrono::seconds(60)) {
  std::vector<net::awaitable<T>> tasks;
  tasks.push_back(std::move(task));
  auto outcomes = RunAll(ioc, std::move(tasks), timeout);
  if (outcomes[0].error) std::rethrow_exception(outcomes[0].error);
  return std::move(*outcomes[0].value);
}

}  // namespace mailtrail::postgrid::testing
