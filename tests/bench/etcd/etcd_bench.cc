// EtcdStore vs DurableStore through the Store port, on one machine: create
// and update (acknowledged: etcd's raft commit and fsync, then the watch
// echo; the durable store's fsync per write), get and a 1,000-pod list (both
// served from memory). etcd runs locally (LocalEtcd, its data in /tmp), so
// the write figures are mostly the disk's fsync; quote them with the machine.
#include <benchmark/benchmark.h>
#include <unistd.h>

#include <filesystem>
#include <memory>
#include <string>

#include "backends/apiserver/splitmix_random.h"
#include "backends/etcd/etcd_store.h"
#include "backends/live/asio_event_loop.h"
#include "backends/storage/durable_store.h"
#include "tests/backends/etcd/local_etcd.h"

namespace flotilla {
namespace {

api::Object pod(int64_t i) {
  api::Pod p;
  p.mutable_metadata()->set_name("pod-" + std::to_string(i));
  p.mutable_metadata()->set_namespace_("default");
  (*p.mutable_metadata()->mutable_labels())["app"] = "web-" + std::to_string(i % 10);
  api::Container* c = p.mutable_spec()->add_containers();
  c->set_name("main");
  c->set_image("registry.example.com/team/web:1.25.3");
  (*c->mutable_resources()->mutable_requests())["cpu"] = "100m";
  p.mutable_spec()->set_node_name("node-" + std::to_string(i % 100));
  return api::share(std::move(p));
}

etcd::testing::LocalEtcd* local_etcd() {
  static std::unique_ptr<etcd::testing::LocalEtcd> e = [] {
    auto s = etcd::testing::LocalEtcd::start();
    if (!s.is_ok()) {
      std::fprintf(stderr, "etcd_bench: %s\n", s.status().message().c_str());
      std::exit(1);
    }
    return std::move(*s);
  }();
  return e.get();
}

// One store of the kind the benchmark's first argument names: 0 etcd,
// 1 durable (fsync per write).
struct Env {
  live::AsioEventLoop loop;
  apiserver::SplitMix64Stream random{1};
  std::string dir;
  std::unique_ptr<Store> store;

  explicit Env(int64_t kind) {
    static int n = 0;
    if (kind == 0) {
      etcd::EtcdOptions o;
      o.endpoints = local_etcd()->endpoints();
      o.prefix = "/bench-" + std::to_string(::getpid()) + "-" + std::to_string(++n) + "/";
      store = etcd::EtcdStore::open(loop, random, {}, o).value();
    } else {
      dir =
          "/tmp/flotilla-etcd-bench-wal-" + std::to_string(::getpid()) + "-" + std::to_string(++n);
      store = storage::DurableStore::open(loop, random, {},
                                          {.dir = dir, .sync = storage::SyncMode::kPerWrite})
                  .value();
    }
  }
  ~Env() {
    store.reset();
    if (!dir.empty()) std::filesystem::remove_all(dir);
  }
  void fill(int64_t count) {
    for (int64_t i = 0; i < count; ++i) (void)store->create(pod(i));
  }
};

const char* label(int64_t kind) { return kind == 0 ? "etcd" : "durable"; }

void BM_Create(benchmark::State& state) {
  Env env(state.range(0));
  state.SetLabel(label(state.range(0)));
  int64_t i = 0;
  for (auto _ : state) {
    auto r = env.store->create(pod(i++));
    if (!r.is_ok()) state.SkipWithError(r.status().message().c_str());
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_Create)->Arg(0)->Arg(1)->Unit(benchmark::kMicrosecond)->UseRealTime();

void BM_Update(benchmark::State& state) {
  Env env(state.range(0));
  state.SetLabel(label(state.range(0)));
  env.fill(1);
  int64_t i = 0;
  for (auto _ : state) {
    api::Pod p =
        static_cast<const api::Pod&>(*env.store->get(api::Kind::kPod, "default", "pod-0").value());
    (*p.mutable_metadata()->mutable_annotations())["n"] = std::to_string(i++);
    auto r = env.store->update(api::share(std::move(p)));
    if (!r.is_ok()) state.SkipWithError(r.status().message().c_str());
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_Update)->Arg(0)->Arg(1)->Unit(benchmark::kMicrosecond)->UseRealTime();

void BM_Get(benchmark::State& state) {
  Env env(state.range(0));
  state.SetLabel(label(state.range(0)));
  env.fill(1000);
  int64_t i = 0;
  for (auto _ : state) {
    auto r = env.store->get(api::Kind::kPod, "default", "pod-" + std::to_string(i++ % 1000));
    benchmark::DoNotOptimize(r);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_Get)->Arg(0)->Arg(1)->Unit(benchmark::kMicrosecond)->UseRealTime();

// All 1,000 pods of a namespace, then 100 of them by label.
void BM_List(benchmark::State& state) {
  Env env(state.range(0));
  state.SetLabel(label(state.range(0)));
  env.fill(1000);
  ListOptions all;
  all.ns = "default";
  ListOptions by_label;
  by_label.labels = api::LabelSelector::parse("app=web-3").value();
  for (auto _ : state) {
    auto a = env.store->list(api::Kind::kPod, all);
    auto b = env.store->list(api::Kind::kPod, by_label);
    if (!a.is_ok() || a->items.size() != 1000 || !b.is_ok() || b->items.size() != 100) {
      state.SkipWithError("list returned the wrong items");
    }
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_List)->Arg(0)->Arg(1)->Unit(benchmark::kMicrosecond)->UseRealTime();

}  // namespace
}  // namespace flotilla

BENCHMARK_MAIN();
