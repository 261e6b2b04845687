// The ContainerRuntime contract on sim::World's SimContainerRuntime, in virtual
// time. Behaviours are configured by image so the same checks hold as on Docker.
#include <memory>

#include "sim/engine/random.h"
#include "sim/engine/simulator.h"
#include "sim/world/world.h"
#include "tests/contract/container_runtime/container_runtime_contract.h"

namespace flotilla::contract {
namespace {

using std::chrono::milliseconds;

class SimHarness final : public ContainerRuntimeHarness {
 public:
  SimHarness() {
    sim::WorldOptions o;
    o.runtime.missing_images = {"contract/missing:1.0"};
    for (int code : {0, 3}) {
      sim::BehaviourSpec b;
      b.image = "contract/exit-" + std::to_string(code);
      b.exit_after = sim::fixed_duration(milliseconds(300));
      b.exit_code = code;
      o.runtime.behaviours.push_back(b);
    }
    sim::BehaviourSpec stubborn;
    stubborn.image = "contract/ignores-term";
    stubborn.ignore_sigterm = true;
    o.runtime.behaviours.push_back(stubborn);
    world_ = std::make_unique<sim::World>(sim_, random_, trace_, std::move(o));
    sim::NodeSpec n;
    n.name = "node-0";
    n.zone = "zone-a";
    n.rack = "rack-0";
    n.capacity.cpu_millis = 4000;
    n.capacity.memory_bytes = int64_t{8} << 30;
    n.capacity.pods = 110;
    node_ = *world_->add_node(n);
  }

  EventLoop& loop() override { return sim_; }
  ContainerRuntime& runtime() override { return world_->runtime(node_); }
  bool run_until(const std::function<bool()>& done, Duration timeout) override {
    if (done()) return true;
    sim_.set_stop_predicate(done);
    sim_.run_for(timeout);
    sim_.set_stop_predicate(nullptr);
    return done();
  }
  ContainerConfig server(const std::string& name) override {
    return config(name, "contract/server:1.0");
  }
  ContainerConfig exits_with(const std::string& name, int code) override {
    return config(name, "contract/exit-" + std::to_string(code));
  }
  ContainerConfig ignores_term(const std::string& name) override {
    return config(name, "contract/ignores-term");
  }
  std::string missing_image() override { return "contract/missing:1.0"; }
  std::vector<std::string> exec_exiting(int code) override {
    return {"sh", "-c", "exit " + std::to_string(code)};
  }
  bool exec_models_exit_codes() const override { return false; }
  Duration op_timeout() const override { return std::chrono::minutes(2); }

 private:
  static ContainerConfig config(const std::string& name, const std::string& image) {
    ContainerConfig c;
    c.name = name;
    c.image = image;
    return c;
  }
  sim::Simulator sim_;
  sim::SimRandom random_{42};
  NullTraceSink trace_;
  std::unique_ptr<sim::World> world_;
  sim::NodeId node_ = 0;
};

struct SimFactory {
  static std::unique_ptr<ContainerRuntimeHarness> make(std::string*) {
    return std::make_unique<SimHarness>();
  }
};

INSTANTIATE_TYPED_TEST_SUITE_P(Sim, ContainerRuntimeContractTest, ::testing::Types<SimFactory>);

}  // namespace
}  // namespace flotilla::contract
