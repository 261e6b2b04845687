// Test harness for the API server: an in-process server on an ephemeral
// loopback port whose loop runs on its own thread, over the store a test
// chooses (in-memory, durable in a temporary directory, or etcd), a blocking
// HTTP client, and a subprocess runner for the real kubectl (deadlines, never
// sleeps).
#pragma once

#include <chrono>
#include <functional>
#include <future>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "backends/apiserver/api_server.h"
#include "backends/apiserver/splitmix_random.h"
#include "backends/live/asio_event_loop.h"
#include "core/store/in_memory_store.h"

namespace flotilla::apiserver::testing {

// The stores the API suite runs on (value-parameterized tests).
enum class StoreKind {
  kInMemory,  // core/store
  kDurable,   // backends/storage: write-ahead log in a temporary directory
  kEtcd,      // backends/etcd: a local etcd the test process starts
};
std::string store_kind_name(StoreKind kind);  // "InMemory", "Durable", "Etcd"
// Every kind, for INSTANTIATE_TEST_SUITE_P.
std::vector<StoreKind> all_store_kinds();
// Fails the calling test (and returns false) when `kind` cannot run here, as
// when etcd is not installed.
bool store_kind_available(StoreKind kind);

class TestServer {
 public:
  // Starts a store of `kind` (validation on, namespaces enforced, "default"
  // and "kube-system" created) and a server on 127.0.0.1:0, then the loop
  // thread. With kDurable, replies wait for the log (before_reply).
  explicit TestServer(StoreKind kind, ApiServerOptions options = {},
                      int64_t history_size = 10000);
  explicit TestServer(ApiServerOptions options = {}, int64_t history_size = 10000)
      : TestServer(StoreKind::kInMemory, std::move(options), history_size) {}
  ~TestServer();

  // Runs `fn` on the loop thread and returns its result.
  template <typename F>
  auto on_loop(F fn) -> decltype(fn()) {
    using R = decltype(fn());
    auto p = std::make_shared<std::promise<R>>();
    auto fut = p->get_future();
    loop_.post([p, &fn] {
      if constexpr (std::is_void_v<R>) {
        fn();
        p->set_value();
      } else {
        p->set_value(fn());
      }
    });
    return fut.get();
  }

  live::AsioEventLoop& loop() { return loop_; }
  Store& store() { return *store_; }
  ApiServer& server() { return *server_; }
  uint16_t port() const { return port_; }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }

 private:
  live::AsioEventLoop loop_;
  SplitMix64Stream random_{42};
  std::unique_ptr<Store> store_;
  std::string data_dir_;  // kDurable's, removed afterwards
  std::unique_ptr<ApiServer> server_;
  uint16_t port_ = 0;
  std::thread thread_;
};

struct HttpResult {
  int status = 0;
  std::string content_type;
  std::string body;
};

// One request on a fresh connection; status 0 when the connection failed.
HttpResult http_request(uint16_t port, const std::string& method, const std::string& target,
                        const std::string& body = "",
                        const std::string& content_type = "application/json",
                        const std::vector<std::pair<std::string, std::string>>& headers = {});

// A raw streaming connection (a watch): sends one request, then reads.
class StreamClient {
 public:
  StreamClient(uint16_t port, const std::string& target);
  ~StreamClient();
  // Reads until `done(received)` holds or the deadline passes; returns done.
  bool read_until(const std::function<bool(const std::string&)>& done,
                  std::chrono::milliseconds timeout);
  const std::string& received() const { return received_; }

 private:
  int fd_ = -1;
  std::string received_;
};

// A child process with stdout and stderr captured.
class Subprocess {
 public:
  Subprocess(const std::vector<std::string>& argv, const std::vector<std::string>& env);
  ~Subprocess();  // kills the child if it still runs
  // Reads output until `done(stdout)` holds, the child exits, or the timeout.
  bool read_until(const std::function<bool(const std::string&)>& done,
                  std::chrono::milliseconds timeout);
  // The same for standard error.
  bool read_err_until(const std::function<bool(const std::string&)>& done,
                      std::chrono::milliseconds timeout);
  // Waits for exit (killing it at the deadline); returns the exit code (-1: killed).
  int wait(std::chrono::milliseconds timeout);
  // Sends `sig` (SIGTERM: a graceful stop) when the child still runs.
  void signal(int sig);
  void kill();
  const std::string& out() const { return out_; }
  const std::string& err() const { return err_; }

 private:
  bool pump(std::chrono::milliseconds max_wait);
  int pid_ = -1;
  int out_fd_ = -1;
  int err_fd_ = -1;
  bool exited_ = false;
  int exit_code_ = -1;
  std::string out_;
  std::string err_;
};

}  // namespace flotilla::apiserver::testing
