#include "core/util/time.h"

#include <cmath>
#include <cstdio>
#include <ctime>
#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <limits>

namespace flotilla {

Duration duration_from_seconds(double s) {
  return Duration(static_cast<int64_t>(std::llround(s * 1e9)));
}

StatusOr<Duration> parse_duration(std::string_view text) {
  const std::string original(text);
  auto bad = [&](const std::string& why) {
    return Status(StatusCode::kBadRequest, "invalid duration \"" + original + "\": " + why);
  };
  if (text.empty()) return bad("empty");
  bool negative = false;
  if (text.front() == '-') {
    negative = true;
    text.remove_prefix(1);
  }
  if (text == "0") return Duration(0);
  long double total = 0;
  bool any = false;
  while (!text.empty()) {
    size_t i = 0;
    while (i < text.size() && (std::isdigit(static_cast<unsigned char>(text[i])) || text[i] == '.')) ++i;
    if (i == 0) return bad("expected a number at \"" + std::string(text) + "\"");
    std::string num(text.substr(0, i));
    if (std::count(num.begin(), num.end(), '.') > 1 || num == ".") {
      return bad("malformed number \"" + num + "\"");
    }
    text.remove_prefix(i);
    size_t j = 0;
    while (j < text.size() && std::isalpha(static_cast<unsigned char>(text[j]))) ++j;
    std::string unit(text.substr(0, j));
    text.remove_prefix(j);
    long double scale;
    if (unit == "ns") scale = 1;
    else if (unit == "us" || unit == "µs") scale = 1e3;
    else if (unit == "ms") scale = 1e6;
    else if (unit == "s") scale = 1e9;
    else if (unit == "m") scale = 60e9;
    else if (unit == "h") scale = 3600e9;
    else if (unit == "d") scale = 86400e9;
    else if (unit.empty()) return bad("missing unit (use ns, us, ms, s, m, h or d)");
    else return bad("unknown unit \"" + unit + "\" (use ns, us, ms, s, m, h or d)");
    total += std::strtold(num.c_str(), nullptr) * scale;  // inf when huge: "too large" below
    any = true;
  }
  if (!any) return bad("empty");
  if (total > static_cast<long double>(std::numeric_limits<int64_t>::max())) return bad("too large");
  int64_t ns = static_cast<int64_t>(std::llround(static_cast<double>(total)));
  return Duration(negative ? -ns : ns);
}

std::string format_duration(Duration d) {
  int64_t ns = d.count();
  if (ns == 0) return "0s";
  std::string sign = ns < 0 ? "-" : "";
  uint64_t u = ns < 0 ? static_cast<uint64_t>(-(ns + 1)) + 1 : static_cast<uint64_t>(ns);
  char buf[64];
  if (u < 1000) {
    std::snprintf(buf, sizeof buf, "%lluns", static_cast<unsigned long long>(u));
  } else if (u < 1000000) {
    std::snprintf(buf, sizeof buf, "%gus", static_cast<double>(u) / 1e3);
  } else if (u < 1000000000) {
    std::snprintf(buf, sizeof buf, "%gms", static_cast<double>(u) / 1e6);
  } else {
    uint64_t h = u / 3600000000000ULL;
    uint64_t m = (u / 60000000000ULL) % 60;
    double s = static_cast<double>(u % 60000000000ULL) / 1e9;
    if (h > 0) {
      std::snprintf(buf, sizeof buf, "%lluh%llum%gs", static_cast<unsigned long long>(h),
                    static_cast<unsigned long long>(m), s);
    } else if (m > 0) {
      std::snprintf(buf, sizeof buf, "%llum%gs", static_cast<unsigned long long>(m), s);
    } else {
      std::snprintf(buf, sizeof buf, "%gs", s);
    }
  }
  return sign + buf;
}

std::string format_rfc3339(TimePoint t) {
  int64_t ns = to_nanos(t);
  int64_t secs = ns >= 0 ? ns / 1000000000 : -((-ns + 999999999) / 1000000000);
  std::time_t tt = static_cast<std::time_t>(secs);
  std::tm tm{};
  gmtime_r(&tt, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

StatusOr<TimePoint> parse_rfc3339(std::string_view text) {
  std::tm tm{};
  std::string s(text);
  int frac_ns = 0;
  int y, mo, d, h, mi, se;
  char rest[40] = {0};
  if (std::sscanf(s.c_str(), "%4d-%2d-%2dT%2d:%2d:%2d%39s", &y, &mo, &d, &h, &mi, &se, rest) < 6) {
    return Status(StatusCode::kBadRequest, "invalid timestamp \"" + s + "\": expected RFC 3339");
  }
  std::string r(rest);
  if (!r.empty() && r[0] == '.') {
    size_t i = 1;
    int digits = 0;
    while (i < r.size() && std::isdigit(static_cast<unsigned char>(r[i]))) {
      if (digits < 9) frac_ns = frac_ns * 10 + (r[i] - '0'), ++digits;
      ++i;
    }
    while (digits++ < 9) frac_ns *= 10;
    r = r.substr(i);
  }
  int64_t offset = 0;
  if (r == "Z" || r == "z") {
    offset = 0;
  } else if (r.size() == 6 && (r[0] == '+' || r[0] == '-') && r[3] == ':') {
    int oh = std::atoi(r.substr(1, 2).c_str()), om = std::atoi(r.substr(4, 2).c_str());
    offset = (oh * 3600 + om * 60) * (r[0] == '+' ? 1 : -1);
  } else {
    return Status(StatusCode::kBadRequest, "invalid timestamp \"" + s + "\": bad zone");
  }
  tm.tm_year = y - 1900;
  tm.tm_mon = mo - 1;
  tm.tm_mday = d;
  tm.tm_hour = h;
  tm.tm_min = mi;
  tm.tm_sec = se;
  int64_t secs = static_cast<int64_t>(timegm(&tm)) - offset;
  // TimePoint is int64 nanoseconds since the epoch: about 1677-09-21 to 2262-04-11.
  constexpr int64_t kMaxSecs = std::numeric_limits<int64_t>::max() / 1000000000 - 1;
  if (secs > kMaxSecs || secs < -kMaxSecs) {
    return Status(StatusCode::kBadRequest,
                  "invalid timestamp \"" + s + "\": out of range (years 1678 to 2262)");
  }
  return time_from_nanos(secs * 1000000000 + frac_ns);
}

}  // namespace flotilla
