#include "postgrid/api_error.hpp"

namespace mailtrail::postgrid {
namespace {

std::string BuildMessage(ApiErrorKind kind, int status, const std::string& endpoint,
                         const std::string& order_id, const std::string& detail) {
  std::string message = "PostGrid ";
  message += endpoint;
  if (!order_id.empty()) message += " (order " + order_id + ")";
  message += ": ";
  message += ApiErrorKindName(kind);
  if (status != 0) message += ", HTTP " + std::to_string(status);
  if (!detail.empty()) message += ": " + detail;
  return message;
}

}  // namespace

std::string_view ApiErrorKindName(ApiErrorKind kind) {
  switch (kind) {
    case ApiErrorKind::kTransient:
      return "transient";
    case ApiErrorKind::kNotFound:
      return "not found";
    case ApiErrorKind::kAuth:
      return "auth";
    case ApiErrorKind::kBadResponse:
      return "bad response";
    case ApiErrorKind::kRejected:
      return "rejected";
  }
  return "unknown";
}

ApiError::ApiError(ApiErrorKind kind, int status, std::string endpoint, std::string order_id,
                   const std::string& detail)
    : std::runtime_error(BuildMessage(kind, status, endpoint, order_id, detail)),
      kind_(kind),
      status_(status),
      endpoint_(std::move(endpoint)),
      order_id_(std::move(order_id)) {}

StatusClass ClassifyStatus(int status) {
  if (status >= 200 && status < 300)
    return {.success = true, .retry = false, .kind = ApiErrorKind::kTransient};
  if (status == 408 || status == 409 || status == 429 || status >= 500) {
    return {.success = false, .retry = true, .kind = ApiErrorKind::kTransient};
  }
  if (status == 404) return {.success = false, .retry = false, .kind = ApiErrorKind::kNotFound};
  if (status == 401 || status == 403) {
    return {.success = false, .retry = false, .kind = ApiErrorKind::kAuth};
  }
  if (status >= 400 && status < 500) {
    return {.success = false, .retry = false, .kind = ApiErrorKind::kRejected};
  }
  // 1xx/3xx: PostGrid never redirects; a response we cannot use is a bad response.
  return {.success = false, .retry = false, .kind = ApiErrorKind::kBadResponse};
}

}  // namespace mailtrail::postgrid
