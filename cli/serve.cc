#include "cli/serve.h"

#include <boost/asio/signal_set.hpp>

#include <algorithm>
#include <csignal>
#include <iostream>
#include <optional>
#include <random>

#include "backends/apiserver/api_server.h"
#include "backends/apiserver/splitmix_random.h"
#include "backends/etcd/etcd_store.h"
#include "backends/live/asio_event_loop.h"
#include "backends/storage/durable_store.h"
#include "core/api/validation.h"
#include "core/store/in_memory_store.h"
#include "scenarios/serve_runtime.h"

namespace flotilla::cli {
namespace {

struct ServeFlags {
  std::string listen = "127.0.0.1:6443";
  std::string token;
  std::optional<std::string> data_dir;  // unset: storage::default_data_dir(); "": none
  bool in_memory = false;
  std::string store_url;  // "etcd://HOST:PORT[,...]": the store is etcd (docs/etcd.md)
  bool repair = false;
  int64_t snapshot_every = 10000;
  std::string backend = "sim";
  scenarios::ServeOptions cluster;
  int tick_ms = 5;
  bool keep_containers = false;
  size_t max_watches = apiserver::ApiServerOptions{}.max_watches;
};

// Splits "host:port" ("[::1]:6443" for IPv6).
bool split_listen(const std::string& text, std::string* host, uint16_t* port) {
  size_t colon = text.rfind(':');
  if (colon == std::string::npos || colon + 1 == text.size()) return false;
  *host = text.substr(0, colon);
  if (host->size() >= 2 && host->front() == '[' && host->back() == ']') {
    *host = host->substr(1, host->size() - 2);
  }
  try {
    unsigned long p = std::stoul(text.substr(colon + 1));
    if (p > 65535) return false;
    *port = static_cast<uint16_t>(p);
  } catch (const std::exception&) {
    return false;
  }
  return !host->empty();
}

// --backend sim|docker: the control plane and its nodes behind the API.
int run_cluster(const ServeFlags& flags, const apiserver::ApiServerOptions& api) {
  scenarios::ServeOptions o = flags.cluster;
  o.backend = flags.backend;
  o.api = api;
  o.tick = milliseconds(std::max(flags.tick_ms, 1));
  if (flags.backend == "docker" && !flags.in_memory) {
    o.data_dir = flags.data_dir.value_or(storage::default_data_dir());
    o.repair = flags.repair;
    o.snapshot_every = flags.snapshot_every;
    o.log = [](const std::string& m) { std::cerr << "flotilla serve: " << m << "\n"; };
  }
  o.cleanup = !flags.keep_containers;
  auto runtime = scenarios::ServeRuntime::create(o);
  if (!runtime.is_ok()) {
    std::cerr << "flotilla serve: " << runtime.status().message() << "\n";
    return 1;
  }
  std::cerr << "flotilla serve: Kubernetes API on " << (*runtime)->url()
            << (api.token.empty() ? "" : " (bearer token required)") << " over "
            << (*runtime)->description() << "; `flotilla kubeconfig --server "
            << (*runtime)->url() << "` prints a kubeconfig for kubectl" << std::endl;
  Status s = (*runtime)->run();
  runtime->reset();
  if (!s.is_ok()) {
    std::cerr << "flotilla serve: stopped; cleaning up: " << s.message() << "\n";
    return 1;
  }
  std::cerr << "flotilla serve: stopped\n";
  return 0;
}

int run_serve(const ServeFlags& flags) {
  apiserver::ApiServerOptions options;
  if (!split_listen(flags.listen, &options.address, &options.port)) {
    std::cerr << "flotilla serve: --listen wants HOST:PORT, got \"" << flags.listen << "\"\n";
    return 2;
  }
  if (!apiserver::is_loopback_address(options.address)) {
    std::cerr << "flotilla serve: refusing to listen on " << options.address
              << ": a non-loopback address needs TLS and a bearer token, and this build "
                 "serves plain HTTP only; listen on 127.0.0.1 (or ::1) and reach it through "
                 "an SSH tunnel or a TLS-terminating proxy\n";
    return 2;
  }
  options.token = flags.token;
  options.max_watches = flags.max_watches;
  if (!flags.store_url.empty() && (flags.data_dir || flags.in_memory || flags.repair)) {
    std::cerr << "flotilla serve: --store and --data-dir (or --in-memory, --repair) are mutually "
                 "exclusive: with --store the objects live in etcd, not in a local directory\n";
    return 2;
  }
  if (!flags.store_url.empty() && flags.backend != "none") {
    std::cerr << "flotilla serve: --store works with --backend none only (docs/etcd.md)\n";
    return 2;
  }
  if (flags.backend == "sim" && (flags.data_dir || flags.repair)) {
    std::cerr << "flotilla serve: --data-dir and --repair work with --backend docker or none; "
                 "the sim backend's nodes are simulated and its store stays in memory "
                 "(docs/durability.md)\n";
    return 2;
  }
  if (flags.keep_containers && flags.backend != "docker") {
    std::cerr << "flotilla serve: --keep-containers works with --backend docker only\n";
    return 2;
  }
  if (flags.backend != "none") return run_cluster(flags, options);

  live::AsioEventLoop loop;
  apiserver::SplitMix64Stream random(std::random_device{}() ^
                                     (static_cast<uint64_t>(std::random_device{}()) << 32));
  store::StoreOptions store_options;
  store_options.enforce_namespaces = true;
  store_options.validator = [](const google::protobuf::Message& obj,
                               const google::protobuf::Message* old) {
    return api::invalid_status(obj, old ? api::validate_update(*old, obj) : api::validate(obj));
  };
  std::unique_ptr<Store> owned_store;
  std::string data_dir = flags.in_memory ? "" : flags.data_dir.value_or(storage::default_data_dir());
  if (!flags.store_url.empty()) {
    auto endpoints = etcd::parse_endpoints(flags.store_url);
    if (!endpoints.is_ok()) {
      std::cerr << "flotilla serve: --store: " << endpoints.status().message() << "\n";
      return 2;
    }
    etcd::EtcdOptions etcd_options;
    etcd_options.endpoints = std::move(*endpoints);
    etcd_options.log = [](const std::string& m) { std::cerr << "flotilla serve: " << m << "\n"; };
    auto etcd_store = etcd::EtcdStore::open(loop, random, store_options, etcd_options);
    if (!etcd_store.is_ok()) {
      std::cerr << "flotilla serve: cannot use the store " << flags.store_url << ": "
                << etcd_store.status().message() << "\n";
      return 1;
    }
    std::cerr << "flotilla serve: store etcd at " << (*etcd_store)->endpoint()
              << " under /registry/ (revision " << (*etcd_store)->resource_version() << ")\n";
    owned_store = std::move(*etcd_store);
  } else if (data_dir.empty()) {
    owned_store = std::make_unique<store::InMemoryStore>(loop, random, store_options);
  } else {
    storage::DurableOptions durable_options{
        .dir = data_dir, .snapshot_every = flags.snapshot_every, .repair = flags.repair};
    durable_options.log = [](const std::string& m) { std::cerr << "flotilla serve: " << m << "\n"; };
    auto durable = storage::DurableStore::open(loop, random, store_options, durable_options);
    if (!durable.is_ok()) {
      std::cerr << "flotilla serve: " << durable.status().message() << "\n";
      return 1;
    }
    std::cerr << "flotilla serve: data directory " << data_dir << " (resourceVersion "
              << (*durable)->resource_version() << ")\n";
    options.before_reply = [d = durable->get()](std::function<void()> send) {
      d->when_durable(std::move(send));
    };
    owned_store = std::move(*durable);
  }
  Store& store = *owned_store;
  for (const char* name : {"default", "kube-system", "kube-node-lease"}) {
    if (store.get(api::Kind::kNamespace, "", name).is_ok()) continue;  // recovered
    api::Namespace ns;
    ns.mutable_metadata()->set_name(name);
    ns.mutable_status()->set_phase("Active");
    auto created = store.create(api::share(ns));
    if (!created.is_ok()) {
      std::cerr << "flotilla serve: creating namespace " << name << ": "
                << created.status().message() << "\n";
      return 1;
    }
  }
  apiserver::ApiServer server(loop, store, options);
  Status started = server.start();
  if (!started.is_ok()) {
    std::cerr << "flotilla serve: " << started.message() << "\n";
    return 1;
  }
  boost::asio::signal_set signals(loop.io_context(), SIGINT, SIGTERM);
  signals.async_wait([&](const boost::system::error_code& ec, int) {
    if (ec) return;
    server.stop();
    loop.stop();
  });
  std::cerr << "flotilla serve: Kubernetes API on " << server.url()
            << (options.token.empty() ? "" : " (bearer token required)")
            << "; `flotilla kubeconfig --server " << server.url()
            << "` prints a kubeconfig for kubectl\n";
  loop.run();
  std::cerr << "flotilla serve: stopped\n";
  return 0;
}

}  // namespace

std::string kubeconfig_text(const std::string& server_url, const std::string& token) {
  std::string out =
      "apiVersion: v1\n"
      "kind: Config\n"
      "clusters:\n"
      "- name: flotilla\n"
      "  cluster:\n"
      "    server: " + server_url + "\n"
      "users:\n"
      "- name: flotilla\n"
      "  user:";
  out += token.empty() ? " {}\n" : "\n    token: " + token + "\n";
  out +=
      "contexts:\n"
      "- name: flotilla\n"
      "  context:\n"
      "    cluster: flotilla\n"
      "    user: flotilla\n"
      "    namespace: default\n"
      "current-context: flotilla\n";
  return out;
}

void add_serve_commands(CLI::App& app, int* exit_code) {
  auto flags = std::make_shared<ServeFlags>();
  CLI::App* serve = app.add_subcommand(
      "serve",
      "Serve the Kubernetes core/v1 API over a Flotilla cluster: simulated nodes (default), "
      "Docker, or the object store alone (kubectl works)");
  serve->add_option("--listen", flags->listen, "HOST:PORT to listen on (loopback only)")
      ->capture_default_str();
  serve->add_option("--token", flags->token, "Require this bearer token on every request");
  serve->add_option("--data-dir", flags->data_dir,
                    "none, docker: keep the object store in this directory (write-ahead log, "
                    "snapshots; \"\" for none); default $XDG_STATE_HOME/flotilla/serve or "
                    "~/.local/state/flotilla/serve");
  serve->add_option("--max-watches", flags->max_watches,
                    "Watches open at once; one more gets 429 Too Many Requests (0: no cap)")
      ->capture_default_str();
  serve->add_flag("--in-memory", flags->in_memory, "Keep nothing on disk (as --data-dir '')");
  serve->add_option("--store", flags->store_url,
                    "none: keep the object store in etcd, etcd://HOST:PORT[,HOST:PORT...] "
                    "(keys under /registry/; docs/etcd.md); excludes --data-dir");
  serve->add_flag("--keep-containers", flags->keep_containers,
                  "docker: leave the pods' containers running when serve stops, for a restart "
                  "on the same --data-dir to adopt (a killed serve always leaves them)");
  serve->add_flag("--repair", flags->repair,
                  "Truncate the log at a corrupt record (and say what was dropped) instead of "
                  "refusing to start");
  serve->add_option("--snapshot-every", flags->snapshot_every,
                    "Snapshot and compact the log after this many records (0: never)")
      ->capture_default_str();
  serve->add_option("--backend", flags->backend,
                    "What runs the pods: sim (simulated nodes paced to the wall clock), "
                    "docker (containers on the local Docker engine) or none (the object "
                    "store only)")
      ->check(CLI::IsMember({"sim", "docker", "none"}))
      ->capture_default_str();
  scenarios::ServeOptions& c = flags->cluster;
  serve->add_option("--nodes", c.nodes, "Nodes of the cluster (without --scenario)")
      ->capture_default_str();
  serve->add_option("--node-cpu", c.node_cpu, "Each node's CPU capacity")->capture_default_str();
  serve->add_option("--node-memory", c.node_memory, "Each node's memory capacity")
      ->capture_default_str();
  serve->add_option("--node-pods", c.node_pods, "Each node's pod capacity")->capture_default_str();
  serve->add_option("--cluster-cidr", c.cluster_cidr,
                    "Give every Node a spec.podCIDR from this CIDR (node IPAM), for agents "
                    "run with --pod-network (docs/multihost.md); e.g. 10.244.0.0/16");
  serve->add_option("--node-cidr-mask-size", c.node_cidr_mask_size,
                    "Prefix length of each Node's podCIDR (with --cluster-cidr)")
      ->capture_default_str();
  serve->add_option("--timing", c.timing, "Timing profile (without --scenario): fast or kubernetes")
      ->check(CLI::IsMember({"fast", "kubernetes"}))
      ->capture_default_str();
  serve->add_option("--scenario", c.scenario_path,
                    "Take the cluster, runtime model, workload and (sim) faults from a "
                    "scenario file");
  serve->add_option("--set", c.overrides, "Override a scenario value: path=value (repeatable)");
  serve->add_option("--tick-ms", flags->tick_ms,
                    "sim: how often the simulator catches up with the wall clock")
      ->capture_default_str();
  serve->add_option("--docker-socket", c.docker_socket, "docker: the engine's socket")
      ->capture_default_str();
  serve->add_option("--docker-network", c.docker_network, "docker: the pods' bridge network")
      ->capture_default_str();
  serve->add_option("--node-label-prefix", c.node_label_prefix,
                    "docker: prefix of the flotilla.io/node label of this serve's containers")
      ->capture_default_str();
  serve->add_option("--host-port-offset", c.host_port_offset,
                    "docker: Service port P is reachable on 127.0.0.1:P+offset")
      ->capture_default_str();
  serve->callback([flags, exit_code] { *exit_code = run_serve(*flags); });

  auto server = std::make_shared<std::string>("http://127.0.0.1:6443");
  auto token = std::make_shared<std::string>();
  CLI::App* kubeconfig =
      app.add_subcommand("kubeconfig", "Print a kubeconfig for `flotilla serve`");
  kubeconfig->add_option("--server", *server, "The server's URL")->capture_default_str();
  kubeconfig->add_option("--token", *token, "The bearer token the server wants");
  kubeconfig->callback([server, token, exit_code] {
    std::cout << kubeconfig_text(*server, *token);
    *exit_code = 0;
  });
}

}  // namespace flotilla::cli
