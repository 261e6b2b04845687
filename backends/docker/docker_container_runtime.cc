#include "backends/docker/docker_container_runtime.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <random>

namespace flotilla::docker {

using json = nlohmann::json;

namespace {

int64_t wall_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// Docker's RFC 3339 timestamps with nanoseconds, as wall-clock ns (0 for Go's
// zero time or anything unreadable).
int64_t parse_docker_time(const std::string& s) {
  if (s.empty() || s.rfind("0001-", 0) == 0) return 0;
  const size_t dot = s.find('.');
  std::string whole = dot == std::string::npos ? s : s.substr(0, dot) + "Z";
  auto t = parse_rfc3339(whole);
  if (!t.is_ok()) return 0;
  int64_t ns = to_nanos(*t);
  if (dot != std::string::npos) {
    int64_t frac = 0;
    int digits = 0;
    for (size_t i = dot + 1; i < s.size() && std::isdigit(static_cast<unsigned char>(s[i])); ++i) {
      if (digits < 9) {
        frac = frac * 10 + (s[i] - '0');
        ++digits;
      }
    }
    while (digits++ < 9) frac *= 10;
    ns += frac;
  }
  return ns;
}

std::string random_suffix() {
  static std::mutex mu;
  static std::mt19937_64 gen{std::random_device{}()};
  std::lock_guard<std::mutex> lock(mu);
  char buf[9];
  std::snprintf(buf, sizeof buf, "%08x", static_cast<unsigned>(gen()));
  return buf;
}

// Docker object names allow [a-zA-Z0-9][a-zA-Z0-9_.-]*.
std::string name_part(const std::string& s) {
  std::string out;
  for (char c : s) {
    out += (std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '-') ? c : '-';
  }
  return out.empty() ? "x" : out;
}

std::string label(const json& labels, std::string_view key) {
  if (!labels.is_object()) return {};
  auto it = labels.find(std::string(key));
  return it != labels.end() && it->is_string() ? it->get<std::string>() : std::string();
}

ContainerState state_of(const std::string& s) {
  if (s == "running" || s == "paused" || s == "restarting") return ContainerState::kRunning;
  if (s == "created") return ContainerState::kCreated;
  if (s == "exited" || s == "dead") return ContainerState::kExited;
  return ContainerState::kUnknown;
}

std::string reason_for(int exit_code, bool oom) {
  if (oom) return "OOMKilled";
  return exit_code == 0 ? "Completed" : "Error";
}

// Whether mounting `path` from the host would expose the Docker socket.
bool exposes_docker_socket(std::string path) {
  while (path.size() > 1 && path.back() == '/') path.pop_back();
  for (const char* sock : {"/var/run/docker.sock", "/run/docker.sock"}) {
    std::string_view s = sock;
    if (path == "/" || s == path || (s.rfind(path + "/", 0) == 0)) return true;
  }
  return path.find("docker.sock") != std::string::npos;
}

}  // namespace

// ---------------------------------------------------------------------------
// Construction, workers, events.

DockerContainerRuntime::DockerContainerRuntime(EventLoop& loop, DockerRuntimeOptions options)
    : loop_(loop), options_(std::move(options)), client_(options_.socket_path) {
  wall_to_loop_ns_ = to_nanos(loop_.now()) - wall_ns();
}

StatusOr<std::unique_ptr<DockerContainerRuntime>> DockerContainerRuntime::create(
    EventLoop& loop, DockerRuntimeOptions options) {
  if (options.node.empty()) return invalid_error("DockerContainerRuntime needs a node name");
  std::unique_ptr<DockerContainerRuntime> rt(new DockerContainerRuntime(loop, std::move(options)));
  FLOTILLA_RETURN_IF_ERROR(rt->client_.ping());
  FLOTILLA_RETURN_IF_ERROR(rt->ensure_network());
  FLOTILLA_RETURN_IF_ERROR(rt->start_events());
  for (int i = 0; i < std::max(1, rt->options_.worker_threads); ++i) {
    rt->workers_.emplace_back([r = rt.get()] { r->worker_main(); });
  }
  return rt;
}

DockerContainerRuntime::~DockerContainerRuntime() {
  alive_.reset();
  events_cancel_.cancel();
  if (events_thread_.joinable()) events_thread_.join();
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
    jobs_.clear();
  }
  cv_.notify_all();
  for (auto& w : workers_) w.join();
}

void DockerContainerRuntime::enqueue(std::function<void()> job) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    jobs_.push_back(std::move(job));
  }
  cv_.notify_one();
}

void DockerContainerRuntime::worker_main() {
  for (;;) {
    std::function<void()> job;
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [&] { return stopping_ || !jobs_.empty(); });
      if (stopping_) return;
      job = std::move(jobs_.front());
      jobs_.pop_front();
    }
    job();
  }
}

template <typename T>
void DockerContainerRuntime::run_blocking(std::function<T()> work, Callback<T> done) {
  std::weak_ptr<int> alive = alive_;
  enqueue([this, alive, work = std::move(work), done = std::move(done)]() mutable {
    auto result = std::make_shared<T>(work());
    loop_.post([alive, result, done = std::move(done)] {
      if (alive.lock()) done(std::move(*result));
    });
  });
}

json DockerContainerRuntime::node_filter() const {
  return json{{"label", json::array({std::string(kManagedLabel) + "=true",
                                     std::string(kNodeLabel) + "=" + options_.node})}};
}

Status DockerContainerRuntime::ensure_network() {
  auto info = docker::ensure_network(client_, options_.network, options_.subnets);
  if (!info.is_ok()) return info.status();
  network_id_ = info->id;
  return Status::ok();
}

namespace {

DockerNetworkInfo network_info(const json& n) {
  DockerNetworkInfo info;
  info.id = n.value("Id", "");
  const json& ipam = n.contains("IPAM") ? n["IPAM"] : json::object();
  if (ipam.contains("Config") && ipam["Config"].is_array()) {
    for (const json& c : ipam["Config"]) {
      const std::string subnet = c.value("Subnet", "");
      if (subnet.empty() || subnet.find(':') != std::string::npos) continue;  // IPv4 only
      info.subnet = subnet;
      info.gateway = c.value("Gateway", "");
      break;
    }
  }
  if (info.gateway.empty() && !info.subnet.empty()) {
    // Docker keeps no Gateway for a network made with only a Subnet; the
    // bridge then has the subnet's first address.
    const std::string base = info.subnet.substr(0, info.subnet.find('/'));
    in_addr a{};
    if (::inet_pton(AF_INET, base.c_str(), &a) == 1) {
      a.s_addr = htonl(ntohl(a.s_addr) + 1);
      char buf[INET_ADDRSTRLEN];
      if (::inet_ntop(AF_INET, &a, buf, sizeof(buf)) != nullptr) info.gateway = buf;
    }
  }
  if (n.contains("Options") && n["Options"].is_object()) {
    info.bridge = n["Options"].value("com.docker.network.bridge.name", "");
  }
  if (info.bridge.empty()) info.bridge = "br-" + info.id.substr(0, 12);
  return info;
}

}  // namespace

StatusOr<DockerNetworkInfo> ensure_network(const DockerClient& client, const std::string& name,
                                           const std::vector<std::string>& subnets) {
  auto existing = client.call("GET", "/networks/" + url_encode(name));
  if (existing.is_ok()) return network_info(*existing);
  if (existing.status().code() != StatusCode::kNotFound) return existing.status();
  Status last = internal_error("no subnet configured for network " + name);
  for (const std::string& subnet : subnets) {
    json body = {{"Name", name},
                 {"CheckDuplicate", true},
                 {"Driver", "bridge"},
                 {"Labels", {{std::string(kManagedLabel), "true"}}},
                 {"IPAM", {{"Driver", "default"}, {"Config", json::array({{{"Subnet", subnet}}})}}}};
    auto created = client.call("POST", "/networks/create", body);
    if (created.is_ok() || created.status().code() == StatusCode::kConflict) {
      // Made now, or by another runtime meanwhile: read it back (the gateway).
      auto again = client.call("GET", "/networks/" + url_encode(name));
      if (again.is_ok()) return network_info(*again);
      last = again.status();
      continue;
    }
    last = created.status().with_prefix("creating network " + name + " on " + subnet + ": ");
  }
  return last;
}

Status DockerContainerRuntime::start_events() {
  json filters = node_filter();
  filters["type"] = json::array({"container"});
  filters["event"] = json::array({"start", "die", "oom", "destroy"});
  const std::string target = "/events?filters=" + encode_filters(filters);
  auto opened = std::make_shared<std::promise<Status>>();
  auto opened_future = opened->get_future();
  events_thread_ = std::thread([this, target, opened] {
    std::string pending;
    bool signalled = false;
    Status s = client_.stream(
        target,
        [&] {
          signalled = true;
          opened->set_value(Status::ok());
        },
        [&](std::string_view data) {
          pending.append(data);
          size_t nl;
          while ((nl = pending.find('\n')) != std::string::npos) {
            auto j = json::parse(pending.substr(0, nl), nullptr, false);
            pending.erase(0, nl + 1);
            if (!j.is_discarded() && j.is_object()) on_event_json(j);
          }
        },
        events_cancel_);
    if (!signalled) opened->set_value(s.is_ok() ? unavailable_error("event stream closed") : s);
    if (!s.is_ok() && !events_cancel_.cancelled()) {
      std::fprintf(stderr, "flotilla docker runtime %s: %s\n", options_.node.c_str(),
                   s.to_string().c_str());
    }
  });
  Status s = opened_future.get();
  if (!s.is_ok()) {
    events_cancel_.cancel();
    events_thread_.join();
  }
  return s;
}

void DockerContainerRuntime::on_event_json(const json& e) {
  const std::string action = e.value("Action", e.value("status", ""));
  const json& actor = e.contains("Actor") ? e["Actor"] : json::object();
  const std::string id = actor.value("ID", e.value("id", ""));
  const json attrs = actor.value("Attributes", json::object());
  const std::string role = label(attrs, kRoleLabel);
  const int64_t when = e.value("timeNano", int64_t{0});

  if (action == "oom") {
    oom_seen_.insert(id);
    return;
  }
  if (action == "destroy") {
    oom_seen_.erase(id);
    std::lock_guard<std::mutex> lock(mu_);
    removing_.erase(id);
    sandboxes_.erase(id);
    return;
  }
  ContainerEvent ev;
  ev.pod_uid = label(attrs, kPodUidLabel);
  if (role == "sandbox") {
    if (action != "die") return;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (removing_.count(id)) return;
    }
    ev.type = ContainerEvent::Type::kSandboxLost;
    ev.sandbox_id = id;
  } else {
    ev.sandbox_id = label(attrs, kSandboxIdLabel);
    ev.container.id = id;
    ev.container.name = label(attrs, kContainerLabel);
    ev.container.image = label(attrs, "image");
    if (action == "start") {
      ev.type = ContainerEvent::Type::kStarted;
      ev.container.state = ContainerState::kRunning;
      ev.container.started_at = time_from_nanos(when + wall_to_loop_ns_);
    } else if (action == "die") {
      const bool oom = oom_seen_.count(id) > 0;
      oom_seen_.erase(id);
      int code = 0;
      try {
        code = std::stoi(label(attrs, "exitCode"));
      } catch (...) {
        code = -1;
      }
      ev.type = oom ? ContainerEvent::Type::kOomKilled : ContainerEvent::Type::kExited;
      ev.container.state = ContainerState::kExited;
      ev.container.exit_code = code;
      ev.container.reason = reason_for(code, oom);
      ev.container.finished_at = time_from_nanos(when + wall_to_loop_ns_);
    } else {
      return;
    }
  }
  std::weak_ptr<int> alive = alive_;
  loop_.post([this, alive, ev = std::move(ev)] {
    if (!alive.lock()) return;
    // A copy: a handler may unsubscribe (or subscribe) while we iterate.
    auto subs = subs_;
    for (auto& [sub_id, fn] : subs) {
      bool still = std::any_of(subs_.begin(), subs_.end(),
                               [&, sid = sub_id](const auto& s) { return s.first == sid; });
      if (still) fn(ev);
    }
  });
}

class DockerContainerRuntime::Sub final : public RuntimeSubscription {
 public:
  Sub(DockerContainerRuntime& rt, std::weak_ptr<int> alive, uint64_t id)
      : rt_(rt), alive_(std::move(alive)), id_(id) {}
  ~Sub() override {
    if (!alive_.lock()) return;
    auto& subs = rt_.subs_;
    subs.erase(std::remove_if(subs.begin(), subs.end(), [&](const auto& s) { return s.first == id_; }),
               subs.end());
  }

 private:
  DockerContainerRuntime& rt_;
  std::weak_ptr<int> alive_;
  uint64_t id_;
};

std::unique_ptr<RuntimeSubscription> DockerContainerRuntime::subscribe(
    std::function<void(const ContainerEvent&)> on_event) {
  const uint64_t id = next_sub_++;
  subs_.emplace_back(id, std::move(on_event));
  return std::make_unique<Sub>(*this, alive_, id);
}

// ---------------------------------------------------------------------------
// The port's calls.

void DockerContainerRuntime::pull_image(const std::string& image, Callback<Status> done) {
  run_blocking<Status>([this, image] { return do_pull(image); }, std::move(done));
}

void DockerContainerRuntime::run_pod_sandbox(const PodSandboxConfig& config,
                                             Callback<StatusOr<PodSandboxStatus>> done) {
  run_blocking<StatusOr<PodSandboxStatus>>([this, config] { return do_run_sandbox(config); },
                                           std::move(done));
}

void DockerContainerRuntime::remove_pod_sandbox(const std::string& sandbox_id, Duration grace,
                                                Callback<Status> done) {
  run_blocking<Status>([this, sandbox_id, grace] { return do_remove_sandbox(sandbox_id, grace); },
                       std::move(done));
}

void DockerContainerRuntime::start_container(const std::string& sandbox_id,
                                             const ContainerConfig& config,
                                             Callback<StatusOr<std::string>> done) {
  run_blocking<StatusOr<std::string>>(
      [this, sandbox_id, config] { return do_start_container(sandbox_id, config); },
      std::move(done));
}

void DockerContainerRuntime::stop_container(const std::string& container_id, Duration grace,
                                            Callback<Status> done) {
  run_blocking<Status>(
      [this, container_id, grace] { return do_stop_container(container_id, grace); },
      std::move(done));
}

void DockerContainerRuntime::exec(const std::string& container_id,
                                  const std::vector<std::string>& command, Duration timeout,
                                  Callback<StatusOr<int>> done) {
  run_blocking<StatusOr<int>>(
      [this, container_id, command, timeout] { return do_exec(container_id, command, timeout); },
      std::move(done));
}

void DockerContainerRuntime::list_pod_sandboxes(
    Callback<StatusOr<std::vector<PodSandboxStatus>>> done) {
  run_blocking<StatusOr<std::vector<PodSandboxStatus>>>([this] { return do_list(); },
                                                         std::move(done));
}

// ---------------------------------------------------------------------------
// Blocking bodies.

std::string DockerContainerRuntime::image_missing_message(const std::string& image) const {
  return "image \"" + image +
         "\" is not present on this host and no registry can be reached; load it with: "
         "docker load -i FILE (or build it: make images)";
}

Status DockerContainerRuntime::do_pull(const std::string& image) {
  auto r = client_.call("GET", "/images/" + url_encode(image) + "/json");
  if (r.is_ok()) return Status::ok();
  if (r.status().code() == StatusCode::kNotFound) return not_found_error(image_missing_message(image));
  return r.status();
}

StatusOr<PodSandboxStatus> DockerContainerRuntime::do_run_sandbox(const PodSandboxConfig& config) {
  const std::string tag = name_part(config.ns) + "_" + name_part(config.name);
  json base_labels = {{std::string(kManagedLabel), "true"},
                      {std::string(kNodeLabel), options_.node},
                      {std::string(kPodUidLabel), config.pod_uid},
                      {std::string(kPodNameLabel), config.name},
                      {std::string(kNamespaceLabel), config.ns}};

  // Volumes: emptyDir -> a volume of this pod; shared -> one per name on the host.
  json volumes = json::array();
  std::vector<std::string> created_volumes;
  auto cleanup_volumes = [&] {
    for (const auto& v : created_volumes) {
      (void)client_.call("DELETE", "/volumes/" + url_encode(v) + "?force=1");
    }
  };
  for (const VolumeConfig& v : config.volumes) {
    json entry = {{"name", v.name}};
    if (v.type == VolumeConfig::Type::kHostPath) {
      if (v.source.empty() || v.source[0] != '/') {
        cleanup_volumes();
        return invalid_error("volume \"" + v.name + "\": hostPath must be an absolute path");
      }
      if (exposes_docker_socket(v.source)) {
        cleanup_volumes();
        return Status(StatusCode::kForbidden, "volume \"" + v.name + "\": hostPath \"" + v.source +
                                                  "\" would expose the Docker socket");
      }
      entry["type"] = "hostPath";
      entry["source"] = v.source;
    } else {
      json vlabels = {{std::string(kManagedLabel), "true"}, {std::string(kRoleLabel), "volume"}};
      std::string docker_name;
      if (v.type == VolumeConfig::Type::kShared) {
        const std::string shared = v.source.empty() ? v.name : v.source;
        docker_name = "flotilla-shared-" + name_part(shared);
        vlabels[std::string(kSharedVolumeLabel)] = shared;
        entry["type"] = "shared";
      } else {
        docker_name = "flotilla_" + name_part(options_.node) + "_" + tag + "_" + name_part(v.name) +
                      "_" + random_suffix();
        vlabels[std::string(kNodeLabel)] = options_.node;
        vlabels[std::string(kPodUidLabel)] = config.pod_uid;
        entry["type"] = "emptyDir";
      }
      auto made = client_.call("POST", "/volumes/create", {{"Name", docker_name}, {"Labels", vlabels}});
      if (!made.is_ok()) {
        cleanup_volumes();
        return made.status().with_prefix("volume \"" + v.name + "\": ");
      }
      if (v.type == VolumeConfig::Type::kEmptyDir) created_volumes.push_back(docker_name);
      entry["docker"] = docker_name;
    }
    volumes.push_back(entry);
  }

  json labels = base_labels;
  for (const auto& [k, v] : config.labels) labels["pod.label/" + k] = v;
  labels[std::string(kRoleLabel)] = "sandbox";
  labels[std::string(kVolumesLabel)] = volumes.dump();

  json exposed = json::object();
  json bindings = json::object();
  for (const PortConfig& p : config.ports) {
    std::string proto = p.protocol == "UDP" ? "udp" : "tcp";
    std::string key = std::to_string(p.container_port) + "/" + proto;
    exposed[key] = json::object();
    if (p.host_port != 0) {
      bindings[key] = json::array(
          {{{"HostIp", "127.0.0.1"}, {"HostPort", std::to_string(p.host_port)}}});
    }
  }
  json host = {{"NetworkMode", options_.network},
               {"RestartPolicy", {{"Name", "no"}}},
               {"Privileged", false},
               {"CapDrop", json::array({"ALL"})},
               {"SecurityOpt", json::array({"no-new-privileges:true"})},
               {"PidsLimit", 16},
               {"Memory", 16 << 20},
               {"PortBindings", bindings},
               {"LogConfig", {{"Type", "json-file"}, {"Config", {{"max-size", "1m"}}}}}};
  if (!config.dns_servers.empty()) {
    host["Dns"] = config.dns_servers;
  } else if (!options_.dns_servers.empty()) {
    host["Dns"] = options_.dns_servers;
  }
  if (host.contains("Dns") && !options_.dns_options.empty()) host["DnsOptions"] = options_.dns_options;
  if (!config.dns_searches.empty()) host["DnsSearch"] = config.dns_searches;
  json body = {{"Image", options_.pause_image},
               {"Hostname", config.hostname.empty() ? config.name : config.hostname},
               {"Labels", labels},
               {"ExposedPorts", exposed},
               {"HostConfig", host},
               {"NetworkingConfig", {{"EndpointsConfig", {{options_.network, json::object()}}}}}};
  const std::string name =
      "flotilla_" + name_part(options_.node) + "_" + tag + "_pause_" + random_suffix();
  auto created = client_.call("POST", "/containers/create?name=" + url_encode(name), body);
  if (!created.is_ok()) {
    cleanup_volumes();
    if (created.status().code() == StatusCode::kNotFound) {
      return not_found_error(image_missing_message(options_.pause_image));
    }
    return created.status().with_prefix("creating the sandbox of pod " + config.ns + "/" +
                                        config.name + ": ");
  }
  const std::string id = (*created)["Id"].get<std::string>();
  auto started = client_.call("POST", "/containers/" + id + "/start");
  if (!started.is_ok()) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      removing_.insert(id);
    }
    (void)client_.call("DELETE", "/containers/" + id + "?force=1&v=1");
    cleanup_volumes();
    const std::string& m = started.status().message();
    if (m.find("port is already allocated") != std::string::npos ||
        m.find("address already in use") != std::string::npos) {
      return conflict_error("pod " + config.ns + "/" + config.name + ": a host port is taken: " + m);
    }
    return started.status().with_prefix("starting the sandbox of pod " + config.ns + "/" +
                                        config.name + ": ");
  }
  auto inspected = client_.call("GET", "/containers/" + id + "/json");
  if (!inspected.is_ok()) return inspected.status();
  PodSandboxStatus status;
  status.id = id;
  status.pod_uid = config.pod_uid;
  status.ns = config.ns;
  status.name = config.name;
  const json& nets = (*inspected)["NetworkSettings"]["Networks"];
  if (nets.contains(options_.network)) {
    status.ip = nets[options_.network].value("IPAddress", "");
  }
  status.ready = (*inspected)["State"].value("Running", false);
  {
    std::lock_guard<std::mutex> lock(mu_);
    sandboxes_[id] = SandboxInfo{config.pod_uid, config.ns, config.name, volumes};
  }
  return status;
}

StatusOr<DockerContainerRuntime::SandboxInfo> DockerContainerRuntime::sandbox_info(
    const std::string& sandbox_id) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = sandboxes_.find(sandbox_id);
    if (it != sandboxes_.end()) return it->second;
  }
  auto inspected = client_.call("GET", "/containers/" + url_encode(sandbox_id) + "/json");
  if (!inspected.is_ok()) {
    if (inspected.status().code() == StatusCode::kNotFound) {
      return not_found_error("sandbox \"" + sandbox_id + "\" not found on node \"" +
                             options_.node + "\"");
    }
    return inspected.status();
  }
  const json& labels = (*inspected)["Config"]["Labels"];
  if (label(labels, kNodeLabel) != options_.node || label(labels, kRoleLabel) != "sandbox") {
    return not_found_error("sandbox \"" + sandbox_id + "\" not found on node \"" + options_.node +
                           "\"");
  }
  SandboxInfo info{label(labels, kPodUidLabel), label(labels, kNamespaceLabel),
                   label(labels, kPodNameLabel),
                   json::parse(label(labels, kVolumesLabel), nullptr, false)};
  if (info.volumes.is_discarded()) info.volumes = json::array();
  std::lock_guard<std::mutex> lock(mu_);
  sandboxes_[(*inspected)["Id"].get<std::string>()] = info;
  return info;
}

StatusOr<std::string> DockerContainerRuntime::do_start_container(const std::string& sandbox_id,
                                                                 const ContainerConfig& config) {
  auto info_or = sandbox_info(sandbox_id);
  if (!info_or.is_ok()) return info_or.status();
  const SandboxInfo& info = *info_or;

  json labels = json::object();
  for (const auto& [k, v] : config.labels) labels["pod.label/" + k] = v;
  labels[std::string(kManagedLabel)] = "true";
  labels[std::string(kNodeLabel)] = options_.node;
  labels[std::string(kPodUidLabel)] = info.pod_uid;
  labels[std::string(kPodNameLabel)] = info.name;
  labels[std::string(kNamespaceLabel)] = info.ns;
  labels[std::string(kContainerLabel)] = config.name;
  labels[std::string(kRoleLabel)] = "app";
  labels[std::string(kSandboxIdLabel)] = sandbox_id;

  json binds = json::array();
  json mounts = json::array();
  for (const MountConfig& m : config.mounts) {
    const json* vol = nullptr;
    for (const json& v : info.volumes) {
      if (v.value("name", "") == m.volume) vol = &v;
    }
    if (vol == nullptr) {
      return invalid_error("container \"" + config.name + "\": volume \"" + m.volume +
                           "\" is not a volume of the pod");
    }
    if (vol->value("type", "") == "hostPath") {
      binds.push_back(vol->value("source", "") + ":" + m.path + (m.read_only ? ":ro" : ""));
    } else {
      mounts.push_back({{"Type", "volume"},
                        {"Source", vol->value("docker", "")},
                        {"Target", m.path},
                        {"ReadOnly", m.read_only}});
    }
  }
  json env = json::array();
  for (const auto& [k, v] : config.env) env.push_back(k + "=" + v);

  json host = {{"NetworkMode", "container:" + sandbox_id},
               {"RestartPolicy", {{"Name", "no"}}},
               {"Privileged", false},
               {"CapDrop", json::array({"ALL"})},
               {"CapAdd", options_.capabilities},
               {"SecurityOpt", json::array({"no-new-privileges:true"})},
               {"PidsLimit", options_.pids_limit},
               {"Binds", binds},
               {"Mounts", mounts},
               {"LogConfig",
                {{"Type", "json-file"}, {"Config", {{"max-size", "10m"}, {"max-file", "3"}}}}}};
  if (config.memory_limit_bytes > 0) {
    host["Memory"] = config.memory_limit_bytes;
    host["MemorySwap"] = config.memory_limit_bytes;  // no swap on top
  }
  if (config.memory_request_bytes > 0) host["MemoryReservation"] = config.memory_request_bytes;
  if (config.cpu_limit_millis > 0) host["NanoCpus"] = config.cpu_limit_millis * 1'000'000;
  if (config.cpu_request_millis > 0) {
    host["CpuShares"] = std::max<int64_t>(2, config.cpu_request_millis * 1024 / 1000);
  }
  json body = {{"Image", config.image}, {"Labels", labels}, {"Env", env}, {"HostConfig", host}};
  if (!config.command.empty()) {
    body["Entrypoint"] = config.command;
    body["Cmd"] = config.args;
  } else if (!config.args.empty()) {
    body["Cmd"] = config.args;
  }
  if (!config.working_dir.empty()) body["WorkingDir"] = config.working_dir;

  const std::string name = "flotilla_" + name_part(options_.node) + "_" + name_part(info.ns) + "_" +
                           name_part(info.name) + "_" + name_part(config.name) + "_" +
                           random_suffix();
  auto created = client_.call("POST", "/containers/create?name=" + url_encode(name), body);
  if (!created.is_ok()) {
    if (created.status().code() == StatusCode::kNotFound &&
        created.status().message().find("image") != std::string::npos) {
      return not_found_error(image_missing_message(config.image));
    }
    return created.status().with_prefix("creating container \"" + config.name + "\": ");
  }
  const std::string id = (*created)["Id"].get<std::string>();
  auto started = client_.call("POST", "/containers/" + id + "/start");
  if (!started.is_ok()) {
    (void)client_.call("DELETE", "/containers/" + id + "?force=1&v=1");
    Status s = started.status();
    if (s.code() == StatusCode::kBadRequest || s.code() == StatusCode::kInternal) {
      s = failed_precondition_error(s.message());  // e.g. the executable is missing
    }
    return s.with_prefix("starting container \"" + config.name + "\": ");
  }
  return id;
}

void DockerContainerRuntime::stop_and_remove(const std::vector<std::string>& ids, Duration grace) {
  if (grace < Duration::zero()) grace = Duration::zero();
  // TERM every container first so their grace periods run concurrently.
  for (const auto& id : ids) {
    (void)client_.call("POST", "/containers/" + id + "/kill?signal=TERM");
  }
  const auto deadline = std::chrono::steady_clock::now() + grace;
  for (const auto& id : ids) {
    auto left = std::chrono::duration_cast<Duration>(deadline - std::chrono::steady_clock::now());
    if (left > Duration::zero()) {
      // Blocks until the container stopped (or the remaining grace ends).
      (void)client_.call("POST", "/containers/" + id + "/wait?condition=not-running", nullptr,
                         left);
    }
  }
  // force: KILL whatever is still running, then remove with anonymous volumes.
  for (const auto& id : ids) {
    (void)client_.call("DELETE", "/containers/" + id + "?force=1&v=1");
  }
}

Status DockerContainerRuntime::do_stop_container(const std::string& container_id,
                                                 Duration grace) {
  auto inspected = client_.call("GET", "/containers/" + url_encode(container_id) + "/json");
  if (!inspected.is_ok()) {
    return inspected.status().code() == StatusCode::kNotFound ? Status::ok() : inspected.status();
  }
  const json& labels = (*inspected)["Config"]["Labels"];
  if (label(labels, kNodeLabel) != options_.node) return Status::ok();  // not ours: unknown
  const std::string id = (*inspected)["Id"].get<std::string>();
  if ((*inspected)["State"].value("Running", false)) {
    stop_and_remove({id}, grace);
  } else {
    (void)client_.call("DELETE", "/containers/" + id + "?force=1&v=1");
  }
  auto gone = client_.call("GET", "/containers/" + id + "/json");
  if (gone.is_ok()) return internal_error("container \"" + container_id + "\" was not removed");
  return Status::ok();
}

Status DockerContainerRuntime::do_remove_sandbox(const std::string& sandbox_id, Duration grace) {
  auto inspected = client_.call("GET", "/containers/" + url_encode(sandbox_id) + "/json");
  if (!inspected.is_ok()) {
    return inspected.status().code() == StatusCode::kNotFound ? Status::ok() : inspected.status();
  }
  const json& slabels = (*inspected)["Config"]["Labels"];
  if (label(slabels, kNodeLabel) != options_.node || label(slabels, kRoleLabel) != "sandbox") {
    return Status::ok();
  }
  const std::string id = (*inspected)["Id"].get<std::string>();
  const std::string pod_uid = label(slabels, kPodUidLabel);
  {
    std::lock_guard<std::mutex> lock(mu_);
    removing_.insert(id);
  }
  json filters = node_filter();
  filters["label"].push_back(std::string(kSandboxIdLabel) + "=" + id);
  auto apps = client_.call("GET", "/containers/json?all=1&filters=" + encode_filters(filters));
  if (!apps.is_ok()) return apps.status();
  std::vector<std::string> ids;
  for (const json& c : *apps) ids.push_back(c["Id"].get<std::string>());
  stop_and_remove(ids, grace);
  stop_and_remove({id}, Duration::zero());
  // The pod's emptyDir volumes.
  json vfilters = node_filter();
  vfilters["label"].push_back(std::string(kPodUidLabel) + "=" + pod_uid);
  auto vols = client_.call("GET", "/volumes?filters=" + encode_filters(vfilters));
  if (vols.is_ok() && (*vols)["Volumes"].is_array()) {
    for (const json& v : (*vols)["Volumes"]) {
      // Only volumes of this sandbox's pod incarnation are in its label.
      const std::string vname = v.value("Name", "");
      bool mine = false;
      for (const json& pv : json::parse(label(slabels, kVolumesLabel), nullptr, false)) {
        if (pv.is_object() && pv.value("docker", "") == vname && pv.value("type", "") == "emptyDir") {
          mine = true;
        }
      }
      if (mine) (void)client_.call("DELETE", "/volumes/" + url_encode(vname) + "?force=1");
    }
  }
  std::lock_guard<std::mutex> lock(mu_);
  sandboxes_.erase(id);
  return Status::ok();
}

StatusOr<int> DockerContainerRuntime::do_exec(const std::string& container_id,
                                              const std::vector<std::string>& command,
                                              Duration timeout) {
  const auto start = std::chrono::steady_clock::now();
  auto timed_out = [&] {
    return Status(StatusCode::kDeadlineExceeded, "exec in container \"" + container_id +
                                                     "\" timed out after " +
                                                     format_duration(timeout));
  };
  auto created = client_.call("POST", "/containers/" + url_encode(container_id) + "/exec",
                              {{"Cmd", command}, {"AttachStdout", true}, {"AttachStderr", true}},
                              timeout);
  if (!created.is_ok()) {
    if (created.status().code() == StatusCode::kNotFound) {
      return not_found_error("container \"" + container_id + "\" not found");
    }
    if (created.status().code() == StatusCode::kConflict) {
      return failed_precondition_error("container \"" + container_id + "\" is not running");
    }
    if (created.status().code() == StatusCode::kDeadlineExceeded) return timed_out();
    return created.status();
  }
  const std::string exec_id = (*created)["Id"].get<std::string>();
  const Duration left =
      timeout - std::chrono::duration_cast<Duration>(std::chrono::steady_clock::now() - start);
  if (left <= Duration::zero()) return timed_out();
  // Not detached: the reply streams the output and ends when the command exits.
  auto ran = client_.request("POST", "/exec/" + exec_id + "/start",
                             json{{"Detach", false}, {"Tty", false}}.dump(), left);
  if (!ran.is_ok()) {
    if (ran.status().code() == StatusCode::kDeadlineExceeded) return timed_out();
    return ran.status();
  }
  if (ran->status >= 300) {
    return failed_precondition_error("exec in container \"" + container_id + "\": " + ran->body);
  }
  auto inspected = client_.call("GET", "/exec/" + exec_id + "/json");
  if (!inspected.is_ok()) return inspected.status();
  if ((*inspected).value("Running", false)) return timed_out();
  const json& code = (*inspected)["ExitCode"];
  if (!code.is_number_integer()) return internal_error("exec finished without an exit code");
  return code.get<int>();
}

StatusOr<std::vector<PodSandboxStatus>> DockerContainerRuntime::do_list() {
  auto listed =
      client_.call("GET", "/containers/json?all=1&filters=" + encode_filters(node_filter()));
  if (!listed.is_ok()) return listed.status();
  std::map<std::string, PodSandboxStatus> by_id;
  std::vector<const json*> apps;
  for (const json& c : *listed) {
    const json& labels = c["Labels"];
    const std::string role = label(labels, kRoleLabel);
    if (role == "sandbox") {
      PodSandboxStatus s;
      s.id = c["Id"].get<std::string>();
      s.pod_uid = label(labels, kPodUidLabel);
      s.ns = label(labels, kNamespaceLabel);
      s.name = label(labels, kPodNameLabel);
      const json& nets = c["NetworkSettings"]["Networks"];
      if (nets.is_object() && nets.contains(options_.network)) {
        s.ip = nets[options_.network].value("IPAddress", "");
      }
      s.ready = c.value("State", "") == "running";
      by_id[s.id] = std::move(s);
    } else if (role == "app") {
      apps.push_back(&c);
    }
  }
  for (const json* c : apps) {
    const json& labels = (*c)["Labels"];
    auto it = by_id.find(label(labels, kSandboxIdLabel));
    if (it == by_id.end()) continue;  // orphan of a removed sandbox
    ContainerStatus cs;
    cs.id = (*c)["Id"].get<std::string>();
    cs.name = label(labels, kContainerLabel);
    cs.image = c->value("Image", "");
    cs.state = state_of(c->value("State", ""));
    auto inspected = client_.call("GET", "/containers/" + cs.id + "/json");
    if (inspected.is_ok()) {
      const json& st = (*inspected)["State"];
      cs.state = state_of(st.value("Status", ""));
      cs.exit_code = st.value("ExitCode", 0);
      const bool oom = st.value("OOMKilled", false);
      if (cs.state == ContainerState::kExited) cs.reason = reason_for(cs.exit_code, oom);
      if (int64_t t = parse_docker_time(st.value("StartedAt", "")); t != 0) {
        cs.started_at = time_from_nanos(t + wall_to_loop_ns_);
      }
      if (int64_t t = parse_docker_time(st.value("FinishedAt", "")); t != 0) {
        cs.finished_at = time_from_nanos(t + wall_to_loop_ns_);
      }
    }
    it->second.containers.push_back(std::move(cs));
  }
  std::vector<PodSandboxStatus> out;
  for (auto& [id, s] : by_id) {
    std::sort(s.containers.begin(), s.containers.end(),
              [](const ContainerStatus& a, const ContainerStatus& b) {
                return a.started_at != b.started_at ? a.started_at < b.started_at : a.id < b.id;
              });
    out.push_back(std::move(s));
  }
  return out;
}

// ---------------------------------------------------------------------------
// Logs.

class DockerContainerRuntime::Logs final : public DockerContainerRuntime::LogStream {
 public:
  ~Logs() override {
    cancel->cancel();
    if (thread.joinable()) thread.join();
  }
  std::shared_ptr<StreamCancel> cancel = std::make_shared<StreamCancel>();
  std::thread thread;
};

std::unique_ptr<DockerContainerRuntime::LogStream> DockerContainerRuntime::logs(
    const std::string& container_id, bool follow, std::function<void(std::string)> on_data,
    Callback<Status> done) {
  auto handle = std::make_unique<Logs>();
  std::weak_ptr<int> alive = alive_;
  std::weak_ptr<StreamCancel> token = handle->cancel;
  const std::string target = "/containers/" + url_encode(container_id) +
                             "/logs?stdout=1&stderr=1" + (follow ? "&follow=1" : "");
  handle->thread = std::thread([this, alive, token, target, cancel = handle->cancel,
                                on_data = std::move(on_data), done = std::move(done)]() mutable {
    std::string carry;
    auto deliver = [&](std::string_view data) {
      std::string text = demux_stream(data, carry);
      if (text.empty()) return;
      loop_.post([alive, token, on_data, text = std::move(text)]() mutable {
        if (alive.lock() && token.lock()) on_data(std::move(text));
      });
    };
    Status s = client_.stream(target, nullptr, deliver, *cancel);
    if (s.code() == StatusCode::kNotFound) {
      s = not_found_error("container \"" + target.substr(12, target.find('/', 12) - 12) +
                          "\" not found");
    }
    loop_.post([alive, token, done = std::move(done), s]() mutable {
      if (alive.lock() && token.lock()) done(s);
    });
  });
  return handle;
}

namespace {
class PortLogStream final : public ContainerLogStream {
 public:
  explicit PortLogStream(std::unique_ptr<DockerContainerRuntime::LogStream> inner)
      : inner_(std::move(inner)) {}

 private:
  std::unique_ptr<DockerContainerRuntime::LogStream> inner_;
};
}  // namespace

std::unique_ptr<ContainerLogStream> DockerContainerRuntime::read_logs(
    const std::string& container_id, bool follow, std::function<void(std::string)> on_data,
    Callback<Status> done) {
  return std::make_unique<PortLogStream>(
      logs(container_id, follow, std::move(on_data), std::move(done)));
}

// ---------------------------------------------------------------------------

Status remove_all_flotilla_objects(const DockerClient& client, const std::string& node) {
  json filters = {{"label", json::array({std::string(kManagedLabel) + "=true"})}};
  if (!node.empty()) filters["label"].push_back(std::string(kNodeLabel) + "=" + node);
  Status first;
  auto note = [&](const Status& s) {
    if (!s.is_ok() && s.code() != StatusCode::kNotFound && first.is_ok()) first = s;
  };
  auto containers = client.call("GET", "/containers/json?all=1&filters=" + encode_filters(filters));
  if (!containers.is_ok()) return containers.status();
  // App containers before sandboxes (they share the sandboxes' namespaces).
  std::vector<std::string> apps, sandboxes;
  for (const json& c : *containers) {
    (label(c["Labels"], kRoleLabel) == "sandbox" ? sandboxes : apps).push_back(c["Id"]);
  }
  for (const auto& list : {apps, sandboxes}) {
    for (const auto& id : list) {
      note(client.call("DELETE", "/containers/" + id + "?force=1&v=1").status());
    }
  }
  auto volumes = client.call("GET", "/volumes?filters=" + encode_filters(filters));
  if (volumes.is_ok() && (*volumes)["Volumes"].is_array()) {
    for (const json& v : (*volumes)["Volumes"]) {
      note(client.call("DELETE", "/volumes/" + url_encode(v.value("Name", "")) + "?force=1")
               .status());
    }
  } else if (!volumes.is_ok()) {
    note(volumes.status());
  }
  if (node.empty()) {
    auto networks = client.call("GET", "/networks?filters=" + encode_filters(filters));
    if (networks.is_ok()) {
      for (const json& n : *networks) {
        note(client.call("DELETE", "/networks/" + n.value("Id", "")).status());
      }
    } else {
      note(networks.status());
    }
  }
  return first;
}

}  // namespace flotilla::docker
