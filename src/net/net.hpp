#pragma once

/// @file
/// The one place that includes Boost.Asio and Boost.Beast for mailtrail, and the short aliases
/// every module uses: `net` (boost::asio), `beast` (boost::beast), `http` (boost::beast::http),
/// `ssl` (boost::asio::ssl). The aliases live in namespace `mailtrail`, so code inside any
/// `mailtrail::<module>` namespace sees them without a global alias.
///
/// Note: the src/net module's own code lives in namespace `mailtrail::netio`, because a
/// namespace `mailtrail::net` would hide the `net` alias in every other module.

// Boost 1.74's Asio/Beast headers use std::exchange/std::move without including <utility>
// under some g++ 12 include orders; include it first (clang-format off keeps it first).
// clang-format off
#include <utility>
// clang-format on

#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <chrono>

namespace mailtrail {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = boost::beast::http;
namespace ssl = boost::asio::ssl;

namespace netio {

/// Default deadline for one connect, TLS handshake, write or read (contract.md `postgrid.timeout`).
inline constexpr std::chrono::seconds kDefaultTimeout{10};
/// Default cap on a response body read by HttpConnection (PostGrid list pages are well below).
inline constexpr std::size_t kDefaultResponseBodyLimit = std::size_t{16} * 1024 * 1024;

}  // namespace netio
}  // namespace mailtrail
