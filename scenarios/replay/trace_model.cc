#include "scenarios/replay/trace_model.h"

#include <cmath>
#include <cstdlib>

namespace flotilla::replay {

int64_t TracePod::gpu_milli() const {
  for (const auto& [k, v] : extended) {
    if (k == kGpuMilliResource) return v;
  }
  return 0;
}

void ImportedTrace::warn(std::string w) {
  if (warnings.size() < 20) {
    warnings.push_back(std::move(w));
  } else {
    ++warnings_dropped;
  }
}

Duration to_replay_time(double trace_seconds, const ImportOptions& options) {
  double s = (trace_seconds - options.window_start_s.value_or(0.0)) / options.speedup;
  if (s < 0) s = 0;
  return Duration(static_cast<int64_t>(std::llround(s * 1e9)));
}

Status parse_window(const std::string& text, ImportOptions* options) {
  auto colon = text.find(':');
  if (colon == std::string::npos) {
    return Status(StatusCode::kBadRequest,
                  "--window \"" + text + "\": expected START:END in seconds (e.g. 3600:7200)");
  }
  auto num = [&](const std::string& part, const char* which) -> StatusOr<std::optional<double>> {
    if (part.empty()) return std::optional<double>();
    char* end = nullptr;
    double v = std::strtod(part.c_str(), &end);
    if (end != part.c_str() + part.size() || !std::isfinite(v) || v < 0) {
      return Status(StatusCode::kBadRequest, "--window \"" + text + "\": " + which +
                                                 " \"" + part + "\" is not a number of seconds >= 0");
    }
    return std::optional<double>(v);
  };
  auto start = num(text.substr(0, colon), "START");
  if (!start.is_ok()) return start.status();
  auto end = num(text.substr(colon + 1), "END");
  if (!end.is_ok()) return end.status();
  if (*start && *end && **end <= **start) {
    return Status(StatusCode::kBadRequest, "--window \"" + text + "\": END must be after START");
  }
  options->window_start_s = *start;
  options->window_end_s = *end;
  return Status::ok();
}

}  // namespace flotilla::replay
