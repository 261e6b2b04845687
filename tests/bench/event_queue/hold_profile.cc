// A fixed-count hold-model driver for instruction-level profiling (callgrind,
// cachegrind): unlike the Google Benchmark loop it runs an exact number of
// operations, so two runs with different counts give the instructions per
// operation by difference, free of setup cost and repeatable on a loaded box.
//   valgrind --tool=callgrind hold_profile quaternary 1000 2000000
// Variants: binary, quaternary, octonary, ladder (replace_top), quaternary_poppush, virtual,
// simulator (4-ary heap), simulator_ladder.
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <memory>
#include <string_view>
#include <vector>

#include "sim/engine/event_queue.h"
#include "sim/engine/random.h"
#include "sim/engine/simulator.h"

namespace flotilla::sim {
namespace {

// The same precomputed exponential increments (mean 1 ms) as the benchmark.
std::vector<int64_t> make_increments() {
  std::vector<int64_t> v(size_t{1} << 16);
  Xoshiro256StarStar rng = SimRandom(2024).make_stream("hold");
  for (auto& x : v) x = static_cast<int64_t>(-1e6 * std::log1p(-rng.next_double())) + 1;
  return v;
}

template <typename Queue>
int64_t hold_replace_top(Queue& q, const std::vector<int64_t>& inc, int64_t n, int64_t ops) {
  uint64_t seq = 0;
  size_t i = 0;
  for (int64_t k = 0; k < n; ++k) q.push(QueueEntry{inc[i++ & 0xffff] * 4, seq++});
  for (int64_t k = 0; k < ops; ++k) {
    q.replace_top(QueueEntry{q.top().time + inc[i++ & 0xffff], seq++});
  }
  return q.top().time;
}

template <typename Queue>
int64_t hold_pop_push(Queue& q, const std::vector<int64_t>& inc, int64_t n, int64_t ops) {
  uint64_t seq = 0;
  size_t i = 0;
  for (int64_t k = 0; k < n; ++k) q.push(QueueEntry{inc[i++ & 0xffff] * 4, seq++});
  for (int64_t k = 0; k < ops; ++k) {
    QueueEntry top = q.top();
    q.pop();
    q.push(QueueEntry{top.time + inc[i++ & 0xffff], seq++});
  }
  return q.top().time;
}

// As BM_SimulatorHold: the callback captures one pointer, so it fits
// std::function's small buffer and scheduling it allocates nothing.
int64_t simulator_hold(QueueKind kind, const std::vector<int64_t>& inc, int64_t n, int64_t ops) {
  Simulator sim(SimulatorOptions{.queue = kind});
  struct Ctx {
    Simulator* sim;
    const std::vector<int64_t>* inc;
    size_t i;
    std::function<void()> hold;
  } ctx{&sim, &inc, 0, {}};
  ctx.hold = [c = &ctx] { c->sim->schedule_after(Duration((*c->inc)[c->i++ & 0xffff]), c->hold); };
  for (int64_t k = 0; k < n; ++k) {
    sim.schedule_after(Duration(inc[ctx.i++ & 0xffff] * 4), ctx.hold);
  }
  for (int64_t k = 0; k < ops; ++k) sim.step();
  return to_nanos(sim.now());
}

}  // namespace
}  // namespace flotilla::sim

int main(int argc, char** argv) {
  using namespace flotilla::sim;
  if (argc != 4) {
    std::fprintf(stderr,
                 "usage: %s "
                 "binary|quaternary|octonary|ladder|quaternary_poppush|virtual|simulator|simulator_"
                 "ladder N OPS\n",
                 argv[0]);
    return 2;
  }
  std::string_view variant = argv[1];
  int64_t n = std::atoll(argv[2]);
  int64_t ops = std::atoll(argv[3]);
  std::vector<int64_t> inc = make_increments();
  int64_t result = 0;
  if (variant == "binary") {
    BinaryHeapQueue q;
    result = hold_replace_top(q, inc, n, ops);
  } else if (variant == "quaternary") {
    QuaternaryHeapQueue q;
    result = hold_replace_top(q, inc, n, ops);
  } else if (variant == "octonary") {
    OctonaryHeapQueue q;
    result = hold_replace_top(q, inc, n, ops);
  } else if (variant == "ladder") {
    LadderQueue q;
    result = hold_replace_top(q, inc, n, ops);
  } else if (variant == "quaternary_poppush") {
    QuaternaryHeapQueue q;
    result = hold_pop_push(q, inc, n, ops);
  } else if (variant == "virtual") {
    std::unique_ptr<EventQueue> q = make_event_queue(QueueKind::kQuaternaryHeap);
    result = hold_pop_push(*q, inc, n, ops);
  } else if (variant == "simulator") {
    result = simulator_hold(QueueKind::kQuaternaryHeap, inc, n, ops);
  } else if (variant == "simulator_ladder") {
    result = simulator_hold(QueueKind::kLadder, inc, n, ops);
  } else {
    std::fprintf(stderr, "unknown variant %s\n", argv[1]);
    return 2;
  }
  std::printf("%s n=%lld ops=%lld last_time=%lld\n", argv[1], static_cast<long long>(n),
              static_cast<long long>(ops), static_cast<long long>(result));
  return 0;
}
