// API server benchmark over loopback HTTP: creates per second on one
// keep-alive connection, a list of 10,000 pods (JSON and Table), and the delay
// from a create to its event reaching each of 100 watchers. Reports p50/p99.
#include <arpa/inet.h>
#include <benchmark/benchmark.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "tests/backends/apiserver/test_server.h"

namespace flotilla::apiserver {
namespace {

using Clock = std::chrono::steady_clock;
using testing::TestServer;

int connect_to(uint16_t port) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0) return -1;
  int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  return fd;
}

// One keep-alive connection; responses must carry Content-Length.
class KeepAliveClient {
 public:
  explicit KeepAliveClient(uint16_t port) : fd_(connect_to(port)) {}
  ~KeepAliveClient() { ::close(fd_); }
  // Returns the status code; the body is in body().
  int request(const std::string& method, const std::string& target, const std::string& body = "",
              const std::string& accept = "application/json") {
    std::string req = method + " " + target + " HTTP/1.1\r\nHost: x\r\nAccept: " + accept +
                      "\r\nContent-Type: application/json\r\nContent-Length: " +
                      std::to_string(body.size()) + "\r\n\r\n" + body;
    ::send(fd_, req.data(), req.size(), MSG_NOSIGNAL);
    std::string& in = buf_;
    size_t head_end;
    while ((head_end = in.find("\r\n\r\n")) == std::string::npos) fill();
    size_t cl = in.find("Content-Length: ");
    if (cl == std::string::npos || cl > head_end) cl = in.find("content-length: ");
    size_t len = std::stoul(in.substr(cl + 16));
    while (in.size() < head_end + 4 + len) fill();
    int status = std::stoi(in.substr(9, 3));
    body_ = in.substr(head_end + 4, len);
    in.erase(0, head_end + 4 + len);
    return status;
  }
  const std::string& body() const { return body_; }

 private:
  void fill() {
    char b[65536];
    ssize_t n = ::read(fd_, b, sizeof(b));
    if (n <= 0) throw std::runtime_error("connection closed");
    buf_.append(b, static_cast<size_t>(n));
  }
  int fd_;
  std::string buf_;
  std::string body_;
};

std::string pod_json(const std::string& name) {
  return R"({"apiVersion":"v1","kind":"Pod","metadata":{"name":")" + name +
         R"(","labels":{"app":"bench"}},"spec":{"containers":[{"name":"c","image":"nginx:1",)"
         R"("ports":[{"containerPort":80}],"resources":{"requests":{"cpu":"100m"}}}]}})";
}

void report(benchmark::State& state, std::vector<double>& us) {
  if (us.empty()) return;
  std::sort(us.begin(), us.end());
  state.counters["p50_us"] = us[us.size() / 2];
  state.counters["p99_us"] = us[std::min(us.size() - 1, us.size() * 99 / 100)];
}

void BM_CreatePodKeepAlive(benchmark::State& state) {
  TestServer ts({}, 1000);
  KeepAliveClient c(ts.port());
  std::vector<double> us;
  int i = 0;
  for (auto _ : state) {
    auto t0 = Clock::now();
    int code = c.request("POST", "/api/v1/namespaces/default/pods", pod_json("p" + std::to_string(i++)));
    us.push_back(std::chrono::duration<double, std::micro>(Clock::now() - t0).count());
    if (code != 201) state.SkipWithError("create failed");
  }
  state.SetItemsProcessed(state.iterations());
  report(state, us);
}
BENCHMARK(BM_CreatePodKeepAlive)->UseRealTime()->Iterations(5000);

void fill_pods(TestServer& ts, int n) {
  ts.on_loop([&] {
    for (int i = 0; i < n; ++i) {
      api::Pod p;
      p.mutable_metadata()->set_name("pod-" + std::to_string(i));
      (*p.mutable_metadata()->mutable_labels())["app"] = "app-" + std::to_string(i % 100);
      api::Container* c = p.mutable_spec()->add_containers();
      c->set_name("c");
      c->set_image("nginx:1");
      p.mutable_spec()->set_node_name("node-" + std::to_string(i % 100));
      p.mutable_status()->set_phase("Running");
      (void)ts.store().create(api::share(p));
    }
  });
}

void BM_List10000Pods(benchmark::State& state) {
  TestServer ts({}, 1000);
  fill_pods(ts, 10000);
  KeepAliveClient c(ts.port());
  const bool table = state.range(0) == 1;
  std::vector<double> us;
  size_t bytes = 0;
  for (auto _ : state) {
    auto t0 = Clock::now();
    int code = c.request("GET", "/api/v1/namespaces/default/pods", "",
                         table ? "application/json;as=Table;v=v1;g=meta.k8s.io" : "application/json");
    us.push_back(std::chrono::duration<double, std::micro>(Clock::now() - t0).count());
    bytes = c.body().size();
    if (code != 200) state.SkipWithError("list failed");
  }
  state.counters["body_MB"] = static_cast<double>(bytes) / 1e6;
  report(state, us);
  state.SetLabel(table ? "Table" : "JSON");
}
BENCHMARK(BM_List10000Pods)->Arg(0)->Arg(1)->UseRealTime()->Unit(benchmark::kMillisecond)->Iterations(20);

void BM_WatchFanout100(benchmark::State& state) {
  TestServer ts({}, 100000);
  const int kWatchers = 100;
  std::vector<int> fds;
  for (int i = 0; i < kWatchers; ++i) {
    int fd = connect_to(ts.port());
    std::string req = "GET /api/v1/namespaces/default/pods?watch=1&resourceVersion=" +
                      std::to_string(ts.on_loop([&] { return ts.store().resource_version(); })) +
                      " HTTP/1.1\r\nHost: x\r\n\r\n";
    ::send(fd, req.data(), req.size(), MSG_NOSIGNAL);
    fds.push_back(fd);
  }
  while (ts.on_loop([&] { return ts.server().watch_count(); }) < static_cast<size_t>(kWatchers)) {
  }
  KeepAliveClient c(ts.port());
  std::vector<double> first_us, last_us;
  std::vector<std::string> bufs(kWatchers);
  int i = 0;
  for (auto _ : state) {
    std::string name = "w" + std::to_string(i++);
    std::string needle = "\"name\":\"" + name + "\"";
    auto t0 = Clock::now();
    c.request("POST", "/api/v1/namespaces/default/pods", pod_json(name));
    std::vector<bool> got(kWatchers, false);
    int remaining = kWatchers;
    double first = -1;
    while (remaining > 0) {
      std::vector<pollfd> p;
      for (int w = 0; w < kWatchers; ++w) p.push_back({fds[w], POLLIN, 0});
      if (::poll(p.data(), p.size(), 5000) <= 0) break;
      for (int w = 0; w < kWatchers; ++w) {
        if (got[w] || (p[w].revents & POLLIN) == 0) continue;
        char b[65536];
        ssize_t n = ::read(fds[w], b, sizeof(b));
        if (n > 0) bufs[w].append(b, static_cast<size_t>(n));
        if (bufs[w].find(needle) != std::string::npos) {
          got[w] = true;
          bufs[w].clear();
          --remaining;
          double t = std::chrono::duration<double, std::micro>(Clock::now() - t0).count();
          if (first < 0) first = t;
          if (remaining == 0) last_us.push_back(t);
        }
      }
    }
    if (remaining > 0) state.SkipWithError("a watcher missed the event");
    first_us.push_back(first);
  }
  report(state, last_us);
  std::sort(first_us.begin(), first_us.end());
  if (!first_us.empty()) state.counters["first_p50_us"] = first_us[first_us.size() / 2];
  for (int fd : fds) ::close(fd);
}
BENCHMARK(BM_WatchFanout100)->UseRealTime()->Iterations(300);

}  // namespace
}  // namespace flotilla::apiserver

BENCHMARK_MAIN();
