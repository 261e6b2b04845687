// The classic hold model (pop the least event, push it back at time +=
// exponential increment) on each event queue and through sim::Simulator, with
// 10^3, 10^5 and 10^6 pending events (BM_HoldReplaceTop is the figure). Reports hold
// operations per second (items_per_second) and queue bytes per pending event (bytes_per_event).
#include <benchmark/benchmark.h>

#include <cmath>
#include <functional>
#include <vector>

#include "sim/engine/event_queue.h"
#include "sim/engine/random.h"
#include "sim/engine/simulator.h"

namespace flotilla::sim {
namespace {

constexpr double kMeanIncrementNs = 1e6;

// A ring of precomputed exponential increments (mean 1 ms), so the timing is
// the queue's and not the logarithm's.
class Increments {
 public:
  Increments() {
    Xoshiro256StarStar rng = SimRandom(2024).make_stream("hold");
    for (auto& v : values_) {
      v = static_cast<int64_t>(-kMeanIncrementNs * std::log1p(-rng.next_double())) + 1;
    }
  }
  int64_t next() { return values_[i_++ & (kSize - 1)]; }

 private:
  static constexpr size_t kSize = 1 << 16;
  std::vector<int64_t> values_ = std::vector<int64_t>(kSize);
  size_t i_ = 0;
};

template <typename Queue>
void fill(Queue& q, Increments& inc, int64_t n, uint64_t& seq) {
  for (int64_t i = 0; i < n; ++i) q.push(QueueEntry{inc.next() * 4, seq++});
}

template <typename Queue>
void report(benchmark::State& state, const Queue& q, int64_t n) {
  state.SetItemsProcessed(state.iterations());
  state.counters["bytes_per_event"] =
      static_cast<double>(q.memory_bytes()) / static_cast<double>(n);
}

// pop() then push(): what a simulator does when an event schedules one more.
template <typename Queue>
void BM_Hold(benchmark::State& state) {
  const int64_t n = state.range(0);
  Queue q;
  Increments inc;
  uint64_t seq = 0;
  fill(q, inc, n, seq);
  for (auto _ : state) {
    QueueEntry top = q.top();
    q.pop();
    q.push(QueueEntry{top.time + inc.next(), seq++});
  }
  benchmark::DoNotOptimize(q.top());
  report(state, q, n);
}

// The same through replace_top() (one sift instead of two).
template <typename Queue>
void BM_HoldReplaceTop(benchmark::State& state) {
  const int64_t n = state.range(0);
  Queue q;
  Increments inc;
  uint64_t seq = 0;
  fill(q, inc, n, seq);
  for (auto _ : state) {
    q.replace_top(QueueEntry{q.top().time + inc.next(), seq++});
  }
  benchmark::DoNotOptimize(q.top());
  report(state, q, n);
}

// Through the virtual EventQueue interface, as the Simulator uses it.
template <QueueKind kKind>
void BM_HoldVirtual(benchmark::State& state) {
  const int64_t n = state.range(0);
  std::unique_ptr<EventQueue> q = make_event_queue(kKind);
  Increments inc;
  uint64_t seq = 0;
  fill(*q, inc, n, seq);
  for (auto _ : state) {
    QueueEntry top = q->top();
    q->pop();
    q->push(QueueEntry{top.time + inc.next(), seq++});
  }
  benchmark::DoNotOptimize(q->top());
  report(state, *q, n);
}

// A full simulator event per iteration: each std::function callback schedules
// the next one at now + increment, keeping n events pending.
template <QueueKind kKind>
void BM_SimulatorHold(benchmark::State& state) {
  const int64_t n = state.range(0);
  Simulator sim(SimulatorOptions{.queue = kKind});
  Increments inc;
  struct Ctx {
    Simulator* sim;
    Increments* inc;
    std::function<void()> hold;
  } ctx{&sim, &inc, {}};
  ctx.hold = [c = &ctx] { c->sim->schedule_after(Duration(c->inc->next()), c->hold); };
  for (int64_t i = 0; i < n; ++i) sim.schedule_after(Duration(inc.next() * 4), ctx.hold);
  for (auto _ : state) sim.step();
  state.SetItemsProcessed(state.iterations());
  state.counters["bytes_per_event"] =
      static_cast<double>(sim.queue().memory_bytes()) / static_cast<double>(n);
  state.counters["sim_bytes_per_event"] =
      static_cast<double>(sim.memory_bytes()) / static_cast<double>(n);
}

// The same with cancellable timers (run_after + TimerHandle per event).
template <QueueKind kKind>
void BM_SimulatorHoldTimers(benchmark::State& state) {
  const int64_t n = state.range(0);
  Simulator sim(SimulatorOptions{.queue = kKind});
  Increments inc;
  std::vector<TimerHandle> handles(static_cast<size_t>(n));
  struct Ctx {
    Simulator* sim;
    Increments* inc;
    std::vector<TimerHandle>* handles;
  } ctx{&sim, &inc, &handles};
  std::function<void(size_t)> arm = [&](size_t i) {
    handles[i] = sim.run_after(Duration(inc.next()), [&arm, i] { arm(i); });
  };
  for (size_t i = 0; i < handles.size(); ++i) {
    handles[i] = sim.run_after(Duration(inc.next() * 4), [&arm, i] { arm(i); });
  }
  for (auto _ : state) sim.step();
  state.SetItemsProcessed(state.iterations());
  state.counters["sim_bytes_per_event"] =
      static_cast<double>(sim.memory_bytes()) / static_cast<double>(n);
  (void)ctx;
}

#define HOLD_SIZES ->Arg(1000)->Arg(100000)->Arg(1000000)

BENCHMARK_TEMPLATE(BM_Hold, BinaryHeapQueue) HOLD_SIZES;
BENCHMARK_TEMPLATE(BM_Hold, QuaternaryHeapQueue) HOLD_SIZES;
BENCHMARK_TEMPLATE(BM_Hold, LadderQueue) HOLD_SIZES;
BENCHMARK_TEMPLATE(BM_HoldReplaceTop, BinaryHeapQueue) HOLD_SIZES;
BENCHMARK_TEMPLATE(BM_HoldReplaceTop, QuaternaryHeapQueue) HOLD_SIZES;
BENCHMARK_TEMPLATE(BM_HoldReplaceTop, OctonaryHeapQueue) HOLD_SIZES;
BENCHMARK_TEMPLATE(BM_HoldReplaceTop, LadderQueue) HOLD_SIZES;
BENCHMARK_TEMPLATE(BM_HoldVirtual, QueueKind::kBinaryHeap) HOLD_SIZES;
BENCHMARK_TEMPLATE(BM_HoldVirtual, QueueKind::kQuaternaryHeap) HOLD_SIZES;
BENCHMARK_TEMPLATE(BM_HoldVirtual, QueueKind::kLadder) HOLD_SIZES;
BENCHMARK_TEMPLATE(BM_SimulatorHold, QueueKind::kBinaryHeap) HOLD_SIZES;
BENCHMARK_TEMPLATE(BM_SimulatorHold, QueueKind::kQuaternaryHeap) HOLD_SIZES;
BENCHMARK_TEMPLATE(BM_SimulatorHold, QueueKind::kLadder) HOLD_SIZES;
BENCHMARK_TEMPLATE(BM_SimulatorHoldTimers, QueueKind::kQuaternaryHeap) HOLD_SIZES;
BENCHMARK_TEMPLATE(BM_SimulatorHoldTimers, QueueKind::kLadder) HOLD_SIZES;

}  // namespace
}  // namespace flotilla::sim

BENCHMARK_MAIN();
