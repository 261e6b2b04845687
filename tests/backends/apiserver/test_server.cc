#include "tests/backends/apiserver/test_server.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cassert>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>

#include "backends/etcd/etcd_store.h"
#include "backends/storage/durable_store.h"
#include "core/api/validation.h"
#include "tests/backends/etcd/local_etcd.h"

extern char** environ;

namespace flotilla::apiserver::testing {
namespace {

using Clock = std::chrono::steady_clock;

int connect_loopback(uint16_t port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

bool write_all(int fd, const std::string& data) {
  size_t off = 0;
  while (off < data.size()) {
    ssize_t n = ::send(fd, data.data() + off, data.size() - off, MSG_NOSIGNAL);
    if (n <= 0) return false;
    off += static_cast<size_t>(n);
  }
  return true;
}

// Reads what is available within `max_wait`; false on EOF or error.
bool read_some(int fd, std::string* into, std::chrono::milliseconds max_wait) {
  pollfd p{fd, POLLIN, 0};
  int r = ::poll(&p, 1, static_cast<int>(max_wait.count()));
  if (r <= 0) return r == 0;
  char buf[65536];
  ssize_t n = ::read(fd, buf, sizeof(buf));
  if (n <= 0) return false;
  into->append(buf, static_cast<size_t>(n));
  return true;
}

std::string dechunk(const std::string& body) {
  std::string out;
  size_t i = 0;
  while (i < body.size()) {
    size_t eol = body.find("\r\n", i);
    if (eol == std::string::npos) break;
    size_t n = std::stoul(body.substr(i, eol - i), nullptr, 16);
    if (n == 0) break;
    out += body.substr(eol + 2, n);
    i = eol + 2 + n + 2;
  }
  return out;
}

}  // namespace

namespace {
[[noreturn]] void die(const std::string& why) {
  std::fprintf(stderr, "TestServer: %s\n", why.c_str());
  std::abort();
}
}  // namespace

std::string store_kind_name(StoreKind kind) {
  switch (kind) {
    case StoreKind::kInMemory:
      return "InMemory";
    case StoreKind::kDurable:
      return "Durable";
    case StoreKind::kEtcd:
      return "Etcd";
  }
  return "?";
}

std::vector<StoreKind> all_store_kinds() {
  return {StoreKind::kInMemory, StoreKind::kDurable, StoreKind::kEtcd};
}

bool store_kind_available(StoreKind kind) {
  return kind != StoreKind::kEtcd || etcd::testing::shared_etcd() != nullptr;
}

TestServer::TestServer(StoreKind kind, ApiServerOptions options, int64_t history_size) {
  store::StoreOptions so;
  so.enforce_namespaces = true;
  so.history_size = history_size;
  so.validator = [](const google::protobuf::Message& obj, const google::protobuf::Message* old) {
    return api::invalid_status(obj, old ? api::validate_update(*old, obj) : api::validate(obj));
  };
  switch (kind) {
    case StoreKind::kInMemory:
      store_ = std::make_unique<store::InMemoryStore>(loop_, random_, so);
      break;
    case StoreKind::kDurable: {
      char tmpl[] = "/tmp/flotilla-api-wal-XXXXXX";
      data_dir_ = ::mkdtemp(tmpl) != nullptr ? tmpl : "";
      auto durable = storage::DurableStore::open(loop_, random_, so, {.dir = data_dir_});
      if (!durable.is_ok()) die("cannot open a durable store: " + durable.status().message());
      storage::DurableStore* d = durable->get();
      if (!options.before_reply) {
        options.before_reply = [d](std::function<void()> send) { d->when_durable(std::move(send)); };
      }
      store_ = std::move(*durable);
      break;
    }
    case StoreKind::kEtcd: {
      etcd::testing::LocalEtcd* server = etcd::testing::shared_etcd();
      if (server == nullptr) die("etcd did not start (see the failure above)");
      etcd::EtcdOptions eo;
      eo.endpoints = server->endpoints();
      eo.prefix = etcd::testing::unique_prefix();
      auto e = etcd::EtcdStore::open(loop_, random_, so, eo);
      if (!e.is_ok()) die("cannot open the etcd store: " + e.status().message());
      store_ = std::move(*e);
      break;
    }
  }
  for (const char* name : {"default", "kube-system"}) {
    api::Namespace ns;
    ns.mutable_metadata()->set_name(name);
    auto created = store_->create(api::share(ns));
    assert(created.is_ok());
  }
  options.address = "127.0.0.1";
  options.port = 0;
  server_ = std::make_unique<ApiServer>(loop_, *store_, options);
  Status s = server_->start();
  assert(s.is_ok());
  (void)s;
  port_ = server_->port();
  thread_ = std::thread([this] { loop_.run(); });
}

TestServer::~TestServer() {
  on_loop([this] { server_->stop(); });
  loop_.stop();
  thread_.join();
  server_.reset();
  store_.reset();
  std::error_code ec;
  if (!data_dir_.empty()) std::filesystem::remove_all(data_dir_, ec);
}

HttpResult http_request(uint16_t port, const std::string& method, const std::string& target,
                        const std::string& body, const std::string& content_type,
                        const std::vector<std::pair<std::string, std::string>>& headers) {
  HttpResult result;
  int fd = connect_loopback(port);
  if (fd < 0) return result;
  std::string req = method + " " + target + " HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n";
  for (const auto& [k, v] : headers) req += k + ": " + v + "\r\n";
  if (!body.empty() || method == "POST" || method == "PUT" || method == "PATCH") {
    req += "Content-Type: " + content_type + "\r\nContent-Length: " +
           std::to_string(body.size()) + "\r\n";
  }
  req += "\r\n" + body;
  write_all(fd, req);
  std::string raw;
  auto deadline = Clock::now() + std::chrono::seconds(10);
  while (Clock::now() < deadline && read_some(fd, &raw, std::chrono::milliseconds(200))) {
  }
  ::close(fd);
  size_t head_end = raw.find("\r\n\r\n");
  if (head_end == std::string::npos || raw.size() < 12) return result;
  result.status = std::stoi(raw.substr(9, 3));
  std::string head = raw.substr(0, head_end);
  std::string lower = head;
  for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  size_t ct = lower.find("content-type: ");
  if (ct != std::string::npos) {
    result.content_type = head.substr(ct + 14, head.find("\r\n", ct) - ct - 14);
  }
  result.body = raw.substr(head_end + 4);
  if (lower.find("transfer-encoding: chunked") != std::string::npos) {
    result.body = dechunk(result.body);
  }
  return result;
}

StreamClient::StreamClient(uint16_t port, const std::string& target) {
  fd_ = connect_loopback(port);
  if (fd_ >= 0) write_all(fd_, "GET " + target + " HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
}

StreamClient::~StreamClient() {
  if (fd_ >= 0) ::close(fd_);
}

bool StreamClient::read_until(const std::function<bool(const std::string&)>& done,
                              std::chrono::milliseconds timeout) {
  auto deadline = Clock::now() + timeout;
  while (!done(received_)) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    if (left.count() <= 0 || fd_ < 0) return false;
    if (!read_some(fd_, &received_, left)) return done(received_);
  }
  return true;
}

Subprocess::Subprocess(const std::vector<std::string>& argv, const std::vector<std::string>& env) {
  int out[2], err[2];
  if (::pipe2(out, O_CLOEXEC) != 0 || ::pipe2(err, O_CLOEXEC) != 0) return;
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, out[1], 1);
  posix_spawn_file_actions_adddup2(&fa, err[1], 2);
  std::vector<char*> args;
  for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  std::vector<std::string> env_strings;
  for (char** e = environ; *e != nullptr; ++e) env_strings.emplace_back(*e);
  for (const std::string& e : env) env_strings.push_back(e);
  std::vector<char*> envp;
  for (const std::string& e : env_strings) envp.push_back(const_cast<char*>(e.c_str()));
  envp.push_back(nullptr);
  pid_t pid = -1;
  if (posix_spawnp(&pid, args[0], &fa, nullptr, args.data(), envp.data()) == 0) pid_ = pid;
  posix_spawn_file_actions_destroy(&fa);
  ::close(out[1]);
  ::close(err[1]);
  out_fd_ = out[0];
  err_fd_ = err[0];
}

Subprocess::~Subprocess() {
  kill();
  if (out_fd_ >= 0) ::close(out_fd_);
  if (err_fd_ >= 0) ::close(err_fd_);
}

bool Subprocess::pump(std::chrono::milliseconds max_wait) {
  pollfd p[2] = {{out_fd_, POLLIN, 0}, {err_fd_, POLLIN, 0}};
  int r = ::poll(p, 2, static_cast<int>(max_wait.count()));
  bool open = false;
  char buf[65536];
  for (int i = 0; i < 2; ++i) {
    if (p[i].fd < 0) continue;
    if (r > 0 && (p[i].revents & (POLLIN | POLLHUP)) != 0) {
      ssize_t n = ::read(p[i].fd, buf, sizeof(buf));
      if (n > 0) {
        (i == 0 ? out_ : err_).append(buf, static_cast<size_t>(n));
        open = true;
      } else {
        ::close(p[i].fd);
        (i == 0 ? out_fd_ : err_fd_) = -1;
      }
    } else {
      open = true;
    }
  }
  return open;
}

bool Subprocess::read_until(const std::function<bool(const std::string&)>& done,
                            std::chrono::milliseconds timeout) {
  auto deadline = Clock::now() + timeout;
  while (!done(out_)) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    if (left.count() <= 0 || (out_fd_ < 0 && err_fd_ < 0)) return done(out_);
    pump(std::min(left, std::chrono::milliseconds(100)));
  }
  return true;
}

bool Subprocess::read_err_until(const std::function<bool(const std::string&)>& done,
                                std::chrono::milliseconds timeout) {
  auto deadline = Clock::now() + timeout;
  while (!done(err_)) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    if (left.count() <= 0 || (out_fd_ < 0 && err_fd_ < 0)) return done(err_);
    pump(std::min(left, std::chrono::milliseconds(100)));
  }
  return true;
}

void Subprocess::signal(int sig) {
  if (pid_ > 0 && !exited_) ::kill(pid_, sig);
}

int Subprocess::wait(std::chrono::milliseconds timeout) {
  auto deadline = Clock::now() + timeout;
  while ((out_fd_ >= 0 || err_fd_ >= 0) && Clock::now() < deadline) {
    pump(std::chrono::milliseconds(100));
  }
  if (out_fd_ >= 0 || err_fd_ >= 0) {
    kill();
    return -1;
  }
  if (pid_ > 0 && !exited_) {
    int status = 0;
    ::waitpid(pid_, &status, 0);
    exited_ = true;
    exit_code_ = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  }
  return exit_code_;
}

void Subprocess::kill() {
  if (pid_ > 0 && !exited_) {
    ::kill(pid_, SIGKILL);
    int status = 0;
    ::waitpid(pid_, &status, 0);
    exited_ = true;
    exit_code_ = -1;
  }
}

}  // namespace flotilla::apiserver::testing
