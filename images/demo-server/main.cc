// flotilla/demo-server: a tiny static HTTP server for demos and live tests.
//   GET /         -> 200, body "<pod name>\n" (env POD_NAME, else the hostname)
//   GET /healthz  -> 200 "ok\n"
//   anything else -> 404
// Listens on env PORT (default 8080), HTTP/1.1 with keep-alive, one thread per
// connection. With env ECHO_PORT set it also echoes bytes back on that TCP
// port. On TERM/INT (it runs as PID 1, which ignores unhandled signals) it
// shuts down gracefully, as a server behind a Service should: it keeps
// accepting for env SHUTDOWN_DELAY_MS (default 0: the time for the Service's
// proxies to stop sending it new connections, like a preStop sleep), answering
// every request from then on with "Connection: close"; then it stops
// accepting, closes idle keep-alive connections, lets in-flight requests
// finish and exits 0 when no connection is left.
// Built with: g++ -std=c++20 -static -O2 -pthread main.cc -o demo-server
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <map>
#include <mutex>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>

namespace {

std::string g_name;

// Graceful shutdown state. Every HTTP connection is registered with whether it
// is idle (between requests, nothing buffered) so the shutdown can close
// exactly those; the shutdown thread waits for the set to empty.
std::atomic<bool> g_draining{false};
std::mutex g_mu;
std::condition_variable g_cv;
std::map<int, bool> g_http_conns;  // fd -> idle

void set_idle(int fd, bool idle) {
  std::lock_guard<std::mutex> lock(g_mu);
  g_http_conns[fd] = idle;
}

// Half-closes, then waits (up to 1 s) for the peer's FIN before closing, so a
// response is never cut short by a RST for bytes the peer sent meanwhile
// (nginx's lingering close).
void close_gracefully(int fd) {
  ::shutdown(fd, SHUT_WR);
  timeval tv{1, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  char sink[4096];
  for (;;) {
    ssize_t n = ::recv(fd, sink, sizeof sink, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
  }
  ::close(fd);
}

void end_http(int fd, bool graceful) {
  {
    std::lock_guard<std::mutex> lock(g_mu);
    g_http_conns.erase(fd);
  }
  if (graceful) {
    close_gracefully(fd);
  } else {
    ::close(fd);
  }
  g_cv.notify_all();
}

bool write_all(int fd, const std::string& s) {
  size_t off = 0;
  while (off < s.size()) {
    ssize_t n = ::send(fd, s.data() + off, s.size() - off, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    off += static_cast<size_t>(n);
  }
  return true;
}

std::string response(int code, const char* reason, const std::string& body, bool keep_alive) {
  std::string r = "HTTP/1.1 " + std::to_string(code) + " " + reason + "\r\n";
  r += "Content-Type: text/plain\r\nContent-Length: " + std::to_string(body.size()) + "\r\n";
  r += keep_alive ? "Connection: keep-alive\r\n\r\n" : "Connection: close\r\n\r\n";
  return r + body;
}

bool has_token(const std::string& headers, const char* token) {
  std::string lower;
  lower.reserve(headers.size());
  for (char c : headers) lower += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return lower.find(token) != std::string::npos;
}

void serve_http(int fd) {
  std::string buf;
  char chunk[4096];
  for (;;) {
    size_t end;
    while ((end = buf.find("\r\n\r\n")) == std::string::npos) {
      if (buf.size() > 64 * 1024) return end_http(fd, false);
      set_idle(fd, buf.empty());
      ssize_t n = ::recv(fd, chunk, sizeof chunk, 0);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return end_http(fd, false);
      set_idle(fd, false);
      buf.append(chunk, static_cast<size_t>(n));
    }
    std::string head = buf.substr(0, end);
    buf.erase(0, end + 4);  // requests with bodies are not expected
    size_t sp1 = head.find(' ');
    size_t sp2 = sp1 == std::string::npos ? sp1 : head.find(' ', sp1 + 1);
    std::string method = sp1 == std::string::npos ? "" : head.substr(0, sp1);
    std::string path = sp2 == std::string::npos ? "" : head.substr(sp1 + 1, sp2 - sp1 - 1);
    bool http10 = head.find("HTTP/1.0") != std::string::npos;
    // Draining: this is the connection's last request.
    bool keep_alive = !g_draining.load() && (http10 ? has_token(head, "connection: keep-alive")
                                                    : !has_token(head, "connection: close"));
    std::string out;
    if (method != "GET" && method != "HEAD") {
      out = response(405, "Method Not Allowed", "method not allowed\n", keep_alive);
    } else if (path == "/" || path.rfind("/?", 0) == 0) {
      out = response(200, "OK", g_name + "\n", keep_alive);
    } else if (path == "/healthz") {
      out = response(200, "OK", "ok\n", keep_alive);
    } else {
      out = response(404, "Not Found", "not found\n", keep_alive);
    }
    if (!write_all(fd, out)) return end_http(fd, false);
    if (!keep_alive) return end_http(fd, true);
  }
}

void serve_echo(int fd) {
  char chunk[16384];
  for (;;) {
    ssize_t n = ::recv(fd, chunk, sizeof chunk, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0 || !write_all(fd, std::string(chunk, static_cast<size_t>(n)))) break;
  }
  ::close(fd);
}

int listen_on(int port) {
  int fd = ::socket(AF_INET6, SOCK_STREAM, 0);
  bool v6 = fd >= 0;
  if (!v6) fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return -1;
  int one = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  int rc;
  if (v6) {
    int zero = 0;
    ::setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof zero);
    sockaddr_in6 a{};
    a.sin6_family = AF_INET6;
    a.sin6_addr = in6addr_any;
    a.sin6_port = htons(static_cast<uint16_t>(port));
    rc = ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  } else {
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_ANY);
    a.sin_port = htons(static_cast<uint16_t>(port));
    rc = ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  }
  if (rc != 0 || ::listen(fd, 1024) != 0) return -1;
  return fd;
}

void accept_loop(int lfd, void (*serve)(int)) {
  for (;;) {
    int fd = ::accept(lfd, nullptr, nullptr);
    if (fd < 0) {
      if (g_draining.load()) return;  // the shutdown closed the listener
      if (errno == EINTR || errno == ECONNABORTED || errno == EMFILE) continue;
      std::perror("accept");
      std::exit(1);
    }
    int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (serve == serve_http) set_idle(fd, true);
    std::thread(serve, fd).detach();
  }
}

int port_from_env(const char* name, int fallback) {
  const char* v = std::getenv(name);
  if (v == nullptr || *v == '\0') return fallback;
  int p = std::atoi(v);
  if (p <= 0 || p > 65535) {
    std::fprintf(stderr, "demo-server: bad %s=%s\n", name, v);
    std::exit(2);
  }
  return p;
}

void on_signal(int) {}  // never runs: the signals are blocked and taken by sigwait

// The shutdown, on its own thread once TERM or INT arrives.
[[noreturn]] void shut_down(int lfd, int delay_ms) {
  g_draining = true;
  std::fprintf(stderr, "demo-server %s: terminating, accepting for %d ms more\n", g_name.c_str(),
               delay_ms);
  if (delay_ms > 0) std::this_thread::sleep_for(std::chrono::milliseconds(delay_ms));
  ::shutdown(lfd, SHUT_RDWR);  // wakes accept() with an error: stop accepting
  std::unique_lock<std::mutex> lock(g_mu);
  for (auto& [fd, idle] : g_http_conns) {
    if (idle) ::shutdown(fd, SHUT_RD);  // its recv() returns 0 and the thread ends it
  }
  g_cv.wait(lock, [] { return g_http_conns.empty(); });
  std::fprintf(stderr, "demo-server %s: every connection finished, exiting\n", g_name.c_str());
  std::fflush(stderr);
  _exit(0);
}

}  // namespace

int main() {
  // TERM/INT are blocked in every thread and taken by sigwait below; a handler
  // is installed too so that, as PID 1, the signals are not discarded.
  struct sigaction sa {};
  sa.sa_handler = on_signal;
  sigaction(SIGTERM, &sa, nullptr);
  sigaction(SIGINT, &sa, nullptr);
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  signal(SIGPIPE, SIG_IGN);

  if (const char* n = std::getenv("POD_NAME"); n != nullptr && *n != '\0') {
    g_name = n;
  } else {
    char host[256] = {};
    ::gethostname(host, sizeof host - 1);
    g_name = host;
  }
  const int port = port_from_env("PORT", 8080);
  const int echo_port = port_from_env("ECHO_PORT", 0);
  const char* delay_env = std::getenv("SHUTDOWN_DELAY_MS");
  const int delay_ms = delay_env != nullptr ? std::max(0, std::atoi(delay_env)) : 0;
  int lfd = listen_on(port);
  if (lfd < 0) {
    std::fprintf(stderr, "demo-server: cannot listen on port %d: %s\n", port, std::strerror(errno));
    return 1;
  }
  if (echo_port != 0) {
    int efd = listen_on(echo_port);
    if (efd < 0) {
      std::fprintf(stderr, "demo-server: cannot listen on echo port %d: %s\n", echo_port,
                   std::strerror(errno));
      return 1;
    }
    std::thread(accept_loop, efd, serve_echo).detach();
  }
  std::fprintf(stderr, "demo-server %s listening on %d\n", g_name.c_str(), port);
  std::thread(accept_loop, lfd, serve_http).detach();
  int sig = 0;
  while (sigwait(&stop_signals, &sig) != 0) {
  }
  shut_down(lfd, delay_ms);
}
