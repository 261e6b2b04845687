// DockerContainerRuntime: the ContainerRuntime port for ONE logical node, on a
// Docker engine that several logical nodes may share. A pod is a sandbox
// container (flotilla/pause) on a bridge network Flotilla creates, holding the
// pod's IP; app containers join its network namespace. Everything created is
// labelled flotilla.io/managed=true and flotilla.io/node=<node>, and the runtime
// sees only its own node's objects, so a restarted Flotilla finds (adopts) them.
// Blocking Engine API calls run on worker threads; every result and event comes
// back through the EventLoop, never on a foreign thread.
#pragma once

#include <condition_variable>
#include <deque>
#include <future>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "backends/docker/docker_client.h"
#include "core/ports/container_runtime.h"

namespace flotilla::docker {

inline constexpr std::string_view kManagedLabel = "flotilla.io/managed";
inline constexpr std::string_view kNodeLabel = "flotilla.io/node";
inline constexpr std::string_view kPodUidLabel = "flotilla.io/pod-uid";
inline constexpr std::string_view kPodNameLabel = "flotilla.io/pod-name";
inline constexpr std::string_view kNamespaceLabel = "flotilla.io/namespace";
inline constexpr std::string_view kContainerLabel = "flotilla.io/container";
inline constexpr std::string_view kRoleLabel = "flotilla.io/role";  // sandbox | app | volume
inline constexpr std::string_view kSandboxIdLabel = "flotilla.io/sandbox-id";
inline constexpr std::string_view kVolumesLabel = "flotilla.io/volumes";  // JSON, on sandboxes
inline constexpr std::string_view kSharedVolumeLabel = "flotilla.io/shared-volume";

struct DockerRuntimeOptions {
  std::string node;  // the logical node; required
  std::string socket_path = std::string(kDefaultSocket);
  // The bridge network pods get their IPs on, created when absent with the
  // first of `subnets` that does not clash with an existing network.
  std::string network = "flotilla";
  std::vector<std::string> subnets = {"10.213.0.0/16", "10.214.0.0/16", "10.215.0.0/16",
                                      "172.29.0.0/16", "172.30.0.0/16"};
  std::string pause_image = "flotilla/pause:latest";
  // The pods' resolver (HostConfig.Dns of the sandbox, which its containers
  // share), used when the sandbox config names none: e.g. the gateway of
  // `network`, where the run's DnsServer answers <svc>.<ns>.svc.cluster.local.
  // Docker's embedded resolver (127.0.0.11) forwards to it from the pod.
  std::vector<std::string> dns_servers;
  std::vector<std::string> dns_options = {"ndots:5"};  // with dns servers, as Kubernetes
  int64_t pids_limit = 1024;  // per container
  // Capabilities kept after CapDrop ALL: a subset of Docker's default set, the
  // ones ordinary servers need (bind low ports, drop privileges, own files).
  std::vector<std::string> capabilities = {"CHOWN",  "DAC_OVERRIDE", "FOWNER", "FSETID",
                                           "KILL",   "SETGID",       "SETUID", "NET_BIND_SERVICE"};
  int worker_threads = 8;
  Duration call_timeout = std::chrono::seconds(60);
};

class DockerContainerRuntime final : public ContainerRuntime {
 public:
  // Connects to the daemon (Errors: kUnavailable, with how to start it),
  // makes sure the network exists and opens the /events stream before
  // returning, so no event of a later call is missed. Blocks the caller.
  static StatusOr<std::unique_ptr<DockerContainerRuntime>> create(EventLoop& loop,
                                                                  DockerRuntimeOptions options);
  // Stops the event stream and waits for calls in flight; their callbacks are
  // dropped. Containers keep running (a restarted Flotilla adopts them).
  ~DockerContainerRuntime() override;

  // --- ContainerRuntime ---
  void pull_image(const std::string& image, Callback<Status> done) override;
  void run_pod_sandbox(const PodSandboxConfig& config,
                       Callback<StatusOr<PodSandboxStatus>> done) override;
  void remove_pod_sandbox(const std::string& sandbox_id, Duration grace,
                          Callback<Status> done) override;
  void start_container(const std::string& sandbox_id, const ContainerConfig& config,
                       Callback<StatusOr<std::string>> done) override;
  void stop_container(const std::string& container_id, Duration grace,
                      Callback<Status> done) override;
  void exec(const std::string& container_id, const std::vector<std::string>& command,
            Duration timeout, Callback<StatusOr<int>> done) override;
  void list_pod_sandboxes(Callback<StatusOr<std::vector<PodSandboxStatus>>> done) override;
  [[nodiscard]] std::unique_ptr<RuntimeSubscription> subscribe(
      std::function<void(const ContainerEvent&)> on_event) override;

  // A container's stdout and stderr as kept by Docker (json-file), for
  // `kubectl logs`. Without `follow`, `on_data` gets everything so far and
  // `done` runs; with it, output keeps coming until the container ends or the
  // returned handle is destroyed. Both callbacks run on the loop.
  class LogStream {
   public:
    virtual ~LogStream() = default;
  };
  [[nodiscard]] std::unique_ptr<LogStream> logs(const std::string& container_id, bool follow,
                                                std::function<void(std::string)> on_data,
                                                Callback<Status> done);
  // The port's read_logs: logs() behind the port's handle.
  [[nodiscard]] std::unique_ptr<ContainerLogStream> read_logs(
      const std::string& container_id, bool follow, std::function<void(std::string)> on_data,
      Callback<Status> done) override;

  const std::string& node() const { return options_.node; }
  const std::string& network_id() const { return network_id_; }
  DockerClient& client() { return client_; }

 private:
  class Sub;
  class Logs;
  struct SandboxInfo {
    std::string pod_uid, ns, name;
    nlohmann::json volumes;  // [{name, type, docker}]
  };

  DockerContainerRuntime(EventLoop& loop, DockerRuntimeOptions options);
  Status ensure_network();
  Status start_events();
  void on_event_json(const nlohmann::json& e);

  // Runs `work` on a worker thread and `done(result)` on the loop.
  template <typename T>
  void run_blocking(std::function<T()> work, Callback<T> done);
  void enqueue(std::function<void()> job);
  void worker_main();

  // Blocking bodies of the port's calls.
  Status do_pull(const std::string& image);
  StatusOr<PodSandboxStatus> do_run_sandbox(const PodSandboxConfig& config);
  Status do_remove_sandbox(const std::string& sandbox_id, Duration grace);
  StatusOr<std::string> do_start_container(const std::string& sandbox_id,
                                           const ContainerConfig& config);
  Status do_stop_container(const std::string& container_id, Duration grace);
  StatusOr<int> do_exec(const std::string& container_id, const std::vector<std::string>& command,
                        Duration timeout);
  StatusOr<std::vector<PodSandboxStatus>> do_list();
  // TERM to each running container, wait up to `grace`, then force-remove.
  void stop_and_remove(const std::vector<std::string>& ids, Duration grace);
  StatusOr<SandboxInfo> sandbox_info(const std::string& sandbox_id);
  nlohmann::json node_filter() const;  // label filters of this node
  std::string image_missing_message(const std::string& image) const;

  EventLoop& loop_;
  DockerRuntimeOptions options_;
  DockerClient client_;
  std::string network_id_;
  int64_t wall_to_loop_ns_ = 0;  // loop time minus wall time, set at construction
  std::shared_ptr<int> alive_ = std::make_shared<int>(0);

  // Workers.
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> jobs_;
  bool stopping_ = false;
  std::vector<std::thread> workers_;

  // Sandboxes created or seen by this runtime (guarded by mu_), and sandboxes
  // being removed, whose death is not a loss.
  std::map<std::string, SandboxInfo> sandboxes_;
  std::set<std::string> removing_;
  std::set<std::string> oom_seen_;  // events thread only

  // Events.
  StreamCancel events_cancel_;
  std::thread events_thread_;
  std::vector<std::pair<uint64_t, std::function<void(const ContainerEvent&)>>> subs_;  // loop
  uint64_t next_sub_ = 1;
};

// A Flotilla pod network: its id, first IPv4 subnet and gateway, and the
// Linux bridge behind it ("br-" + the id's first 12 characters unless the
// network names its bridge).
struct DockerNetworkInfo {
  std::string id, subnet, gateway, bridge;
};
// Inspects the network `name`, creating it first (labelled, bridge driver, on
// the first of `subnets` that does not clash) when absent. Blocks. Errors: the
// daemon's, or the last subnet's.
StatusOr<DockerNetworkInfo> ensure_network(const DockerClient& client, const std::string& name,
                                           const std::vector<std::string>& subnets);

// Removes every container, volume and network labelled flotilla.io/managed=true
// on the host (`flotilla live down`, tests). With `node` non-empty, only that
// logical node's containers and volumes (networks and shared volumes stay).
Status remove_all_flotilla_objects(const DockerClient& client, const std::string& node = {});

}  // namespace flotilla::docker
