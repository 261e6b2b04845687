// The endpoints controllers' work for one large Service (the large
// scenario's: 15,000 pods behind one port), per SubsetBuilder operation:
// a pod snapshot that leaves the address as it was (most status writes), one
// that moves it between ready and not ready, filling a new Endpoints object
// with every address (a write), and the store's no-op check of such a write.
// Then whole syncs through the store on virtual time: one pod gone not ready
// (or ready again) and the controller's batched sync that follows, for the
// Endpoints controller (its object truncated at 1,000), the EndpointSlice
// controller (one 100-endpoint slice rewritten) and neither (the pod's own
// write alone).
#include <benchmark/benchmark.h>

#include <cstdio>
#include <memory>
#include <type_traits>
#include <string>
#include <vector>

#include "core/api/object.h"
#include "core/controllers/endpoint_slice.h"
#include "core/controllers/endpoints.h"
#include "core/store/in_memory_store.h"
#include "sim/engine/random.h"
#include "sim/engine/simulator.h"

namespace flotilla::ctrl {
namespace {

api::Object make_service() {
  api::Service s;
  s.mutable_metadata()->set_name("web");
  s.mutable_metadata()->set_namespace_("default");
  (*s.mutable_spec()->mutable_selector())["app"] = "web";
  auto* p = s.mutable_spec()->add_ports();
  p->set_name("http");
  p->set_port(80);
  p->mutable_target_port()->set_str_val("http");
  return api::share(std::move(s));
}

// Pod `i` of the service as the store holds it after a status write with
// resourceVersion `rv`, ready or not.
api::Object make_pod(int i, int64_t rv, bool ready) {
  api::Pod p;
  auto* m = p.mutable_metadata();
  m->set_name("web-" + std::to_string(100000 + i) + "-x7k2p");
  m->set_namespace_("default");
  char uid[40];
  std::snprintf(uid, sizeof uid, "%08x-5e1d-4c2a-9b7f-%012x", static_cast<unsigned>(i),
                static_cast<unsigned>(i) * 2654435761U);
  m->set_uid(uid);
  m->set_resource_version(std::to_string(rv));
  (*m->mutable_labels())["app"] = "web";
  p.mutable_spec()->set_node_name("node-" + std::to_string(i / 30));
  auto* c = p.mutable_spec()->add_containers();
  c->set_name("main");
  auto* port = c->add_ports();
  port->set_name("http");
  port->set_container_port(8080);
  p.mutable_status()->set_phase("Running");
  p.mutable_status()->set_pod_ip("10." + std::to_string(i / 62500) + "." +
                                 std::to_string(i / 250 % 250) + "." + std::to_string(i % 250 + 1));
  auto* cond = p.mutable_status()->add_conditions();
  cond->set_type("Ready");
  cond->set_status(ready ? "True" : "False");
  return api::share(std::move(p));
}

std::string name_of(const api::Object& pod) { return api::meta_of(*pod).name(); }

struct Service {
  explicit Service(int n) : builder(make_service()) {
    for (int i = 0; i < n; ++i) {
      api::Object pod = make_pod(i, 1, true);
      names.push_back(name_of(pod));
      builder.set(names.back(), pod);
    }
  }
  SubsetBuilder builder;
  std::vector<std::string> names;
};

// Every pod of the service given new snapshots in turn, the rounds
// alternating between `first` and ready; returns the builder's version
// moves over the whole run.
uint64_t set_in_rounds(benchmark::State& state, bool first) {
  const int n = static_cast<int>(state.range(0));
  Service s(n);
  std::vector<api::Object> next[2];
  for (int i = 0; i < n; ++i) {
    next[0].push_back(make_pod(i, 2, first));
    next[1].push_back(make_pod(i, 3, true));
  }
  int i = 0, round = 0;
  const uint64_t version = s.builder.version();
  for (auto _ : state) {
    s.builder.set(s.names[i], next[round][i]);
    if (++i == n) i = 0, round ^= 1;
  }
  state.SetItemsProcessed(state.iterations());
  return s.builder.version() - version;
}

// A new snapshot of a pod that serves as before: decided, compared, kept.
void BM_SetUnchanged(benchmark::State& state) {
  if (set_in_rounds(state, true) != 0)
    state.SkipWithError("an unchanged address moved the builder");
}
BENCHMARK(BM_SetUnchanged)->Arg(15000);

// A pod going not ready, then ready again: taken out of one list, put in the other.
void BM_SetReadyFlip(benchmark::State& state) { set_in_rounds(state, false); }
BENCHMARK(BM_SetReadyFlip)->Arg(15000);

// A write's new object: every address copied in, then freed (as the store
// frees the version it replaces).
void BM_Fill(benchmark::State& state) {
  Service s(static_cast<int>(state.range(0)));
  for (auto _ : state) {
    api::Endpoints e;
    s.builder.fill(e.mutable_subsets());
    benchmark::DoNotOptimize(e.subsets_size());
  }
  state.SetItemsProcessed(state.iterations() * state.range(0));
}
BENCHMARK(BM_Fill)->Arg(15000)->Unit(benchmark::kMillisecond);

// The store's no-op check of a write (api::same_bytes): the stored object
// and the new one, both 15,000 addresses, of the same size but for one
// address (a pod gone not ready and another ready: sizes stay equal).
void BM_StoreNoOpCheck(benchmark::State& state) {
  Service s(static_cast<int>(state.range(0)));
  api::Endpoints stored;
  s.builder.fill(stored.mutable_subsets());
  api::Endpoints next = stored;
  api::EndpointSubset* subset = next.mutable_subsets(0);
  subset->mutable_addresses(subset->addresses_size() - 1)
      ->mutable_target_ref()
      ->set_uid(std::string(36, 'f'));
  for (auto _ : state) {
    bool same = api::same_bytes(next, stored);
    if (same) state.SkipWithError("objects that differ compare equal");
    benchmark::DoNotOptimize(same);
  }
  state.SetItemsProcessed(state.iterations() * state.range(0));
}
BENCHMARK(BM_StoreNoOpCheck)->Arg(15000)->Unit(benchmark::kMillisecond);

struct NullTrace final : TraceSink {
  void record(const trace::Record&) override {}
};

// A store holding the service and its `n` ready pods, `Controller` (or none)
// started on it and settled; then each iteration flips one pod's readiness
// (its store write) and runs the batch period on (the sync and its writes).
template <typename Controller>
void sync_after_flip(benchmark::State& state) {
  const int n = static_cast<int>(state.range(0));
  sim::Simulator sim;
  sim::SimRandom random(7);
  auto stream = random.stream("store");
  store::InMemoryStore store(sim, *stream);
  NullTrace trace;
  TimingProfile timing = TimingProfile::kubernetes();
  timing.endpoint_updates_batch_period = seconds(1);
  (void)store.create(make_service());
  for (int i = 0; i < n; ++i) {
    api::Pod pod = static_cast<const api::Pod&>(*make_pod(i, 0, true));
    pod.mutable_metadata()->clear_resource_version();
    pod.mutable_metadata()->clear_uid();
    if (!store.create(api::share(std::move(pod))).is_ok()) state.SkipWithError("a pod was refused");
  }
  std::unique_ptr<std::conditional_t<std::is_void_v<Controller>, int, Controller>> controller;
  if constexpr (!std::is_same_v<Controller, void>) {
    controller = std::make_unique<Controller>(ControllerContext{store, sim, trace, timing});
    if (!controller->start().is_ok()) state.SkipWithError("the controller did not start");
  }
  sim.run_for(seconds(2));
  std::vector<api::Object> stored;
  for (int i = 0; i < n; ++i) {
    stored.push_back(*store.get(api::Kind::kPod, "default", name_of(make_pod(i, 0, true))));
  }
  int i = 0;
  for (auto _ : state) {
    const auto& pod = static_cast<const api::Pod&>(*stored[i]);
    api::Pod next = pod;
    auto* cond = next.mutable_status()->mutable_conditions(0);
    cond->set_status(cond->status() == "True" ? "False" : "True");
    StatusOr<api::Object> written = store.update(api::share(std::move(next)));
    if (!written.is_ok()) {
      state.SkipWithError(written.status().to_string().c_str());
      break;
    }
    stored[i] = *written;
    sim.run_for(seconds(1));
    if (++i == n) i = 0;
  }
  if constexpr (!std::is_same_v<Controller, void>) {
    state.counters["writes"] = static_cast<double>(controller->writes());
  }
}

void BM_SyncAfterFlip_PodWriteOnly(benchmark::State& state) { sync_after_flip<void>(state); }
BENCHMARK(BM_SyncAfterFlip_PodWriteOnly)->Arg(15000)->Unit(benchmark::kMicrosecond);

void BM_SyncAfterFlip_Endpoints(benchmark::State& state) {
  sync_after_flip<EndpointsController>(state);
}
BENCHMARK(BM_SyncAfterFlip_Endpoints)->Arg(15000)->Unit(benchmark::kMicrosecond);

void BM_SyncAfterFlip_EndpointSlices(benchmark::State& state) {
  sync_after_flip<EndpointSliceController>(state);
}
BENCHMARK(BM_SyncAfterFlip_EndpointSlices)->Arg(15000)->Unit(benchmark::kMicrosecond);

}  // namespace
}  // namespace flotilla::ctrl

BENCHMARK_MAIN();
