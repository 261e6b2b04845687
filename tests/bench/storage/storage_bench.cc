// The persistent store's costs (backends/storage): acknowledged writes per
// second with an fsync per write vs group commit at 1, 8 and 64 concurrent
// writers, and start-up recovery of 150,000 pods from the log alone and from a
// snapshot. The data directory is under $FLOTILLA_BENCH_DIR (default /tmp);
// fsync cost is the disk's, so quote figures with the machine.
#include <benchmark/benchmark.h>
#include <stdlib.h>

#include <chrono>
#include <filesystem>
#include <memory>
#include <string>

#include "backends/apiserver/splitmix_random.h"
#include "backends/live/asio_event_loop.h"
#include "backends/storage/durable_store.h"

namespace flotilla::storage {
namespace {

std::string bench_dir(const std::string& name) {
  const char* base = std::getenv("FLOTILLA_BENCH_DIR");
  std::string dir = std::string(base ? base : "/tmp") + "/flotilla-storage-bench-" + name + "-" +
                    std::to_string(::getpid());
  std::filesystem::remove_all(dir);
  return dir;
}

api::Object pod(int64_t i) {
  api::Pod p;
  p.mutable_metadata()->set_name("pod-" + std::to_string(i));
  p.mutable_metadata()->set_namespace_("default");
  (*p.mutable_metadata()->mutable_labels())["app"] = "web-" + std::to_string(i % 100);
  (*p.mutable_metadata()->mutable_labels())["tier"] = "frontend";
  api::Container* c = p.mutable_spec()->add_containers();
  c->set_name("main");
  c->set_image("registry.example.com/team/web:1.25.3");
  (*c->mutable_resources()->mutable_requests())["cpu"] = "100m";
  (*c->mutable_resources()->mutable_requests())["memory"] = "128Mi";
  p.mutable_spec()->set_node_name("node-" + std::to_string(i % 1000));
  return api::share(std::move(p));
}

struct Env {
  live::AsioEventLoop loop;
  apiserver::SplitMix64Stream random{1};
  std::string dir;
  std::unique_ptr<DurableStore> store;
  Env(const std::string& name, SyncMode mode, int64_t snapshot_every = 100000) : dir(bench_dir(name)) {
    store = DurableStore::open(loop, random, {},
                               {.dir = dir, .sync = mode, .snapshot_every = snapshot_every})
                .value();
  }
  ~Env() {
    store.reset();
    std::filesystem::remove_all(dir);
  }
};

// One create at a time, fsync'd inside create().
void BM_WritesFsyncPerWrite(benchmark::State& state) {
  Env env("per-write", SyncMode::kPerWrite);
  int64_t i = 0;
  for (auto _ : state) {
    auto r = env.store->create(pod(i++));
    if (!r.is_ok()) state.SkipWithError(r.status().message().c_str());
  }
  state.SetItemsProcessed(state.iterations());
  state.counters["fsyncs_per_write"] =
      static_cast<double>(env.store->syncs()) / static_cast<double>(env.store->records_written());
}
BENCHMARK(BM_WritesFsyncPerWrite)->Unit(benchmark::kMicrosecond)->UseRealTime();

// `range(0)` writers, each issuing its next create when the previous one is
// acknowledged (when_durable), as concurrent API clients do. One iteration:
// 1,000 acknowledged writes.
void BM_WritesGroupCommit(benchmark::State& state) {
  Env env("group-" + std::to_string(state.range(0)), SyncMode::kGroupCommit);
  const int writers = static_cast<int>(state.range(0));
  constexpr int kBatch = 1000;
  int64_t next = 0;
  for (auto _ : state) {
    int issued = 0;
    int acked = 0;
    std::function<void()> write_one = [&] {
      if (issued == kBatch) return;
      ++issued;
      auto r = env.store->create(pod(next++));
      if (!r.is_ok()) return;
      env.store->when_durable([&] {
        ++acked;
        write_one();
      });
    };
    for (int w = 0; w < writers; ++w) env.loop.post(write_one);
    env.loop.run_until([&] { return acked == kBatch; }, std::chrono::seconds(120));
  }
  state.SetItemsProcessed(state.iterations() * kBatch);
  state.counters["writes_per_fsync"] =
      static_cast<double>(env.store->records_written()) / static_cast<double>(env.store->syncs());
}
BENCHMARK(BM_WritesGroupCommit)->Arg(1)->Arg(8)->Arg(64)->Unit(benchmark::kMillisecond)->UseRealTime();

// Start-up with 150,000 pods: range(0) == 0 replays 150,000 log records,
// range(0) == 1 loads one snapshot. One iteration: open() (lock, read,
// decode, InMemoryStore::restore with its indexes).
void BM_Recover150kPods(benchmark::State& state) {
  constexpr int64_t kPods = 150000;
  const bool snapshot = state.range(0) == 1;
  std::string dir = bench_dir(snapshot ? "recover-snap" : "recover-log");
  {
    live::AsioEventLoop loop;
    apiserver::SplitMix64Stream random{1};
    auto s = DurableStore::open(loop, random, {},
                                {.dir = dir, .sync = SyncMode::kGroupCommit, .snapshot_every = 0})
                 .value();
    for (int64_t i = 0; i < kPods; ++i) (void)s->create(pod(i));
    if (snapshot) (void)s->compact();
  }
  for (auto _ : state) {
    live::AsioEventLoop loop;
    apiserver::SplitMix64Stream random{1};
    auto s = DurableStore::open(loop, random, {}, {.dir = dir, .sync = SyncMode::kPerWrite, .snapshot_every = 0});
    if (!s.is_ok() || (*s)->memory().object_count(api::Kind::kPod) != kPods) {
      state.SkipWithError("recovery lost pods");
      break;
    }
    state.PauseTiming();
    s->reset();
    state.ResumeTiming();
  }
  state.counters["bytes_on_disk"] = [&] {
    double n = 0;
    for (const auto& e : std::filesystem::directory_iterator(dir)) n += static_cast<double>(e.file_size());
    return n;
  }();
  std::filesystem::remove_all(dir);
}
BENCHMARK(BM_Recover150kPods)->Arg(0)->Arg(1)->Unit(benchmark::kMillisecond)->UseRealTime()->Iterations(5);

}  // namespace
}  // namespace flotilla::storage

BENCHMARK_MAIN();
