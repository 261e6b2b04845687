// Scripted port fakes for the node agent's unit tests: a ContainerRuntime whose
// containers exit exactly when a script says (so backoff timing can be checked
// to the nanosecond) and a Network whose probe answers come from a function.
// Every result is delivered through the EventLoop, as the port contracts say.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "core/ports/container_runtime.h"
#include "core/ports/event_loop.h"
#include "core/ports/network.h"

namespace flotilla::agent::testing {

// What one started container does.
struct ContainerScript {
  std::optional<Duration> exit_after;  // exits on its own after this long
  int exit_code = 1;
  bool oom = false;                    // exit as OOM-killed (137)
  bool ignore_sigterm = false;         // stop waits for the whole grace period
  int exec_exit_code = 0;              // what exec probes return
};

class FakeRuntime final : public ContainerRuntime {
 public:
  struct Container {
    ContainerStatus status;
    std::string sandbox_id;
    ContainerScript script;
    TimerHandle exit_timer;
  };
  struct Sandbox {
    PodSandboxStatus status;
    PodSandboxConfig config;
  };
  struct Removal {
    std::string sandbox_id;
    Duration grace;
    TimePoint at;
  };

  explicit FakeRuntime(EventLoop& loop) : loop_(loop) {}

  // The script of each start of container `name` (any pod); the function sees
  // how many times that name was started before.
  std::function<ContainerScript(const std::string& name, int start_index)> script =
      [](const std::string&, int) { return ContainerScript{}; };
  std::set<std::string> missing_images;
  Duration pull_latency = Duration(0);

  // Observations.
  std::map<std::string, std::vector<TimePoint>> starts;  // container name -> start times
  std::map<std::string, std::vector<TimePoint>> exits;   // container name -> exit times
  std::vector<Removal> removals;
  std::vector<std::string> pulls;
  int sandboxes_created = 0;

  const std::map<std::string, Sandbox>& sandboxes() const { return sandboxes_; }
  Container* container(const std::string& id) {
    auto it = containers_.find(id);
    return it == containers_.end() ? nullptr : &it->second;
  }
  // Makes a running container exit now (as a crash would).
  void crash(const std::string& id, int exit_code, bool oom = false) {
    Container* c = container(id);
    if (c != nullptr && c->status.state == ContainerState::kRunning) exit(*c, exit_code, oom);
  }
  // Adds a sandbox directly (a leftover from an earlier agent).
  std::string add_sandbox(const std::string& pod_uid, const std::string& name) {
    std::string id = "sb-" + std::to_string(next_id_++);
    Sandbox sb;
    sb.status.id = id;
    sb.status.pod_uid = pod_uid;
    sb.status.name = name;
    sb.status.ns = "default";
    sb.status.ip = "10.1.0." + std::to_string(next_ip_++);
    sb.status.ready = true;
    sandboxes_[id] = std::move(sb);
    return id;
  }

  void pull_image(const std::string& image, Callback<Status> done) override {
    pulls.push_back(image);
    Status s = missing_images.count(image) > 0
                   ? not_found_error("image \"" + image + "\" not found: push it or fix the name")
                   : Status::ok();
    held_.push_back(loop_.run_after(pull_latency, [done, s] { done(s); }));
  }

  void run_pod_sandbox(const PodSandboxConfig& config,
                       Callback<StatusOr<PodSandboxStatus>> done) override {
    std::string id = add_sandbox(config.pod_uid, config.name);
    sandboxes_[id].config = config;
    sandboxes_[id].status.ns = config.ns;
    ++sandboxes_created;
    PodSandboxStatus st = sandboxes_[id].status;
    loop_.post([done, st] { done(st); });
  }

  void remove_pod_sandbox(const std::string& sandbox_id, Duration grace,
                          Callback<Status> done) override {
    removals.push_back({sandbox_id, grace, loop_.now()});
    Duration wait(0);
    for (auto& [id, c] : containers_) {
      if (c.sandbox_id == sandbox_id && c.status.state == ContainerState::kRunning &&
          c.script.ignore_sigterm) {
        wait = grace;
      }
    }
    held_.push_back(loop_.run_after(wait, [this, sandbox_id, done] {
      for (auto it = containers_.begin(); it != containers_.end();) {
        if (it->second.sandbox_id == sandbox_id) {
          it = containers_.erase(it);
        } else {
          ++it;
        }
      }
      sandboxes_.erase(sandbox_id);
      done(Status::ok());
    }));
  }

  void start_container(const std::string& sandbox_id, const ContainerConfig& config,
                       Callback<StatusOr<std::string>> done) override {
    if (sandboxes_.count(sandbox_id) == 0) {
      loop_.post([done] { done(StatusOr<std::string>(not_found_error("no such sandbox"))); });
      return;
    }
    std::string id = "c-" + std::to_string(next_id_++);
    Container& c = containers_[id];
    c.sandbox_id = sandbox_id;
    c.status.id = id;
    c.status.name = config.name;
    c.status.image = config.image;
    c.status.state = ContainerState::kRunning;
    c.status.started_at = loop_.now();
    c.script = script(config.name, static_cast<int>(starts[config.name].size()));
    starts[config.name].push_back(loop_.now());
    if (c.script.exit_after) {
      c.exit_timer = loop_.run_after(*c.script.exit_after, [this, id] {
        Container* self = container(id);
        if (self != nullptr) exit(*self, self->script.exit_code, self->script.oom);
      });
    }
    loop_.post([done, id] { done(id); });
  }

  void stop_container(const std::string& container_id, Duration grace,
                      Callback<Status> done) override {
    Container* c = container(container_id);
    Duration wait = c != nullptr && c->script.ignore_sigterm ? grace : Duration(0);
    held_.push_back(loop_.run_after(wait, [this, container_id, done] {
      Container* self = container(container_id);
      if (self != nullptr) {
        if (self->status.state == ContainerState::kRunning) exit(*self, 137, false);
        containers_.erase(container_id);
      }
      done(Status::ok());
    }));
  }

  void exec(const std::string& container_id, const std::vector<std::string>&, Duration,
            Callback<StatusOr<int>> done) override {
    Container* c = container(container_id);
    StatusOr<int> r = c == nullptr ? StatusOr<int>(not_found_error("no such container"))
                                   : StatusOr<int>(c->script.exec_exit_code);
    loop_.post([done, r] { done(r); });
  }

  void list_pod_sandboxes(Callback<StatusOr<std::vector<PodSandboxStatus>>> done) override {
    std::vector<PodSandboxStatus> out;
    for (const auto& [id, sb] : sandboxes_) {
      PodSandboxStatus st = sb.status;
      for (const auto& [cid, c] : containers_) {
        if (c.sandbox_id == id) st.containers.push_back(c.status);
      }
      out.push_back(std::move(st));
    }
    loop_.post([done, out] { done(out); });
  }

  std::unique_ptr<RuntimeSubscription> subscribe(
      std::function<void(const ContainerEvent&)> on_event) override {
    auto sub = std::make_unique<Sub>(this);
    subscribers_[sub.get()] = std::move(on_event);
    return sub;
  }

  int running_containers() const {
    int n = 0;
    for (const auto& [id, c] : containers_) n += c.status.state == ContainerState::kRunning;
    return n;
  }

 private:
  struct Sub : RuntimeSubscription {
    explicit Sub(FakeRuntime* rt) : rt_(rt) {}
    ~Sub() override { rt_->subscribers_.erase(this); }
    FakeRuntime* rt_;
  };

  void exit(Container& c, int exit_code, bool oom) {
    c.status.state = ContainerState::kExited;
    c.status.exit_code = oom ? 137 : exit_code;
    c.status.reason = oom ? "OOMKilled" : (exit_code == 0 ? "Completed" : "Error");
    c.status.finished_at = loop_.now();
    exits[c.status.name].push_back(loop_.now());
    ContainerEvent e;
    e.type = oom ? ContainerEvent::Type::kOomKilled : ContainerEvent::Type::kExited;
    e.sandbox_id = c.sandbox_id;
    auto sb = sandboxes_.find(c.sandbox_id);
    e.pod_uid = sb == sandboxes_.end() ? "" : sb->second.status.pod_uid;
    e.container = c.status;
    for (const auto& [sub, fn] : subscribers_) {
      loop_.post([this, sub = sub, e] {
        auto it = subscribers_.find(sub);
        if (it != subscribers_.end()) it->second(e);
      });
    }
  }

  EventLoop& loop_;
  std::map<std::string, Sandbox> sandboxes_;
  std::map<std::string, Container> containers_;
  std::map<RuntimeSubscription*, std::function<void(const ContainerEvent&)>> subscribers_;
  std::vector<TimerHandle> held_;
  int next_id_ = 1;
  int next_ip_ = 2;
};

class FakeNetwork final : public Network {
 public:
  explicit FakeNetwork(EventLoop& loop) : loop_(loop) {}
  // The answer to each probe; default: OK.
  std::function<Status(const ProbeRequest&)> answer = [](const ProbeRequest&) {
    return Status::ok();
  };
  std::vector<ProbeRequest> probes;

  void probe(const ProbeRequest& request, Callback<Status> done) override {
    probes.push_back(request);
    Status s = answer(request);
    loop_.post([done, s] { done(s); });
  }
  void connect(const std::string&, const NetEndpoint&, Duration, Callback<Status> done) override {
    loop_.post([done] { done(Status::ok()); });
  }
  void set_dns_record(const std::string&, const std::string&) override {}

 private:
  EventLoop& loop_;
};

}  // namespace flotilla::agent::testing
