// Fuzzes distribution specs: the input is read as YAML (syntax errors are the
// parser's business and skipped) and parsed as a duration and as a number
// distribution; what parses must sample, describe itself and report moments
// without tripping a sanitizer.
#include <yaml-cpp/yaml.h>

#include <cmath>
#include <cstdint>
#include <string>

#include "sim/engine/distribution.h"
#include "sim/engine/random.h"
#include "tests/fuzz/fuzz_check.h"

namespace flotilla::fuzz {
namespace {

void exercise(const sim::Distribution& d, bool duration) {
  sim::Xoshiro256StarStar rng(7);
  RandomStream& stream = rng;
  for (int i = 0; i < 16; ++i) {
    if (duration) {
      Duration s = d.sample_duration(stream);
      FUZZ_CHECK(s >= Duration::zero(), d.describe() + " drew a negative duration");
    } else {
      (void)d.sample(stream);
    }
  }
  (void)d.mean();
  (void)d.variance();
  FUZZ_CHECK(!d.describe().empty(), "empty description");
}

}  // namespace
}  // namespace flotilla::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace flotilla;
  std::string text(fuzz::as_text(data, size));
  if (text.find("csv") != std::string::npos &&
      (text.find("/dev") != std::string::npos || text.find("/proc") != std::string::npos)) {
    return 0;  // reading device files forever is not input handling (see scenario_fuzz.cc)
  }
  YAML::Node node;
  try {
    node = YAML::Load(text);
  } catch (const YAML::Exception&) {
    return 0;
  }
  sim::DistributionParseOptions options;
  options.base_dir = FLOTILLA_FUZZ_DATA_DIR;  // tests/fuzz/data: lat.csv
  auto duration = sim::parse_duration_distribution(node, "fuzz", options);
  if (duration.is_ok()) fuzz::exercise(*duration, true);
  auto number = sim::parse_number_distribution(node, "fuzz", options);
  if (number.is_ok()) fuzz::exercise(*number, false);
  if (node.IsScalar()) (void)sim::parse_number_with_suffix(node.Scalar());
  return 0;
}
