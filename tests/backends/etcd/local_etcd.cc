#include "tests/backends/etcd/local_etcd.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace flotilla::etcd::testing {
namespace {

uint16_t free_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof(addr);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    ::close(fd);
    return 0;
  }
  ::close(fd);
  return ntohs(addr.sin_port);
}

std::string find_etcd() {
  if (const char* e = std::getenv("FLOTILLA_ETCD"); e != nullptr && *e != '\0') return e;
  if (const char* path = std::getenv("PATH")) {
    std::stringstream ss(path);
    std::string dir;
    while (std::getline(ss, dir, ':')) {
      std::string candidate = dir + "/etcd";
      if (::access(candidate.c_str(), X_OK) == 0) return candidate;
    }
  }
  if (::access("/usr/bin/etcd", X_OK) == 0) return "/usr/bin/etcd";
  return "";
}

// GET /health on 127.0.0.1:port; true when etcd says it is healthy.
bool healthy(uint16_t port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bool ok = false;
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0) {
    std::string req = "GET /health HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n";
    if (::send(fd, req.data(), req.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(req.size())) {
      std::string got;
      char buf[4096];
      for (;;) {
        pollfd p{fd, POLLIN, 0};
        if (::poll(&p, 1, 2000) <= 0) break;
        ssize_t n = ::read(fd, buf, sizeof(buf));
        if (n <= 0) break;
        got.append(buf, static_cast<size_t>(n));
      }
      ok = got.find("\"health\":\"true\"") != std::string::npos;
    }
  }
  ::close(fd);
  return ok;
}

std::string tail_of(const std::string& path) {
  std::ifstream in(path);
  std::string all((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  return all.size() > 2000 ? all.substr(all.size() - 2000) : all;
}

}  // namespace

StatusOr<std::unique_ptr<LocalEtcd>> LocalEtcd::start() {
  std::unique_ptr<LocalEtcd> e(new LocalEtcd());
  e->binary_ = find_etcd();
  if (!e->binary_.empty() && ::access(e->binary_.c_str(), X_OK) != 0) {
    return failed_precondition_error("FLOTILLA_ETCD=" + e->binary_ +
                                     " is not an executable etcd binary");
  }
  if (e->binary_.empty()) {
    return failed_precondition_error(
        "etcd is not installed: the etcd tests need Debian's etcd-server (run "
        "scripts/install-deps.sh, or apt-get install etcd-server), or set FLOTILLA_ETCD to an "
        "etcd binary");
  }
  char tmpl[] = "/tmp/flotilla-etcd-XXXXXX";
  if (::mkdtemp(tmpl) == nullptr) return unavailable_error("mkdtemp failed");
  e->dir_ = tmpl;
  for (int attempt = 0; attempt < 3; ++attempt) {
    e->client_port_ = free_port();
    e->peer_port_ = free_port();
    Status s = e->launch();
    if (s.is_ok()) return e;
    if (attempt == 2) return s;
  }
  return unavailable_error("unreachable");
}

Status LocalEtcd::launch() {
  std::string client = "http://127.0.0.1:" + std::to_string(client_port_);
  std::string peer = "http://127.0.0.1:" + std::to_string(peer_port_);
  std::vector<std::string> args = {binary_,
                                   "--name=flotilla-test",
                                   "--data-dir=" + dir_ + "/data",
                                   "--listen-client-urls=" + client,
                                   "--advertise-client-urls=" + client,
                                   "--listen-peer-urls=" + peer,
                                   "--initial-advertise-peer-urls=" + peer,
                                   "--initial-cluster=flotilla-test=" + peer,
                                   "--log-level=warn",
                                   "--logger=zap"};
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  std::string log = dir_ + "/etcd.log";
  // fork + exec rather than posix_spawn: the child asks to be killed when the
  // test process dies, so a crashed test leaves no etcd behind.
  pid_t parent = ::getpid();
  pid_t pid = ::fork();
  if (pid < 0) return unavailable_error("cannot fork: " + std::string(std::strerror(errno)));
  if (pid == 0) {
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) ::_exit(1);
    int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    int null = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
      ::dup2(fd, 1);
      ::dup2(fd, 2);
    }
    if (null >= 0) ::dup2(null, 0);
    ::execv(binary_.c_str(), argv.data());
    ::_exit(127);
  }
  pid_ = pid;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (std::chrono::steady_clock::now() < deadline) {
    int status = 0;
    if (::waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      return unavailable_error(binary_ + " exited during start-up; its log:\n" + tail_of(log));
    }
    if (healthy(client_port_)) return Status::ok();
    ::poll(nullptr, 0, 50);  // etcd is starting: wait for the next check
  }
  ::kill(pid_, SIGKILL);
  ::waitpid(pid_, nullptr, 0);
  pid_ = -1;
  return unavailable_error(binary_ + " was not healthy within 30 s; its log:\n" + tail_of(log));
}

void LocalEtcd::stop() {
  if (pid_ <= 0) return;
  ::kill(pid_, SIGTERM);
  ::waitpid(pid_, nullptr, 0);
  pid_ = -1;
}

Status LocalEtcd::restart() {
  stop();
  return launch();
}

LocalEtcd::~LocalEtcd() {
  if (pid_ > 0) {
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
  }
  std::error_code ec;
  if (!dir_.empty()) std::filesystem::remove_all(dir_, ec);
}

namespace {
std::unique_ptr<LocalEtcd>& shared_slot() {
  static std::unique_ptr<LocalEtcd> slot;
  return slot;
}
}  // namespace

LocalEtcd* shared_etcd() {
  static Status failure = Status::ok();
  std::unique_ptr<LocalEtcd>& slot = shared_slot();
  if (slot == nullptr && failure.is_ok()) {
    StatusOr<std::unique_ptr<LocalEtcd>> e = LocalEtcd::start();
    if (e.is_ok()) {
      slot = std::move(*e);
      // Killed at exit even when a test fails.
      std::atexit([] { shared_slot().reset(); });
    } else {
      failure = e.status();
    }
  }
  if (slot == nullptr) ADD_FAILURE() << failure.message();
  return slot.get();
}

std::string unique_prefix() {
  static std::atomic<int> n{0};
  return "/flotilla-test-" + std::to_string(::getpid()) + "-" + std::to_string(++n) + "/";
}

}  // namespace flotilla::etcd::testing
