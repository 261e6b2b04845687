// SimContainerRuntime: one node's ContainerRuntime, acting on World's slabs.
#include <algorithm>

#include "sim/world/world.h"

namespace flotilla::sim {

namespace {
Status deadline_error(std::string m) { return {StatusCode::kDeadlineExceeded, std::move(m)}; }
}  // namespace

SimContainerRuntime::SimContainerRuntime(World& world, NodeId node)
    : world_(world),
      node_(node),
      stream_(world.random_.stream("runtime/" + world.nodes_[node]->info.name)) {}

SimContainerRuntime::~SimContainerRuntime() = default;

template <typename T>
void SimContainerRuntime::reply(Callback<T> done, T value, Duration after) {
  auto fn = [done = std::move(done), v = std::move(value)]() mutable { done(std::move(v)); };
  if (after <= Duration::zero()) {
    world_.sim_.post(std::move(fn));
  } else {
    world_.sim_.schedule_after(after, std::move(fn));
  }
}

Status SimContainerRuntime::down_error() const {
  return unavailable_error("node \"" + world_.nodes_[node_]->info.name + "\" is down");
}

Duration SimContainerRuntime::draw(const Distribution& d) { return d.sample_duration(*stream_); }

bool SimContainerRuntime::has_image(const std::string& image) const {
  auto it = world_.string_index_.find(image);
  return it != world_.string_index_.end() && it->second < images_.size() && images_[it->second];
}

Status SimContainerRuntime::image_available(const std::string& image) const {
  const RuntimeModel& m = world_.options_.runtime;
  if (image.empty()) return not_found_error("image \"\" not present; a container needs an image");
  if (m.missing_images.count(image)) {
    return not_found_error("image \"" + image +
                           "\" not present; the simulated registry does not have it (it is "
                           "listed in the world's missing images)");
  }
  if (!m.accept_any_image && !m.known_images.count(image)) {
    return not_found_error("image \"" + image +
                           "\" not present; the simulated registry only has the world's known "
                           "images");
  }
  return Status::ok();
}

void SimContainerRuntime::ensure_image(uint32_t image, std::function<void(Status)> then) {
  if (image < images_.size() && images_[image]) {
    then(Status::ok());
    return;
  }
  auto& waiters = pulling_[image];
  waiters.push_back(std::move(then));
  if (waiters.size() > 1) return;  // a pull is already under way
  const uint32_t inc = world_.nodes_[node_]->incarnation;
  world_.sim_.schedule_after(draw(world_.options_.runtime.image_pull), [this, image, inc] {
    auto node = pulling_.extract(image);
    Status st;
    if (world_.nodes_[node_]->incarnation != inc) {
      st = down_error();
    } else {
      if (images_.size() <= image) images_.resize(image + 1, false);
      images_[image] = true;
    }
    for (auto& w : node.mapped()) w(st);
  });
}

void SimContainerRuntime::pull_image(const std::string& image, Callback<Status> done) {
  if (!world_.nodes_[node_]->info.up) return reply(std::move(done), down_error());
  Status st = image_available(image);
  if (!st.is_ok()) return reply(std::move(done), st);
  uint32_t img = world_.intern(image);
  if (img < images_.size() && images_[img]) return reply(std::move(done), Status::ok());
  ensure_image(img, [done = std::move(done)](Status s) { done(std::move(s)); });
}

void SimContainerRuntime::run_pod_sandbox(const PodSandboxConfig& config,
                                          Callback<StatusOr<PodSandboxStatus>> done) {
  using Result = StatusOr<PodSandboxStatus>;
  World::NodeRec& n = *world_.nodes_[node_];
  if (!n.info.up) return reply<Result>(std::move(done), down_error());
  // Host ports: all free, none twice.
  std::vector<World::PortRec> ports;
  for (const PortConfig& p : config.ports) {
    bool udp = p.protocol == "UDP";
    if (p.container_port <= 0 || p.container_port > 65535 || p.host_port < 0 ||
        p.host_port > 65535) {
      return reply<Result>(std::move(done),
                           invalid_error("port " + std::to_string(p.container_port) + "/" +
                                         p.protocol + " is out of range"));
    }
    if (p.host_port != 0) {
      bool dup = host_ports_.count({udp, static_cast<uint16_t>(p.host_port)}) > 0;
      for (const auto& q : ports) dup |= q.host_port == p.host_port && q.udp == udp;
      if (dup) {
        return reply<Result>(std::move(done),
                             conflict_error("host port " + std::to_string(p.host_port) + "/" +
                                            p.protocol + " is already allocated on node \"" +
                                            n.info.name + "\""));
      }
    }
    ports.push_back({static_cast<uint16_t>(p.container_port), static_cast<uint16_t>(p.host_port),
                     udp});
  }
  // A pod IP: round-robin over .1-.254 so a freed address is not reused at once.
  int host = 0;
  for (int i = 0; i < 254; ++i) {
    int h = (n.ip_cursor + i) % 254 + 1;
    if (n.ip_slots[h] == 0) {
      host = h;
      break;
    }
  }
  if (host == 0) {
    return reply<Result>(std::move(done),
                         failed_precondition_error("no free pod IP in " + n.info.pod_cidr +
                                                   " on node \"" + n.info.name + "\""));
  }
  n.ip_cursor = static_cast<uint8_t>(host % 254);
  uint32_t slot = world_.alloc_sandbox();
  World::SandboxRec& sb = world_.sandboxes_[slot];
  sb.node = node_;
  sb.host = static_cast<uint8_t>(host);
  sb.pod_uid = config.pod_uid;
  sb.ns = config.ns;
  sb.name = config.name;
  sb.labels = world_.intern_labels(config.labels);
  sb.ports = std::move(ports);
  for (const auto& p : sb.ports) {
    if (p.host_port != 0) host_ports_[{p.udp, p.host_port}] = slot;
  }
  n.ip_slots[host] = slot + 1;
  n.sandboxes.push_back(slot);
  const uint32_t gen = sb.generation;
  const uint32_t inc = n.incarnation;
  world_.sim_.schedule_after(
      draw(world_.options_.runtime.sandbox_start),
      [this, slot, gen, inc, done = std::move(done)]() mutable {
        if (world_.nodes_[node_]->incarnation != inc) return done(down_error());
        World::SandboxRec& s = world_.sandboxes_[slot];
        if (!s.in_use || s.generation != gen) {
          return done(not_found_error("sandbox \"" + World::sandbox_id(slot, gen) +
                                      "\" was removed while starting"));
        }
        s.ready = true;
        done(world_.sandbox_status(slot));
      });
}

void SimContainerRuntime::stop_one(uint32_t slot, Duration grace, std::function<void()> then) {
  World::ContainerRec& c = world_.containers_[slot];
  if (c.state != ContainerState::kRunning) {
    world_.sim_.post(std::move(then));
    return;
  }
  c.flags |= World::kStopping;
  const BehaviourSpec* b = world_.behaviour_of(c);
  // A container that ignores TERM (or is hung) dies by KILL when the grace ends.
  const bool ignores = (b != nullptr && b->ignore_sigterm) || (c.flags & World::kHung);
  if (grace < Duration::zero()) grace = Duration::zero();
  Duration after = ignores ? grace : std::min(draw(world_.options_.runtime.stop), grace);
  const bool killed = ignores || after >= grace;
  const uint32_t gen = c.generation;
  world_.sim_.schedule_after(after, [this, slot, gen, killed, then = std::move(then)] {
    World::ContainerRec& cc = world_.containers_[slot];
    if ((cc.flags & World::kInUse) && cc.generation == gen) {
      world_.container_exited(slot, killed ? 137 : 0,
                              killed ? World::Reason::kError : World::Reason::kCompleted);
    }
    then();
  });
}

void SimContainerRuntime::remove_pod_sandbox(const std::string& sandbox_id, Duration grace,
                                             Callback<Status> done) {
  if (!world_.nodes_[node_]->info.up) return reply(std::move(done), down_error());
  auto slot = world_.find_sandbox(sandbox_id);
  if (!slot || world_.sandboxes_[*slot].node != node_) {
    return reply(std::move(done), Status::ok());
  }
  World::SandboxRec& sb = world_.sandboxes_[*slot];
  sb.removing = true;
  sb.ready = false;
  const uint32_t s = *slot;
  const uint32_t gen = sb.generation;
  const uint32_t inc = world_.nodes_[node_]->incarnation;
  // Stop every container; the last one to finish removes the sandbox.
  auto remaining = std::make_shared<size_t>(sb.containers.size() + 1);
  auto finish = [this, s, gen, inc, remaining, done = std::move(done)]() mutable {
    if (--*remaining > 0) return;
    world_.sim_.schedule_after(world_.options_.runtime.sandbox_remove,
                               [this, s, gen, inc, done = std::move(done)] {
                                 if (world_.nodes_[node_]->incarnation != inc) {
                                   return done(down_error());
                                 }
                                 World::SandboxRec& x = world_.sandboxes_[s];
                                 if (x.in_use && x.generation == gen) world_.remove_sandbox_now(s);
                                 done(Status::ok());
                               });
  };
  auto shared_finish = std::make_shared<decltype(finish)>(std::move(finish));
  std::vector<uint32_t> containers = sb.containers;
  for (uint32_t c : containers) stop_one(c, grace, [shared_finish] { (*shared_finish)(); });
  (*shared_finish)();
}

void SimContainerRuntime::start_container(const std::string& sandbox_id,
                                          const ContainerConfig& config,
                                          Callback<StatusOr<std::string>> done) {
  using Result = StatusOr<std::string>;
  World::NodeRec& n = *world_.nodes_[node_];
  if (!n.info.up) return reply<Result>(std::move(done), down_error());
  auto sb_slot = world_.find_sandbox(sandbox_id);
  if (!sb_slot || world_.sandboxes_[*sb_slot].node != node_ ||
      world_.sandboxes_[*sb_slot].removing) {
    return reply<Result>(std::move(done),
                         not_found_error("sandbox \"" + sandbox_id + "\" not found on node \"" +
                                         n.info.name + "\""));
  }
  Status st = image_available(config.image);
  if (!st.is_ok()) return reply<Result>(std::move(done), st);
  const uint32_t image = world_.intern(config.image);
  const uint32_t slot = world_.alloc_container();
  {
    World::ContainerRec& c = world_.containers_[slot];
    c.sandbox = *sb_slot;
    c.name = world_.intern(config.name);
    c.image = image;
    c.memory_limit = config.memory_limit_bytes;
    c.behaviour = world_.match_behaviour(image, world_.sandboxes_[*sb_slot].labels);
    world_.sandboxes_[*sb_slot].containers.push_back(slot);
  }
  const uint32_t gen = world_.containers_[slot].generation;
  const uint32_t inc = n.incarnation;
  // Like `docker run`: pulls the image when it is not cached yet.
  ensure_image(image, [this, slot, gen, inc, done = std::move(done)](Status pulled) mutable {
    auto valid = [this, slot, gen] {
      const World::ContainerRec& c = world_.containers_[slot];
      return (c.flags & World::kInUse) && c.generation == gen;
    };
    if (!pulled.is_ok()) {
      if (valid()) world_.remove_container_now(slot);
      return done(std::move(pulled));
    }
    world_.sim_.schedule_after(
        draw(world_.options_.runtime.container_start),
        [this, slot, gen, inc, valid, done = std::move(done)]() mutable {
          if (world_.nodes_[node_]->incarnation != inc) return done(down_error());
          if (!valid()) {
            return done(not_found_error("container \"" + World::container_id(slot, gen) +
                                        "\" was removed before it started"));
          }
          world_.container_started(slot);
          done(World::container_id(slot, gen));
        });
  });
}

void SimContainerRuntime::stop_container(const std::string& container_id, Duration grace,
                                         Callback<Status> done) {
  if (!world_.nodes_[node_]->info.up) return reply(std::move(done), down_error());
  auto slot = world_.find_container(container_id);
  if (!slot || world_.sandboxes_[world_.containers_[*slot].sandbox].node != node_) {
    return reply(std::move(done), Status::ok());
  }
  const uint32_t s = *slot;
  const uint32_t gen = world_.containers_[s].generation;
  stop_one(s, grace, [this, s, gen, done = std::move(done)] {
    const World::ContainerRec& c = world_.containers_[s];
    if ((c.flags & World::kInUse) && c.generation == gen) world_.remove_container_now(s);
    done(Status::ok());
  });
}

void SimContainerRuntime::exec(const std::string& container_id,
                               const std::vector<std::string>& /*command*/, Duration timeout,
                               Callback<StatusOr<int>> done) {
  using Result = StatusOr<int>;
  if (!world_.nodes_[node_]->info.up) return reply<Result>(std::move(done), down_error());
  auto slot = world_.find_container(container_id);
  if (!slot || world_.sandboxes_[world_.containers_[*slot].sandbox].node != node_) {
    return reply<Result>(std::move(done),
                         not_found_error("container \"" + container_id + "\" not found"));
  }
  const World::ContainerRec& c = world_.containers_[*slot];
  if (c.state != ContainerState::kRunning) {
    return reply<Result>(std::move(done), failed_precondition_error(
                                              "container \"" + container_id + "\" is not running"));
  }
  Duration took = draw(world_.options_.runtime.exec);
  if ((c.flags & World::kHung) || took > timeout) {
    return reply<Result>(std::move(done),
                         deadline_error("exec in container \"" + container_id +
                                        "\" timed out after " + format_duration(timeout)),
                         timeout);
  }
  reply<Result>(std::move(done), 0, took);
}

void SimContainerRuntime::list_pod_sandboxes(
    Callback<StatusOr<std::vector<PodSandboxStatus>>> done) {
  using Result = StatusOr<std::vector<PodSandboxStatus>>;
  if (!world_.nodes_[node_]->info.up) return reply<Result>(std::move(done), down_error());
  std::vector<PodSandboxStatus> out;
  for (uint32_t s : world_.nodes_[node_]->sandboxes) out.push_back(world_.sandbox_status(s));
  std::sort(out.begin(), out.end(),
            [](const PodSandboxStatus& a, const PodSandboxStatus& b) { return a.id < b.id; });
  reply<Result>(std::move(done), std::move(out));
}

class SimContainerRuntime::Sub final : public RuntimeSubscription {
 public:
  Sub(SimContainerRuntime& rt, uint64_t id) : rt_(rt), id_(id) {}
  ~Sub() override {
    auto& subs = rt_.subs_;
    for (auto it = subs.begin(); it != subs.end(); ++it) {
      if (it->first == id_) {
        subs.erase(it);
        break;
      }
    }
  }

 private:
  SimContainerRuntime& rt_;
  uint64_t id_;
};

std::unique_ptr<RuntimeSubscription> SimContainerRuntime::subscribe(
    std::function<void(const ContainerEvent&)> on_event) {
  uint64_t id = next_sub_++;
  subs_.emplace_back(id, std::move(on_event));
  return std::make_unique<Sub>(*this, id);
}

void SimContainerRuntime::deliver(const ContainerEvent& event) {
  if (subs_.empty()) return;
  // Delivered to whoever is subscribed when the event is processed, in order.
  world_.sim_.post([this, event] {
    for (size_t i = 0; i < subs_.size(); ++i) {
      auto fn = subs_[i].second;
      fn(event);
    }
  });
}

// ---------------------------------------------------------------------------
// Logs.

std::optional<std::string> SimContainerRuntime::log_text(const std::string& container_id,
                                                         bool* exited) const {
  auto slot = world_.find_container(container_id);
  if (!slot) return std::nullopt;
  const World::ContainerRec& c = world_.containers_[*slot];
  const World::SandboxRec& sb = world_.sandboxes_[c.sandbox];
  if (sb.node != node_) return std::nullopt;
  *exited = c.state == ContainerState::kExited;
  std::string out;
  if (c.state == ContainerState::kCreated) return out;
  auto line = [&](int64_t ns, const std::string& text) {
    out += format_rfc3339(time_from_nanos(ns)) + " flotilla-sim: " + text + "\n";
  };
  const ContainerStatus st = world_.container_status(*slot);
  line(c.started_ns, "started container " + st.name + " (image " + st.image + ") in pod " +
                         sb.ns + "/" + sb.name + " on node " +
                         world_.nodes_[sb.node]->info.name);
  const int64_t now = to_nanos(world_.sim_.now());
  const bool ready = c.ready_ns <= now && (c.state == ContainerState::kRunning ||
                                           c.ready_ns <= c.finished_ns);
  if (ready) line(c.ready_ns, "ready: its ports answer");
  if (c.state == ContainerState::kExited) {
    line(c.finished_ns, "exited with code " + std::to_string(st.exit_code) +
                            (st.reason.empty() ? "" : " (" + st.reason + ")"));
  }
  return out;
}

class SimContainerRuntime::LogReader final : public ContainerLogStream {
 public:
  LogReader(SimContainerRuntime& rt, std::string id, bool follow,
            std::function<void(std::string)> on_data, Callback<Status> done)
      : rt_(rt), id_(std::move(id)), follow_(follow), on_data_(std::move(on_data)),
        done_(std::move(done)) {}

  void arm(Duration after) {
    timer_ = rt_.world_.sim_.run_after(after, [this] { poll(); });
  }

 private:
  void poll() {
    bool exited = false;
    std::optional<std::string> text = rt_.log_text(id_, &exited);
    if (!text) {
      // Gone: an error only when it never existed for this reader.
      finish(first_ ? not_found_error("container \"" + id_ + "\" not found") : Status::ok());
      return;
    }
    first_ = false;
    if (text->size() > sent_) {
      std::string fresh = text->substr(sent_);
      sent_ = text->size();
      on_data_(std::move(fresh));
    }
    if (!follow_ || exited) return finish(Status::ok());
    arm(std::chrono::milliseconds(500));
  }
  void finish(Status s) {
    auto done = std::move(done_);
    done_ = nullptr;
    if (done) done(std::move(s));
  }

  SimContainerRuntime& rt_;
  std::string id_;
  bool follow_;
  std::function<void(std::string)> on_data_;
  Callback<Status> done_;
  size_t sent_ = 0;
  bool first_ = true;
  TimerHandle timer_;
};

std::unique_ptr<ContainerLogStream> SimContainerRuntime::read_logs(
    const std::string& container_id, bool follow, std::function<void(std::string)> on_data,
    Callback<Status> done) {
  auto reader =
      std::make_unique<LogReader>(*this, container_id, follow, std::move(on_data), std::move(done));
  reader->arm(Duration::zero());
  return reader;
}

}  // namespace flotilla::sim
