#pragma once

#include <stdexcept>
#include <string>
#include <string_view>

namespace mailtrail::postgrid {

/// What a caller should do about a failed PostGrid request.
enum class ApiErrorKind {
  kTransient,    ///< Network error, timeout, 408/409/429/5xx after all retries: try again later.
  kNotFound,     ///< 404: the order (or envelope) does not exist for this key.
  kAuth,         ///< 401/403: the API key is missing, wrong, or lacks permission.
  kBadResponse,  ///< The server answered 2xx with a body that is not the JSON we need.
  kRejected,     ///< Any other 4xx (400 validation, 422 action not possible, ...).
};

std::string_view ApiErrorKindName(ApiErrorKind kind);

/// A PostGrid request that did not yield a usable response. The message names the endpoint
/// (method and path), the order id when there is one, the HTTP status (0 when no response
/// arrived) and PostGrid's error type/message; it never contains the API key.
class ApiError : public std::runtime_error {
 public:
  ApiError(ApiErrorKind kind, int status, std::string endpoint, std::string order_id,
           const std::string& detail);

  ApiErrorKind kind() const { return kind_; }
  /// HTTP status of the last response, or 0 for a connection error or timeout.
  int status() const { return status_; }
  /// `METHOD /path?query` relative to the base URL.
  const std::string& endpoint() const { return endpoint_; }
  const std::string& order_id() const { return order_id_; }

 private:
  ApiErrorKind kind_;
  int status_;
  std::string endpoint_;
  std::string order_id_;
};

/// How one HTTP status is treated (postgrid-api.md section 6; PostGrid's SDKs retry the same set).
struct StatusClass {
  bool success = false;                          ///< 2xx.
  bool retry = false;                            ///< 408, 409, 429, 5xx.
  ApiErrorKind kind = ApiErrorKind::kTransient;  ///< The error kind if this is the final answer.
};

/// Classifies an HTTP status: pure, the table tested in api_error_test.
StatusClass ClassifyStatus(int status);

}  // namespace mailtrail::postgrid
