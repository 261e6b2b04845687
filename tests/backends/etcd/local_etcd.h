// LocalEtcd: a throwaway etcd for tests, as `make test` starts Docker for the
// live tests: etcd (Debian's etcd-server) on free loopback ports with a fresh
// data directory, ready once /health says so, killed and removed afterwards.
// When etcd is not installed, start() fails with a message saying how to
// install it: the tests fail, they do not skip.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "backends/etcd/etcd_client.h"
#include "core/util/status.h"

namespace flotilla::etcd::testing {

class LocalEtcd {
 public:
  // $FLOTILLA_ETCD, else `etcd` on $PATH, else /usr/bin/etcd. Waits up to
  // 30 s for /health.
  static StatusOr<std::unique_ptr<LocalEtcd>> start();
  // Kills etcd and removes its data directory.
  ~LocalEtcd();
  LocalEtcd(const LocalEtcd&) = delete;
  LocalEtcd& operator=(const LocalEtcd&) = delete;

  // Stops etcd (SIGTERM, waits), keeping its data; restart() brings it back
  // on the same ports and directory.
  void stop();
  Status restart();

  uint16_t client_port() const { return client_port_; }
  std::string url() const { return "etcd://127.0.0.1:" + std::to_string(client_port_); }
  std::vector<Endpoint> endpoints() const { return {Endpoint{"127.0.0.1", client_port_}}; }

 private:
  LocalEtcd() = default;
  Status launch();
  std::string binary_;
  std::string dir_;
  uint16_t client_port_ = 0;
  uint16_t peer_port_ = 0;
  int pid_ = -1;
};

// One etcd per test process, started on first use (tests keep apart by key
// prefix, see unique_prefix). Fails the calling test when it cannot start.
LocalEtcd* shared_etcd();
// "/flotilla-test-<pid>-<n>/": a prefix no other test in any process uses.
std::string unique_prefix();

}  // namespace flotilla::etcd::testing
