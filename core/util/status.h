// Errors are values. A Status says what failed because of the world (bad input,
// a missing object, a daemon that is down) in words a user can act on; broken
// invariants are assertions instead. StatusOr<T> is a value or the reason there
// is none. Codes follow Kubernetes' status reasons so the API server can map
// them one to one.
#pragma once

#include <cassert>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

namespace flotilla {

enum class StatusCode {
  kOk = 0,
  kInvalid,             // an object failed validation (Kubernetes: Invalid, 422)
  kBadRequest,          // malformed input: syntax, types (400)
  kNotFound,            // (404)
  kAlreadyExists,       // (409)
  kConflict,            // stale resourceVersion, precondition failed (409)
  kGone,                // watch/list from a compacted resourceVersion (410)
  kUnauthorized,        // (401)
  kForbidden,           // (403)
  kTooLarge,            // request entity too large (413)
  kTooManyRequests,     // (429)
  kUnavailable,         // a dependency (daemon, peer) cannot be reached now (503)
  kDeadlineExceeded,    // (504)
  kFailedPrecondition,  // the world is not in a state where this can work
  kInternal,            // a bug or an unexpected reply (500)
};

// The Kubernetes reason string for a code ("NotFound", "AlreadyExists", ...).
std::string_view status_code_reason(StatusCode code);
// The HTTP status code Kubernetes uses for it.
int status_code_http(StatusCode code);

class [[nodiscard]] Status {
 public:
  Status() = default;  // OK
  Status(StatusCode code, std::string message) : code_(code), message_(std::move(message)) {}

  static Status ok() { return Status(); }
  bool is_ok() const { return code_ == StatusCode::kOk; }
  explicit operator bool() const { return is_ok(); }
  StatusCode code() const { return code_; }
  const std::string& message() const { return message_; }
  // "NotFound: pods \"web-1\" not found"
  std::string to_string() const;
  // A copy whose message is prefixed with context ("file.yaml: " + message).
  Status with_prefix(std::string_view prefix) const;

  friend bool operator==(const Status& a, const Status& b) {
    return a.code_ == b.code_ && a.message_ == b.message_;
  }

 private:
  StatusCode code_ = StatusCode::kOk;
  std::string message_;
};

inline Status invalid_error(std::string m) { return {StatusCode::kInvalid, std::move(m)}; }
inline Status bad_request_error(std::string m) { return {StatusCode::kBadRequest, std::move(m)}; }
inline Status not_found_error(std::string m) { return {StatusCode::kNotFound, std::move(m)}; }
inline Status already_exists_error(std::string m) {
  return {StatusCode::kAlreadyExists, std::move(m)};
}
inline Status conflict_error(std::string m) { return {StatusCode::kConflict, std::move(m)}; }
inline Status unavailable_error(std::string m) { return {StatusCode::kUnavailable, std::move(m)}; }
inline Status internal_error(std::string m) { return {StatusCode::kInternal, std::move(m)}; }
inline Status failed_precondition_error(std::string m) {
  return {StatusCode::kFailedPrecondition, std::move(m)};
}

// A value of T, or the Status saying why there is none. Never holds an OK status
// without a value.
template <typename T>
class [[nodiscard]] StatusOr {
 public:
  StatusOr(Status s) : v_(std::move(s)) { assert(!std::get<Status>(v_).is_ok()); }  // NOLINT
  StatusOr(T value) : v_(std::move(value)) {}                                         // NOLINT

  bool is_ok() const { return std::holds_alternative<T>(v_); }
  explicit operator bool() const { return is_ok(); }
  const Status& status() const {
    static const Status kOk;
    return is_ok() ? kOk : std::get<Status>(v_);
  }
  T& value() & {
    assert(is_ok());
    return std::get<T>(v_);
  }
  const T& value() const& {
    assert(is_ok());
    return std::get<T>(v_);
  }
  T&& value() && {
    assert(is_ok());
    return std::get<T>(std::move(v_));
  }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

 private:
  std::variant<Status, T> v_;
};

}  // namespace flotilla

// Returns early with the status of `expr` when it is not OK.
#define FLOTILLA_RETURN_IF_ERROR(expr)          \
  do {                                          \
    ::flotilla::Status flotilla_s_ = (expr);    \
    if (!flotilla_s_.is_ok()) return flotilla_s_; \
  } while (0)
