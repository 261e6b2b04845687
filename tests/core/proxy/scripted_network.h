// A scripted Network for proxy tests: every endpoint accepts unless a test
// killed it; answers come back through the loop after a fixed latency; DNS
// records land in a map; connects and probes are counted per endpoint.
#pragma once

#include <map>
#include <set>
#include <string>
#include <vector>

#include "core/ports/event_loop.h"
#include "core/ports/network.h"

namespace flotilla::proxy::testing {

class ScriptedNetwork final : public Network {
 public:
  explicit ScriptedNetwork(EventLoop& loop, Duration latency = milliseconds(1))
      : loop_(loop), latency_(latency) {}

  void kill(const NetEndpoint& e) { dead_.insert(e); }
  void revive(const NetEndpoint& e) { dead_.erase(e); }

  void probe(const ProbeRequest& request, Callback<Status> done) override {
    ++probes_[request.target];
    answer(request.target, std::move(done));
  }
  void connect(const std::string& from_node, const NetEndpoint& target, Duration,
               Callback<Status> done) override {
    last_from_ = from_node;
    ++connects_[target];
    answer(target, std::move(done));
  }
  void set_dns_record(const std::string& name, const std::string& ip) override {
    if (ip.empty()) {
      dns_.erase(name);
    } else {
      dns_[name] = ip;
    }
    ++dns_writes_;
  }

  int connects(const NetEndpoint& e) const { return count(connects_, e); }
  int probes(const NetEndpoint& e) const { return count(probes_, e); }
  const std::map<std::string, std::string>& dns() const { return dns_; }
  int dns_writes() const { return dns_writes_; }
  const std::string& last_from() const { return last_from_; }

 private:
  static int count(const std::map<NetEndpoint, int>& m, const NetEndpoint& e) {
    auto it = m.find(e);
    return it == m.end() ? 0 : it->second;
  }
  void answer(const NetEndpoint& target, Callback<Status> done) {
    Status s = dead_.count(target) != 0
                   ? unavailable_error("connection refused by " + target.ip + ":" +
                                       std::to_string(target.port))
                   : Status::ok();
    timers_.push_back(loop_.run_after(latency_, [done = std::move(done), s] { done(s); }));
    if (timers_.size() > 4096) std::erase_if(timers_, [](const TimerHandle& t) { return !t->pending(); });
  }

  EventLoop& loop_;
  Duration latency_;
  std::set<NetEndpoint> dead_;
  std::map<NetEndpoint, int> connects_;
  std::map<NetEndpoint, int> probes_;
  std::map<std::string, std::string> dns_;
  int dns_writes_ = 0;
  std::string last_from_;
  std::vector<TimerHandle> timers_;
};

}  // namespace flotilla::proxy::testing
