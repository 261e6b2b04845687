// What a simulated container does once started, matched by image and/or pod
// label selector (first match wins; no match: runs until stopped). Scenario
// files list behaviours under `behaviours:`; parse_behaviours reads them with
// errors that name the field path and line. Durations are Distributions.
//
//   - image: crashy                         # exact image, or prefix match with a trailing '*'
//     selector: "app=web"                   # pod labels (both must match when both given)
//     exit_after: {exponential: {mean: 5m}}
//     exit_code: 1                          # 0 -> Completed, else Error
//   - image: flappy
//     crash_loop: {after: 2s, exit_code: 1} # or `crash_loop: true` (1s, exit 1)
//   - image: stuck
//     hang_after: {fixed: 2h}               # alive, but answers no probe nor request
//   - image: leaky
//     memory: {initial: 64Mi, growth_per_minute: 10Mi}  # OOMKilled (137) at the limit
//   - image: slow
//     ready_after: {uniform: {min: 5s, max: 20s}}  # ports answer only after warm-up
//     ignore_sigterm: true                   # stop waits for the whole grace period
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "core/api/labels.h"
#include "core/util/status.h"
#include "sim/engine/distribution.h"

namespace YAML {
class Node;
}

namespace flotilla::sim {

struct BehaviourSpec {
  // Matching. Both empty: matches every container.
  std::string image;           // exact, or a prefix when it ends in '*'
  std::string selector_text;   // as written, for messages
  api::LabelSelector selector;  // over the pod's labels
  bool has_selector = false;

  std::optional<Distribution> exit_after;  // exits on its own after this long
  int exit_code = 0;
  std::optional<Distribution> hang_after;   // stops answering after this long
  std::optional<Distribution> ready_after;  // answers only after this long
  // Memory model: usage starts at `memory_initial_bytes` and grows linearly;
  // when it passes the container's memory limit the container is OOM-killed.
  int64_t memory_initial_bytes = 0;
  int64_t memory_growth_bytes_per_minute = 0;
  bool ignore_sigterm = false;

  bool matches_image(const std::string& image_name) const;
};

// Parses a YAML sequence of behaviours. `path` prefixes error field paths
// ("behaviours[2].exit_after: ..."). Errors: kBadRequest with path and line.
StatusOr<std::vector<BehaviourSpec>> parse_behaviours(const YAML::Node& node,
                                                      const std::string& path = "behaviours");
StatusOr<BehaviourSpec> parse_behaviour(const YAML::Node& node, const std::string& path);

}  // namespace flotilla::sim
