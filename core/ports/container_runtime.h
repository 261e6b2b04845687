// ContainerRuntime: what a node agent asks of one node's machine. A pod is a
// sandbox (network namespace with one IP, pod-local volumes) plus containers
// joined to it. SimContainerRuntime models it in virtual time; the Docker
// runtime does it for real. Every result comes back through the EventLoop the
// runtime was built with, never re-entrantly from inside the call.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/ports/event_loop.h"
#include "core/util/status.h"

namespace flotilla {

struct VolumeConfig {
  enum class Type { kEmptyDir, kHostPath, kShared };
  std::string name;
  Type type = Type::kEmptyDir;
  std::string source;  // hostPath path, or the shared volume's name
};

struct MountConfig {
  std::string volume;  // VolumeConfig::name
  std::string path;
  bool read_only = false;
};

struct PortConfig {
  int container_port = 0;
  int host_port = 0;  // 0: none
  std::string protocol = "TCP";
};

struct PodSandboxConfig {
  std::string pod_uid;
  std::string ns;
  std::string name;
  std::string hostname;
  std::map<std::string, std::string> labels;  // pod labels, for the runtime's own use
  std::vector<VolumeConfig> volumes;
  std::vector<PortConfig> ports;  // every container's ports (host ports bound here)
  std::vector<std::string> dns_servers;
  std::vector<std::string> dns_searches;
};

struct ContainerConfig {
  std::string name;
  std::string image;
  std::vector<std::string> command;
  std::vector<std::string> args;
  std::vector<std::pair<std::string, std::string>> env;
  std::string working_dir;
  int64_t cpu_request_millis = 0;
  int64_t cpu_limit_millis = 0;     // 0: unlimited
  int64_t memory_request_bytes = 0;
  int64_t memory_limit_bytes = 0;   // 0: unlimited
  std::vector<MountConfig> mounts;
  std::map<std::string, std::string> labels;  // pod labels plus container name
};

enum class ContainerState { kCreated, kRunning, kExited, kUnknown };

struct ContainerStatus {
  std::string id;
  std::string name;   // ContainerConfig::name
  std::string image;
  ContainerState state = ContainerState::kUnknown;
  int exit_code = 0;
  std::string reason;  // "Completed", "Error", "OOMKilled" when exited
  TimePoint started_at{};
  TimePoint finished_at{};
};

struct PodSandboxStatus {
  std::string id;
  std::string pod_uid;
  std::string ns;
  std::string name;
  std::string ip;
  bool ready = false;  // false once stopped or its node died
  std::vector<ContainerStatus> containers;
};

struct ContainerEvent {
  enum class Type { kStarted, kExited, kOomKilled, kSandboxLost };
  Type type;
  std::string sandbox_id;
  std::string pod_uid;
  ContainerStatus container;  // empty for kSandboxLost
};

// Stops delivery of runtime events when destroyed.
class RuntimeSubscription {
 public:
  virtual ~RuntimeSubscription() = default;
};

// One container's output on its way (ContainerRuntime::read_logs); destroying
// it stops delivery.
class ContainerLogStream {
 public:
  virtual ~ContainerLogStream() = default;
};

class ContainerRuntime {
 public:
  virtual ~ContainerRuntime() = default;

  // Makes sure `image` is present on this node. Errors: kNotFound with a
  // message saying how to make the image available (ErrImagePull).
  virtual void pull_image(const std::string& image, Callback<Status> done) = 0;

  // Creates the pod's sandbox: its IP and its volumes. Returns the sandbox as
  // started (id, ip). Errors: kUnavailable when the node is down; kConflict
  // when a host port is taken.
  virtual void run_pod_sandbox(const PodSandboxConfig& config,
                               Callback<StatusOr<PodSandboxStatus>> done) = 0;

  // Stops every container in the sandbox (TERM, then KILL after `grace`), then
  // removes them, the sandbox and its pod-local volumes. Idempotent: an
  // unknown id is OK.
  virtual void remove_pod_sandbox(const std::string& sandbox_id, Duration grace,
                                  Callback<Status> done) = 0;

  // Creates and starts a container inside a sandbox; returns its id once
  // running. The runtime never restarts a container by itself: the agent does.
  virtual void start_container(const std::string& sandbox_id, const ContainerConfig& config,
                               Callback<StatusOr<std::string>> done) = 0;

  // Stops (TERM, KILL after `grace`) and removes a container. Idempotent.
  virtual void stop_container(const std::string& container_id, Duration grace,
                              Callback<Status> done) = 0;

  // Runs `command` inside a running container, for exec probes; returns its
  // exit code. Errors: kDeadlineExceeded after `timeout`.
  virtual void exec(const std::string& container_id, const std::vector<std::string>& command,
                    Duration timeout, Callback<StatusOr<int>> done) = 0;

  // Every sandbox this runtime holds for its node, with its containers: how an
  // agent finds its pods again after a restart. Ordered by sandbox id.
  virtual void list_pod_sandboxes(Callback<StatusOr<std::vector<PodSandboxStatus>>> done) = 0;

  // A container's output (stdout and stderr as written), for `kubectl logs`:
  // what it wrote so far to `on_data` (in one or more pieces) and, with
  // `follow`, more as it is written until the container exits; then `done`
  // (OK; kNotFound for an unknown container). Both run through the event loop.
  // Destroying the handle stops delivery. A runtime that keeps no output
  // returns nullptr and calls neither (the default).
  [[nodiscard]] virtual std::unique_ptr<ContainerLogStream> read_logs(
      const std::string& /*container_id*/, bool /*follow*/,
      std::function<void(std::string)> /*on_data*/, Callback<Status> /*done*/) {
    return nullptr;
  }

  // Container lifecycle events (started, exited, OOM-killed, sandbox lost), in
  // the order they happened, delivered through the event loop.
  [[nodiscard]] virtual std::unique_ptr<RuntimeSubscription> subscribe(
      std::function<void(const ContainerEvent&)> on_event) = 0;
};

}  // namespace flotilla
