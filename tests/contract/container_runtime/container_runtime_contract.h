// The ContainerRuntime port's contract as a typed GoogleTest suite, run on the
// simulated runtime (virtual time) and on DockerContainerRuntime (real time).
// A factory builds a ContainerRuntimeHarness: the runtime, its loop, a way to
// wait for a condition with a deadline, and containers with given behaviours
// (the simulator configures behaviours by image, Docker runs real commands).
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/ports/container_runtime.h"

namespace flotilla::contract {

class ContainerRuntimeHarness {
 public:
  virtual ~ContainerRuntimeHarness() = default;
  virtual EventLoop& loop() = 0;
  virtual ContainerRuntime& runtime() = 0;
  // Drives the loop until `done()` or until `timeout` of the loop's time has
  // passed; returns done().
  virtual bool run_until(const std::function<bool()>& done, Duration timeout) = 0;
  // A container that runs until stopped and exits 0 promptly on TERM.
  virtual ContainerConfig server(const std::string& name) = 0;
  // A container that exits by itself within a second or so with `code`.
  virtual ContainerConfig exits_with(const std::string& name, int code) = 0;
  // A container that ignores TERM, so stopping it waits for the grace period.
  virtual ContainerConfig ignores_term(const std::string& name) = 0;
  // An image this node does not have and cannot get.
  virtual std::string missing_image() = 0;
  // A command for exec that exits with `code`.
  virtual std::vector<std::string> exec_exiting(int code) = 0;
  // False when the runtime's exec models only success (the simulator's).
  virtual bool exec_models_exit_codes() const = 0;
  // A generous bound for one runtime call in this world.
  virtual Duration op_timeout() const = 0;
};

// Factory: `static std::unique_ptr<ContainerRuntimeHarness> make(std::string* skip)`;
// returning nullptr with `skip` set skips the test with that message.
template <typename Factory>
class ContainerRuntimeContractTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string skip;
    harness_ = Factory::make(&skip);
    if (!harness_) GTEST_SKIP() << skip;
    sub_ = runtime().subscribe([this](const ContainerEvent& e) { events_.push_back(e); });
  }
  void TearDown() override {
    sub_.reset();
    harness_.reset();  // removes whatever the test created
  }

  ContainerRuntime& runtime() { return harness_->runtime(); }
  EventLoop& loop() { return harness_->loop(); }
  ContainerRuntimeHarness& harness() { return *harness_; }

  // Calls `start(callback)` and drives the loop until the callback ran. Fails
  // the test when it ran re-entrantly or not within op_timeout().
  template <typename T>
  std::optional<T> await(const std::function<void(Callback<T>)>& start) {
    std::optional<T> result;
    bool inside = true;
    bool reentrant = false;
    start([&](T v) {
      reentrant = reentrant || inside;
      result.emplace(std::move(v));
    });
    inside = false;
    EXPECT_FALSE(reentrant) << "a callback ran from inside the call";
    EXPECT_TRUE(harness_->run_until([&] { return result.has_value(); }, harness_->op_timeout()))
        << "no result within " << format_duration(harness_->op_timeout());
    return result;
  }

  PodSandboxConfig pod(const std::string& name) {
    PodSandboxConfig c;
    c.pod_uid = "uid-" + name;
    c.ns = "contract";
    c.name = name;
    c.hostname = name;
    c.labels = {{"app", "contract"}};
    return c;
  }
  PodSandboxStatus sandbox(const std::string& name) {
    auto s = await<StatusOr<PodSandboxStatus>>(
        [&](auto cb) { runtime().run_pod_sandbox(pod(name), cb); });
    if (!s) return {};
    EXPECT_TRUE(s->is_ok()) << s->status().to_string();
    return s->is_ok() ? **s : PodSandboxStatus{};
  }
  std::string start(const std::string& sandbox_id, const ContainerConfig& c) {
    auto id = await<StatusOr<std::string>>(
        [&](auto cb) { runtime().start_container(sandbox_id, c, cb); });
    if (!id) return {};
    EXPECT_TRUE(id->is_ok()) << id->status().to_string();
    return id->is_ok() ? **id : std::string();
  }
  std::vector<PodSandboxStatus> list() {
    auto l = await<StatusOr<std::vector<PodSandboxStatus>>>(
        [&](auto cb) { runtime().list_pod_sandboxes(cb); });
    if (!l) return {};
    EXPECT_TRUE(l->is_ok()) << l->status().to_string();
    return l->is_ok() ? **l : std::vector<PodSandboxStatus>{};
  }
  const PodSandboxStatus* find(const std::vector<PodSandboxStatus>& all, const std::string& id) {
    for (const auto& s : all) {
      if (s.id == id) return &s;
    }
    return nullptr;
  }
  // The first event of `type` for container `id`, waiting up to op_timeout().
  std::optional<ContainerEvent> wait_event(ContainerEvent::Type type, const std::string& id) {
    auto match = [&]() -> const ContainerEvent* {
      for (const auto& e : events_) {
        if (e.type == type && (e.container.id == id || e.sandbox_id == id)) return &e;
      }
      return nullptr;
    };
    harness_->run_until([&] { return match() != nullptr; }, harness_->op_timeout());
    const ContainerEvent* e = match();
    if (e == nullptr) return std::nullopt;
    return *e;
  }

  std::unique_ptr<ContainerRuntimeHarness> harness_;
  std::unique_ptr<RuntimeSubscription> sub_;
  std::vector<ContainerEvent> events_;
};

TYPED_TEST_SUITE_P(ContainerRuntimeContractTest);

inline bool looks_like_ipv4(const std::string& ip) {
  int dots = 0, digits = 0;
  for (char c : ip) {
    if (c == '.') {
      if (digits == 0) return false;
      ++dots;
      digits = 0;
    } else if (c >= '0' && c <= '9') {
      ++digits;
    } else {
      return false;
    }
  }
  return dots == 3 && digits > 0;
}

TYPED_TEST_P(ContainerRuntimeContractTest, RunPodSandboxGivesEachPodItsOwnIp) {
  PodSandboxStatus a = this->sandbox("ip-a");
  PodSandboxStatus b = this->sandbox("ip-b");
  EXPECT_FALSE(a.id.empty());
  EXPECT_NE(a.id, b.id);
  EXPECT_TRUE(looks_like_ipv4(a.ip)) << a.ip;
  EXPECT_TRUE(looks_like_ipv4(b.ip)) << b.ip;
  EXPECT_NE(a.ip, b.ip);
  EXPECT_TRUE(a.ready);
  EXPECT_EQ(a.pod_uid, "uid-ip-a");
  EXPECT_EQ(a.name, "ip-a");
  EXPECT_EQ(a.ns, "contract");
}

TYPED_TEST_P(ContainerRuntimeContractTest, StartContainerRunsItAndReportsStarted) {
  PodSandboxStatus sb = this->sandbox("run");
  const std::string id = this->start(sb.id, this->harness().server("web"));
  ASSERT_FALSE(id.empty());
  auto started = this->wait_event(ContainerEvent::Type::kStarted, id);
  ASSERT_TRUE(started.has_value()) << "no kStarted event";
  EXPECT_EQ(started->container.name, "web");
  EXPECT_EQ(started->sandbox_id, sb.id);
  EXPECT_EQ(started->pod_uid, "uid-run");
  auto all = this->list();
  const PodSandboxStatus* s = this->find(all, sb.id);
  ASSERT_NE(s, nullptr);
  ASSERT_EQ(s->containers.size(), 1u);
  EXPECT_EQ(s->containers[0].id, id);
  EXPECT_EQ(s->containers[0].name, "web");
  EXPECT_EQ(s->containers[0].state, ContainerState::kRunning);
}

TYPED_TEST_P(ContainerRuntimeContractTest, StartContainerInAnUnknownSandboxIsNotFound) {
  auto r = this->template await<StatusOr<std::string>>([&](auto cb) {
    this->runtime().start_container("no-such-sandbox", this->harness().server("web"), cb);
  });
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->status().code(), StatusCode::kNotFound) << r->status().to_string();
}

TYPED_TEST_P(ContainerRuntimeContractTest, StopContainerStopsAPoliteContainerBeforeTheGraceEnds) {
  PodSandboxStatus sb = this->sandbox("stop");
  const std::string id = this->start(sb.id, this->harness().server("web"));
  ASSERT_FALSE(id.empty());
  const Duration grace = std::chrono::seconds(20);
  const TimePoint t0 = this->loop().now();
  auto s = this->template await<Status>(
      [&](auto cb) { this->runtime().stop_container(id, grace, cb); });
  ASSERT_TRUE(s.has_value());
  EXPECT_TRUE(s->is_ok()) << s->to_string();
  EXPECT_LT(this->loop().now() - t0, grace) << "stop waited for the whole grace period";
  auto exited = this->wait_event(ContainerEvent::Type::kExited, id);
  ASSERT_TRUE(exited.has_value());
  EXPECT_EQ(exited->container.exit_code, 0);
  auto all = this->list();
  const PodSandboxStatus* p = this->find(all, sb.id);
  ASSERT_NE(p, nullptr);
  EXPECT_TRUE(p->containers.empty()) << "the stopped container was not removed";
  // Idempotent.
  auto again = this->template await<Status>(
      [&](auto cb) { this->runtime().stop_container(id, grace, cb); });
  ASSERT_TRUE(again.has_value());
  EXPECT_TRUE(again->is_ok()) << again->to_string();
}

TYPED_TEST_P(ContainerRuntimeContractTest, StopKillsAContainerIgnoringTermWhenTheGraceEnds) {
  PodSandboxStatus sb = this->sandbox("stubborn");
  const std::string id = this->start(sb.id, this->harness().ignores_term("stubborn"));
  ASSERT_FALSE(id.empty());
  ASSERT_TRUE(this->wait_event(ContainerEvent::Type::kStarted, id).has_value());
  const Duration grace = std::chrono::seconds(2);
  const TimePoint t0 = this->loop().now();
  auto s = this->template await<Status>(
      [&](auto cb) { this->runtime().stop_container(id, grace, cb); });
  ASSERT_TRUE(s.has_value());
  EXPECT_TRUE(s->is_ok()) << s->to_string();
  EXPECT_GE(this->loop().now() - t0, grace) << "killed before the grace period ended";
  auto exited = this->wait_event(ContainerEvent::Type::kExited, id);
  ASSERT_TRUE(exited.has_value());
  EXPECT_EQ(exited->container.exit_code, 137);  // 128 + SIGKILL
}

TYPED_TEST_P(ContainerRuntimeContractTest, AContainerThatExitsProducesAnExitedEventWithItsCode) {
  PodSandboxStatus sb = this->sandbox("exits");
  const std::string failed = this->start(sb.id, this->harness().exits_with("fails", 3));
  const std::string done = this->start(sb.id, this->harness().exits_with("completes", 0));
  ASSERT_FALSE(failed.empty());
  ASSERT_FALSE(done.empty());
  auto e1 = this->wait_event(ContainerEvent::Type::kExited, failed);
  ASSERT_TRUE(e1.has_value()) << "no kExited event";
  EXPECT_EQ(e1->container.exit_code, 3);
  EXPECT_EQ(e1->container.reason, "Error");
  EXPECT_EQ(e1->container.name, "fails");
  EXPECT_EQ(e1->pod_uid, "uid-exits");
  EXPECT_EQ(e1->sandbox_id, sb.id);
  auto e2 = this->wait_event(ContainerEvent::Type::kExited, done);
  ASSERT_TRUE(e2.has_value());
  EXPECT_EQ(e2->container.exit_code, 0);
  EXPECT_EQ(e2->container.reason, "Completed");
  // Started comes before exited for each container, in the order they happened.
  for (const std::string& id : {failed, done}) {
    int started_at = -1, exited_at = -1;
    for (size_t i = 0; i < this->events_.size(); ++i) {
      if (this->events_[i].container.id != id) continue;
      if (this->events_[i].type == ContainerEvent::Type::kStarted) started_at = static_cast<int>(i);
      if (this->events_[i].type == ContainerEvent::Type::kExited) exited_at = static_cast<int>(i);
    }
    EXPECT_GE(started_at, 0);
    EXPECT_LT(started_at, exited_at);
  }
  // The runtime does not restart it: the node agent owns restarts.
  auto all = this->list();
  const PodSandboxStatus* p = this->find(all, sb.id);
  ASSERT_NE(p, nullptr);
  for (const auto& c : p->containers) {
    EXPECT_EQ(c.state, ContainerState::kExited) << c.name;
    if (c.id == failed) {
      EXPECT_EQ(c.exit_code, 3);
    }
  }
}

TYPED_TEST_P(ContainerRuntimeContractTest, ListFindsEverySandboxWithItsContainersOrderedById) {
  PodSandboxStatus a = this->sandbox("list-a");
  PodSandboxStatus b = this->sandbox("list-b");
  const std::string web = this->start(a.id, this->harness().server("web"));
  const std::string side = this->start(a.id, this->harness().server("sidecar"));
  auto all = this->list();
  ASSERT_EQ(all.size(), 2u);
  EXPECT_LT(all[0].id, all[1].id);
  const PodSandboxStatus* pa = this->find(all, a.id);
  const PodSandboxStatus* pb = this->find(all, b.id);
  ASSERT_NE(pa, nullptr);
  ASSERT_NE(pb, nullptr);
  EXPECT_EQ(pa->ip, a.ip);
  EXPECT_EQ(pa->pod_uid, "uid-list-a");
  EXPECT_EQ(pa->name, "list-a");
  EXPECT_EQ(pa->ns, "contract");
  EXPECT_TRUE(pa->ready);
  std::vector<std::string> names;
  for (const auto& c : pa->containers) names.push_back(c.name);
  std::sort(names.begin(), names.end());
  EXPECT_EQ(names, (std::vector<std::string>{"sidecar", "web"}));
  EXPECT_TRUE(pb->containers.empty());
}

TYPED_TEST_P(ContainerRuntimeContractTest, RemovePodSandboxRemovesItAndItsContainers) {
  PodSandboxStatus gone = this->sandbox("rm-gone");
  PodSandboxStatus kept = this->sandbox("rm-kept");
  const std::string c1 = this->start(gone.id, this->harness().server("web"));
  ASSERT_FALSE(c1.empty());
  auto s = this->template await<Status>([&](auto cb) {
    this->runtime().remove_pod_sandbox(gone.id, std::chrono::seconds(10), cb);
  });
  ASSERT_TRUE(s.has_value());
  EXPECT_TRUE(s->is_ok()) << s->to_string();
  auto all = this->list();
  EXPECT_EQ(this->find(all, gone.id), nullptr);
  EXPECT_NE(this->find(all, kept.id), nullptr);
  EXPECT_TRUE(this->wait_event(ContainerEvent::Type::kExited, c1).has_value());
  for (const auto& e : this->events_) {
    EXPECT_FALSE(e.type == ContainerEvent::Type::kSandboxLost && e.sandbox_id == gone.id)
        << "a removed sandbox is not a lost one";
  }
  // Idempotent, also for its containers.
  auto again = this->template await<Status>([&](auto cb) {
    this->runtime().remove_pod_sandbox(gone.id, std::chrono::seconds(1), cb);
  });
  ASSERT_TRUE(again.has_value());
  EXPECT_TRUE(again->is_ok()) << again->to_string();
  auto stop = this->template await<Status>(
      [&](auto cb) { this->runtime().stop_container(c1, std::chrono::seconds(1), cb); });
  ASSERT_TRUE(stop.has_value());
  EXPECT_TRUE(stop->is_ok()) << stop->to_string();
  // A container cannot start in it any more.
  auto late = this->template await<StatusOr<std::string>>([&](auto cb) {
    this->runtime().start_container(gone.id, this->harness().server("late"), cb);
  });
  ASSERT_TRUE(late.has_value());
  EXPECT_EQ(late->status().code(), StatusCode::kNotFound) << late->status().to_string();
}

TYPED_TEST_P(ContainerRuntimeContractTest, AMissingImageIsNotFoundWithAMessageNamingIt) {
  const std::string image = this->harness().missing_image();
  auto pulled = this->template await<Status>(
      [&](auto cb) { this->runtime().pull_image(image, cb); });
  ASSERT_TRUE(pulled.has_value());
  EXPECT_EQ(pulled->code(), StatusCode::kNotFound) << pulled->to_string();
  EXPECT_NE(pulled->message().find(image), std::string::npos) << pulled->message();
  PodSandboxStatus sb = this->sandbox("missing");
  ContainerConfig c = this->harness().server("web");
  c.image = image;
  auto started = this->template await<StatusOr<std::string>>(
      [&](auto cb) { this->runtime().start_container(sb.id, c, cb); });
  ASSERT_TRUE(started.has_value());
  EXPECT_EQ(started->status().code(), StatusCode::kNotFound) << started->status().to_string();
  // A present image pulls fine.
  auto present = this->template await<Status>([&](auto cb) {
    this->runtime().pull_image(this->harness().server("web").image, cb);
  });
  ASSERT_TRUE(present.has_value());
  EXPECT_TRUE(present->is_ok()) << present->to_string();
}

TYPED_TEST_P(ContainerRuntimeContractTest, ExecReturnsTheCommandsExitCode) {
  PodSandboxStatus sb = this->sandbox("exec");
  const std::string id = this->start(sb.id, this->harness().server("web"));
  ASSERT_FALSE(id.empty());
  ASSERT_TRUE(this->wait_event(ContainerEvent::Type::kStarted, id).has_value());
  auto ok = this->template await<StatusOr<int>>([&](auto cb) {
    this->runtime().exec(id, this->harness().exec_exiting(0), std::chrono::seconds(10), cb);
  });
  ASSERT_TRUE(ok.has_value());
  ASSERT_TRUE(ok->is_ok()) << ok->status().to_string();
  EXPECT_EQ(**ok, 0);
  if (this->harness().exec_models_exit_codes()) {
    auto seven = this->template await<StatusOr<int>>([&](auto cb) {
      this->runtime().exec(id, this->harness().exec_exiting(7), std::chrono::seconds(10), cb);
    });
    ASSERT_TRUE(seven.has_value());
    ASSERT_TRUE(seven->is_ok()) << seven->status().to_string();
    EXPECT_EQ(**seven, 7);
  }
  auto unknown = this->template await<StatusOr<int>>([&](auto cb) {
    this->runtime().exec("no-such-container", this->harness().exec_exiting(0),
                         std::chrono::seconds(10), cb);
  });
  ASSERT_TRUE(unknown.has_value());
  EXPECT_EQ(unknown->status().code(), StatusCode::kNotFound) << unknown->status().to_string();
}

REGISTER_TYPED_TEST_SUITE_P(ContainerRuntimeContractTest, RunPodSandboxGivesEachPodItsOwnIp,
                            StartContainerRunsItAndReportsStarted,
                            StartContainerInAnUnknownSandboxIsNotFound,
                            StopContainerStopsAPoliteContainerBeforeTheGraceEnds,
                            StopKillsAContainerIgnoringTermWhenTheGraceEnds,
                            AContainerThatExitsProducesAnExitedEventWithItsCode,
                            ListFindsEverySandboxWithItsContainersOrderedById,
                            RemovePodSandboxRemovesItAndItsContainers,
                            AMissingImageIsNotFoundWithAMessageNamingIt,
                            ExecReturnsTheCommandsExitCode);

}  // namespace flotilla::contract
