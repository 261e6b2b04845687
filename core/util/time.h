// Time in Flotilla is an int64 count of nanoseconds behind strong types, never
// double seconds. A TimePoint is measured on the world's clock (virtual in the
// simulator, steady in live mode); only an EventLoop can say what "now" is.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

#include "core/util/status.h"

namespace flotilla {

// The clock of whichever world the code runs in. It has no now(): ask the
// EventLoop port.
struct WorldClock {
  using rep = int64_t;
  using period = std::nano;
  using duration = std::chrono::duration<rep, period>;
  using time_point = std::chrono::time_point<WorldClock>;
  static constexpr bool is_steady = true;
};

using Duration = WorldClock::duration;
using TimePoint = WorldClock::time_point;

using std::chrono::hours;
using std::chrono::microseconds;
using std::chrono::milliseconds;
using std::chrono::minutes;
using std::chrono::nanoseconds;
using std::chrono::seconds;

constexpr TimePoint kTimeZero{};
constexpr TimePoint kTimeMax{Duration::max()};

inline constexpr int64_t to_nanos(Duration d) { return d.count(); }
inline constexpr int64_t to_nanos(TimePoint t) { return t.time_since_epoch().count(); }
inline constexpr double to_seconds(Duration d) { return static_cast<double>(d.count()) * 1e-9; }
inline constexpr double to_seconds(TimePoint t) { return to_seconds(t.time_since_epoch()); }
inline constexpr TimePoint time_from_nanos(int64_t ns) { return TimePoint(Duration(ns)); }
// Rounds to the nearest nanosecond; for reading user input, never for arithmetic.
Duration duration_from_seconds(double s);

// Parses "250ms", "30s", "5m", "1h30m", "2d", "1.5s", "0"; units ns, us, ms, s,
// m, h, d. A bare number is rejected unless it is 0, so units are never guessed.
StatusOr<Duration> parse_duration(std::string_view text);
// "1h30m0s"-style, Go-like: "1.5s", "250ms", "2h0m0s", "0s".
std::string format_duration(Duration d);
// RFC 3339 in UTC with second precision, the form Kubernetes uses for
// timestamps: "1970-01-01T00:00:05Z". TimePoint zero is the Unix epoch.
std::string format_rfc3339(TimePoint t);
StatusOr<TimePoint> parse_rfc3339(std::string_view text);

}  // namespace flotilla
