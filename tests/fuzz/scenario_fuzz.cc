// Fuzzes the scenario loader (schema decode, overrides-free resolution of every
// part, embedded manifests, distributions): any text gives a scenario or an
// error with a message, never a crash. Relative files resolve against the
// checked-in scenario library.
#include <cstdint>
#include <string>

#include "scenarios/loader.h"
#include "tests/fuzz/fuzz_check.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace flotilla;
  std::string text(fuzz::as_text(data, size));
  // Naming device or kernel files (/dev/zero, /proc/...) as a manifest or CSV
  // would make the loader read forever: that is the user's own file system, not
  // input handling, so such inputs are out of scope here.
  for (const char* special : {"/dev", "/proc", "/sys"}) {
    if (text.find(special) != std::string::npos) return 0;
  }
  auto loaded = scenarios::load_scenario_text(text, "fuzz.yaml", FLOTILLA_FUZZ_SCENARIO_DIR);
  if (!loaded.is_ok()) {
    FUZZ_CHECK(!loaded.status().message().empty(), "an error without a message");
    return 0;
  }
  (void)loaded->total_nodes();
  return 0;
}
