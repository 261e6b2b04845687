#include "core/util/status.h"

namespace flotilla {

std::string_view status_code_reason(StatusCode code) {
  switch (code) {
    case StatusCode::kOk: return "";
    case StatusCode::kInvalid: return "Invalid";
    case StatusCode::kBadRequest: return "BadRequest";
    case StatusCode::kNotFound: return "NotFound";
    case StatusCode::kAlreadyExists: return "AlreadyExists";
    case StatusCode::kConflict: return "Conflict";
    case StatusCode::kGone: return "Expired";
    case StatusCode::kUnauthorized: return "Unauthorized";
    case StatusCode::kForbidden: return "Forbidden";
    case StatusCode::kTooLarge: return "RequestEntityTooLarge";
    case StatusCode::kTooManyRequests: return "TooManyRequests";
    case StatusCode::kUnavailable: return "ServiceUnavailable";
    case StatusCode::kDeadlineExceeded: return "Timeout";
    case StatusCode::kFailedPrecondition: return "FailedPrecondition";
    case StatusCode::kInternal: return "InternalError";
  }
  return "Unknown";
}

int status_code_http(StatusCode code) {
  switch (code) {
    case StatusCode::kOk: return 200;
    case StatusCode::kInvalid: return 422;
    case StatusCode::kBadRequest: return 400;
    case StatusCode::kNotFound: return 404;
    case StatusCode::kAlreadyExists: return 409;
    case StatusCode::kConflict: return 409;
    case StatusCode::kGone: return 410;
    case StatusCode::kUnauthorized: return 401;
    case StatusCode::kForbidden: return 403;
    case StatusCode::kTooLarge: return 413;
    case StatusCode::kTooManyRequests: return 429;
    case StatusCode::kUnavailable: return 503;
    case StatusCode::kDeadlineExceeded: return 504;
    case StatusCode::kFailedPrecondition: return 400;
    case StatusCode::kInternal: return 500;
  }
  return 500;
}

std::string Status::to_string() const {
  if (is_ok()) return "OK";
  return std::string(status_code_reason(code_)) + ": " + message_;
}

Status Status::with_prefix(std::string_view prefix) const {
  if (is_ok()) return *this;
  return Status(code_, std::string(prefix) + message_);
}

}  // namespace flotilla
