// Loopback servers for the live network tests, on the test's AsioEventLoop:
// an HTTP responder that answers its name (or a chosen status) and counts the
// requests it served, a server that accepts and never answers, and a listener
// whose accept queue is full so new connects hang (a blackhole we own). Plus a
// blocking HTTP client to run on a helper thread while the loop runs.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read_until.hpp>
#include <boost/asio/streambuf.hpp>
#include <boost/asio/write.hpp>

#include <cerrno>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

namespace flotilla::live::testing {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;

// Answers every request "HTTP/1.1 <status>" with body "<name>\n", then closes.
class NameServer {
 public:
  NameServer(asio::io_context& io, std::string name, int status = 200)
      : acceptor_(io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0)),
        name_(std::move(name)), status_(status) {
    port_ = acceptor_.local_endpoint().port();
    accept();
  }
  ~NameServer() { close(); }
  int port() const { return port_; }
  int served() const { return *served_; }
  const std::string& name() const { return name_; }
  // Stops accepting: later connects are refused.
  void close() {
    boost::system::error_code ec;
    acceptor_.close(ec);
  }

 private:
  struct Session {
    explicit Session(tcp::socket s) : socket(std::move(s)) {}
    tcp::socket socket;
    asio::streambuf in;
    std::string out;
  };
  void accept() {
    acceptor_.async_accept([this, served = served_](const boost::system::error_code& e,
                                                     tcp::socket s) {
      if (e) return;
      auto session = std::make_shared<Session>(std::move(s));
      asio::async_read_until(
          session->socket, session->in, "\r\n\r\n",
          [this, session, served](const boost::system::error_code& re, size_t) {
            if (re) return;  // a TCP check: connected and closed without a request
            ++*served;
            const std::string body = name_ + "\n";
            session->out = "HTTP/1.1 " + std::to_string(status_) + " X\r\nContent-Length: " +
                           std::to_string(body.size()) + "\r\nConnection: close\r\n\r\n" + body;
            asio::async_write(session->socket, asio::buffer(session->out),
                              [session](const boost::system::error_code&, size_t) {
                                boost::system::error_code ignored;
                                session->socket.shutdown(tcp::socket::shutdown_both, ignored);
                              });
          });
      accept();
    });
  }
  tcp::acceptor acceptor_;
  std::string name_;
  int status_;
  int port_ = 0;
  std::shared_ptr<int> served_ = std::make_shared<int>(0);
};

// Accepts connections and never writes a byte (HTTP probes time out).
class SilentServer {
 public:
  explicit SilentServer(asio::io_context& io)
      : acceptor_(io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0)) {
    accept();
  }
  int port() const { return acceptor_.local_endpoint().port(); }

 private:
  void accept() {
    acceptor_.async_accept([this](const boost::system::error_code& e, tcp::socket s) {
      if (e) return;
      held_.push_back(std::move(s));
      accept();
    });
  }
  tcp::acceptor acceptor_;
  std::vector<tcp::socket> held_;
};

// A listener with backlog 0 that never accepts, its queue filled by our own
// connections: the kernel then drops further SYNs, so a connect hangs until
// its timeout. Plain POSIX sockets, nothing on the loop.
class FullBacklogListener {
 public:
  FullBacklogListener() {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a);
    ::listen(fd_, 0);
    socklen_t len = sizeof a;
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
    // Fill the queue: connect until one does not complete within 300 ms.
    for (int i = 0; i < 16; ++i) {
      int c = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
      fillers_.push_back(c);
      int r = ::connect(c, reinterpret_cast<sockaddr*>(&a), sizeof a);
      if (r == 0) continue;
      if (errno != EINPROGRESS) break;
      pollfd p{c, POLLOUT, 0};
      if (::poll(&p, 1, 300) == 0) {
        full_ = true;
        break;
      }
    }
  }
  ~FullBacklogListener() {
    for (int c : fillers_) ::close(c);
    ::close(fd_);
  }
  int port() const { return port_; }
  bool full() const { return full_; }

 private:
  int fd_ = -1;
  int port_ = 0;
  bool full_ = false;
  std::vector<int> fillers_;
};

// Lets a test thread unblock a helper thread stuck in blocking socket calls:
// the helper registers its sockets (register_client_socket), and cancel()
// shuts them all down (not close: the fds stay owned by the helper), which
// wakes any blocked connect/read/write with an error or EOF. A socket
// registered after cancel() is shut down at once.
class ClientCanceller {
 public:
  void add(int fd) {
    std::lock_guard<std::mutex> lock(mu_);
    if (cancelled_) {
      ::shutdown(fd, SHUT_RDWR);
      return;
    }
    fds_.push_back(fd);
  }
  void remove(int fd) {
    std::lock_guard<std::mutex> lock(mu_);
    std::erase(fds_, fd);
  }
  void cancel() {
    std::lock_guard<std::mutex> lock(mu_);
    cancelled_ = true;
    for (int fd : fds_) ::shutdown(fd, SHUT_RDWR);
  }

 private:
  std::mutex mu_;
  bool cancelled_ = false;
  std::vector<int> fds_;
};

// The canceller of the helper thread this code runs on (set by the test's
// off_loop), or null.
inline thread_local ClientCanceller* current_canceller = nullptr;

// Registers an open socket with the current thread's canceller until the
// guard goes out of scope (declare it after the socket, so it unregisters
// before the socket closes).
class CancelGuard {
 public:
  explicit CancelGuard(tcp::socket& s) : canceller_(current_canceller) {
    if (!s.is_open()) s.open(tcp::v4());
    fd_ = s.native_handle();
    if (canceller_ != nullptr) canceller_->add(fd_);
  }
  ~CancelGuard() {
    if (canceller_ != nullptr) canceller_->remove(fd_);
  }
  CancelGuard(const CancelGuard&) = delete;
  CancelGuard& operator=(const CancelGuard&) = delete;

 private:
  ClientCanceller* canceller_;
  int fd_ = -1;
};

// A blocking GET of 127.0.0.1:port/ (for a helper thread): the response body,
// or nullopt when the connection failed or closed without a response.
inline std::optional<std::string> http_get(int port) {
  try {
    asio::io_context io;
    tcp::socket s(io);
    CancelGuard guard(s);
    s.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), static_cast<unsigned short>(port)));
    const std::string req = "GET / HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n";
    asio::write(s, asio::buffer(req));
    std::string all;
    char buf[4096];
    boost::system::error_code ec;
    for (;;) {
      size_t n = s.read_some(asio::buffer(buf), ec);
      all.append(buf, n);
      if (ec) break;
    }
    auto body = all.find("\r\n\r\n");
    if (!all.starts_with("HTTP/1.1 200") || body == std::string::npos) return std::nullopt;
    std::string out = all.substr(body + 4);
    while (!out.empty() && out.back() == '\n') out.pop_back();
    return out;
  } catch (const std::exception&) {
    return std::nullopt;
  }
}

}  // namespace flotilla::live::testing
