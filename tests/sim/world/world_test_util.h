// Helpers for World tests: a recording trace sink and a way to wait for one
// asynchronous port call in virtual time.
#pragma once

#include <optional>
#include <vector>

#include "core/ports/trace.h"
#include "sim/engine/random.h"
#include "sim/engine/simulator.h"
#include "sim/world/world.h"

namespace flotilla::sim::testing {

class RecordingTraceSink final : public TraceSink {
 public:
  void record(const trace::Record& r) override { records.push_back(r); }
  std::vector<trace::Record> of_type(trace::EventType t) const {
    std::vector<trace::Record> out;
    for (const auto& r : records) {
      if (r.type() == t) out.push_back(r);
    }
    return out;
  }
  std::vector<trace::Record> records;
};

// Steps the simulator until `call`'s callback has run; returns its value.
template <typename T, typename Call>
T await(Simulator& sim, Call call) {
  std::optional<T> result;
  call([&](T v) { result.emplace(std::move(v)); });
  while (!result && sim.step()) {
  }
  if (!result) std::abort();  // the callback never ran: a bug in the world
  return std::move(*result);
}

}  // namespace flotilla::sim::testing
