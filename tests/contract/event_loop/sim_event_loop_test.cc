// The EventLoop contract on sim::Simulator, once per event queue.
#include <memory>

#include "sim/engine/simulator.h"
#include "tests/contract/event_loop/event_loop_contract.h"

namespace flotilla::contract {
namespace {

template <sim::QueueKind kKind>
class SimHarness final : public EventLoopHarness {
 public:
  EventLoop& loop() override { return sim_; }
  void run_until_idle() override { sim_.run(); }
  void advance(Duration d) override { sim_.run_for(d); }
  bool virtual_time() const override { return true; }

 private:
  sim::Simulator sim_{sim::SimulatorOptions{.queue = kKind}};
};

template <sim::QueueKind kKind>
struct SimFactory {
  static std::unique_ptr<EventLoopHarness> make() { return std::make_unique<SimHarness<kKind>>(); }
};

using SimLoops = ::testing::Types<SimFactory<sim::QueueKind::kBinaryHeap>,
                                  SimFactory<sim::QueueKind::kQuaternaryHeap>,
                                  SimFactory<sim::QueueKind::kLadder>>;
INSTANTIATE_TYPED_TEST_SUITE_P(Simulator, EventLoopContractTest, SimLoops);

}  // namespace
}  // namespace flotilla::contract
