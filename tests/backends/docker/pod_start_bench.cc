// Pod creation to running (sandbox + 1 container) through DockerContainerRuntime
// vs the raw Engine API calls that create and start the same two containers.
// Needs a running Docker engine with Flotilla's images (scripts/ensure-docker.sh).
#include <benchmark/benchmark.h>
#include <unistd.h>

#include <optional>

#include "backends/docker/docker_container_runtime.h"
#include "backends/live/asio_event_loop.h"

namespace flotilla::docker {
namespace {

using json = nlohmann::json;
const std::string kNode = "bench-" + std::to_string(::getpid());
const std::string kNetwork = "flotilla-bench-" + std::to_string(::getpid());

void BM_FlotillaPodToRunning(benchmark::State& state) {
  live::AsioEventLoop loop;
  DockerRuntimeOptions o;
  o.node = kNode;
  o.network = kNetwork;
  o.subnets = {"10.223.0.0/24", "10.223.1.0/24"};
  auto rt = DockerContainerRuntime::create(loop, o);
  if (!rt.is_ok()) return state.SkipWithError(rt.status().to_string().c_str());
  int i = 0;
  for (auto _ : state) {
    PodSandboxConfig p;
    p.pod_uid = "uid-" + std::to_string(i);
    p.ns = "bench";
    p.name = "pod-" + std::to_string(i++);
    ContainerConfig c;
    c.name = "web";
    c.image = "flotilla/demo-server:latest";
    std::optional<StatusOr<std::string>> started;
    std::string sandbox;
    (*rt)->run_pod_sandbox(p, [&](StatusOr<PodSandboxStatus> s) {
      if (!s.is_ok()) {
        started.emplace(s.status());
        return;
      }
      sandbox = s->id;
      (*rt)->start_container(sandbox, c, [&](StatusOr<std::string> id) { started.emplace(id); });
    });
    loop.run_until([&] { return started.has_value(); }, std::chrono::seconds(60));
    if (!started || !started->is_ok()) return state.SkipWithError("pod did not start");
    state.PauseTiming();
    bool removed = false;
    (*rt)->remove_pod_sandbox(sandbox, std::chrono::seconds(1), [&](Status) { removed = true; });
    loop.run_until([&] { return removed; }, std::chrono::seconds(60));
    state.ResumeTiming();
  }
  rt->reset();
  (void)remove_all_flotilla_objects(DockerClient(), kNode);
}

void BM_RawDockerCreateStart(benchmark::State& state) {
  DockerClient client;
  int i = 0;
  for (auto _ : state) {
    const std::string n = std::to_string(::getpid()) + "-" + std::to_string(i++);
    json labels = {{"flotilla.io/managed", "true"}, {"flotilla.io/node", kNode}};
    auto sb = client.call("POST", "/containers/create?name=raw-pause-" + n,
                          {{"Image", "flotilla/pause:latest"},
                           {"Labels", labels},
                           {"HostConfig", {{"NetworkMode", kNetwork}}}});
    if (!sb.is_ok()) return state.SkipWithError(sb.status().to_string().c_str());
    const std::string sid = (*sb)["Id"];
    (void)client.call("POST", "/containers/" + sid + "/start");
    auto app = client.call("POST", "/containers/create?name=raw-app-" + n,
                           {{"Image", "flotilla/demo-server:latest"},
                            {"Labels", labels},
                            {"HostConfig", {{"NetworkMode", "container:" + sid}}}});
    if (!app.is_ok()) return state.SkipWithError(app.status().to_string().c_str());
    const std::string aid = (*app)["Id"];
    (void)client.call("POST", "/containers/" + aid + "/start");
    state.PauseTiming();
    (void)client.call("DELETE", "/containers/" + aid + "?force=1");
    (void)client.call("DELETE", "/containers/" + sid + "?force=1");
    state.ResumeTiming();
  }
}

// Raw first: the runtime's create() makes the network both use.
BENCHMARK(BM_FlotillaPodToRunning)->Iterations(30)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_RawDockerCreateStart)->Iterations(30)->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace
}  // namespace flotilla::docker

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  flotilla::docker::DockerClient client;
  (void)flotilla::docker::remove_all_flotilla_objects(client, flotilla::docker::kNode);
  (void)client.call("DELETE", "/networks/" + flotilla::docker::kNetwork);
  return 0;
}
