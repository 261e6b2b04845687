// Loading a scenario file: YAML (with `--set path=value` overrides applied to
// the tree first) decoded into the schema of scenario.proto, then every part
// resolved into what the runners use — node groups, timing, runtime models,
// workload steps with decoded and validated manifests, traffic, faults and
// assertions. Every error names the file, the field path and the line.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "core/api/codec.h"
#include "core/timing/timing.h"
#include "core/util/status.h"
#include "scenarios/scenario.pb.h"
#include "sim/faults/faults.h"
#include "sim/traffic/traffic.h"
#include "sim/world/world.h"

namespace flotilla::scenarios {

struct WorkloadAction {
  Duration at{};
  std::vector<api::DecodedObject> apply;  // validated
  std::optional<Scale> scale;
  std::optional<ObjectRef> remove;
  std::string path;  // "workload[2]"
};

struct AssertionSpec {
  enum class Kind {
    kAvailability,
    kErrorRate,
    kLatency,
    kMaxPending,
    kReadyReplicas,
    kMaxRestarts,
    kFinalReplicas,
  };
  Kind kind;
  std::string name;
  std::string target;     // "<ns>/<name>" of a service or controller
  double bound = 0;       // min or max, in the summary's unit (fractions, ms, s)
  double percentile = 99;
};

struct LoadedScenario {
  Scenario proto;
  std::string path;      // as given
  std::string base_dir;  // for relative files
  std::string name;      // proto name, or the file's stem
  uint64_t seed = 1;
  Duration duration{};
  TimingProfile timing;
  std::string scheduler_mode = "greedy";
  int percentage_of_nodes_to_score = 0;
  std::vector<sim::NodeGroupSpec> node_groups;
  sim::WorldOptions world;
  std::vector<WorkloadAction> workload;
  std::vector<sim::TrafficSpec> traffic;
  std::vector<sim::FaultSpec> faults;
  std::vector<AssertionSpec> assertions;
  Duration sample_period{};
  std::vector<std::string> warnings;  // "FILE:LINE: warning: field: unknown field"
  int total_nodes() const;
};

// Reads and resolves a scenario. `overrides` are "path=value" strings
// ("seed=7", "cluster.node_groups[0].count=10", "cluster.timing=fast"), the
// value read as YAML. Errors are kBadRequest/kInvalid with messages that start
// with the file name.
StatusOr<LoadedScenario> load_scenario(const std::string& path,
                                       const std::vector<std::string>& overrides = {});
// The same from text (tests); `source_name` stands in for the file name.
StatusOr<LoadedScenario> load_scenario_text(const std::string& text, const std::string& source_name,
                                            const std::string& base_dir,
                                            const std::vector<std::string>& overrides = {});

// Applies one "a.b[2].c=value" override to a YAML tree (creating maps on the
// way; list indexes must exist).
Status apply_override(YAML::Node root, const std::string& assignment);

// Parses resources like {cpu: "4", memory: 16Gi, pods: "110"} into numbers.
StatusOr<sim::NodeResources> parse_node_resources(
    const google::protobuf::Map<std::string, std::string>& list, const std::string& path);

// The inverse, as Kubernetes prints a ResourceList: {cpu: "4", memory: "16Gi", ...}.
std::map<std::string, std::string> format_node_resources(const sim::NodeResources& r);

}  // namespace flotilla::scenarios
