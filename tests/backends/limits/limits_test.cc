// Limits with clear errors, as a client sees them: the API server over real
// loopback sockets refuses annotations over 256 KiB (422, field
// metadata.annotations), bodies over 3 MiB (413), a long URL (414), long
// headers (431) and a watch over its cap (429 with Retry-After and a Status
// body); the trace importers' line reader refuses a line over 1 MiB naming
// file and line. Waits have deadlines; nothing sleeps a fixed time.
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <nlohmann/json.hpp>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <thread>

#include "backends/apiserver/api_server.h"
#include "backends/apiserver/splitmix_random.h"
#include "backends/live/asio_event_loop.h"
#include "core/api/validation.h"
#include "core/store/in_memory_store.h"
#include "scenarios/replay/csv.h"

namespace flotilla {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

// An API server over a validating in-memory store, its loop on a thread.
class Server {
 public:
  explicit Server(apiserver::ApiServerOptions options) {
    store::StoreOptions so;
    so.enforce_namespaces = true;
    so.validator = [](const google::protobuf::Message& obj, const google::protobuf::Message* old) {
      return api::invalid_status(obj, old ? api::validate_update(*old, obj) : api::validate(obj));
    };
    store_ = std::make_unique<store::InMemoryStore>(loop_, random_, so);
    api::Namespace ns;
    ns.mutable_metadata()->set_name("default");
    EXPECT_TRUE(store_->create(api::share(ns)).is_ok());
    options.address = "127.0.0.1";
    options.port = 0;
    server_ = std::make_unique<apiserver::ApiServer>(loop_, *store_, options);
    EXPECT_TRUE(server_->start().is_ok());
    port_ = server_->port();
    thread_ = std::thread([this] { loop_.run(); });
  }
  ~Server() {
    loop_.post([this] {
      server_->stop();
      loop_.stop();
    });
    thread_.join();
  }
  uint16_t port() const { return port_; }

 private:
  live::AsioEventLoop loop_;
  apiserver::SplitMix64Stream random_{1};
  std::unique_ptr<store::InMemoryStore> store_;
  std::unique_ptr<apiserver::ApiServer> server_;
  uint16_t port_ = 0;
  std::thread thread_;
};

// A raw loopback connection: sends bytes, reads the reply's head and body.
class Conn {
 public:
  explicit Conn(uint16_t port) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons(port);
    timeval tv{1, 0};
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    connected_ = ::connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0;
  }
  ~Conn() { ::close(fd_); }
  bool connected() const { return connected_; }
  // Sends what it can (the server may answer and stop reading early).
  void send(const std::string& data) {
    size_t off = 0;
    while (off < data.size()) {
      ssize_t n = ::send(fd_, data.data() + off, data.size() - off, MSG_NOSIGNAL);
      if (n <= 0) return;
      off += static_cast<size_t>(n);
    }
  }
  // Reads until `done(received)` or the deadline or the end of the stream.
  bool read_until(const std::function<bool(const std::string&)>& done,
                  std::chrono::milliseconds timeout = 20s) {
    auto deadline = Clock::now() + timeout;
    char buf[65536];
    while (!done(received_)) {
      if (Clock::now() >= deadline) return false;
      ssize_t n = ::recv(fd_, buf, sizeof(buf), 0);
      if (n == 0) return done(received_);
      if (n > 0) received_.append(buf, static_cast<size_t>(n));
    }
    return true;
  }
  // The status code of the reply's first line (0: none yet).
  int status() const {
    return received_.rfind("HTTP/1.", 0) == 0 && received_.size() > 12
               ? std::atoi(received_.c_str() + 9)
               : 0;
  }
  std::string head() const { return received_.substr(0, received_.find("\r\n\r\n")); }
  std::string body() const {
    size_t at = received_.find("\r\n\r\n");
    return at == std::string::npos ? "" : received_.substr(at + 4);
  }
  // Sends one request and reads a whole Content-Length reply.
  void exchange(const std::string& request) {
    send(request);
    read_until([](const std::string& r) {
      size_t head = r.find("\r\n\r\n");
      if (head == std::string::npos) return false;
      size_t cl = r.find("Content-Length: ");
      if (cl == std::string::npos || cl > head) return true;
      return r.size() >= head + 4 + std::stoul(r.substr(cl + 16));
    });
  }
  const std::string& received() const { return received_; }

 private:
  int fd_ = -1;
  bool connected_ = false;
  std::string received_;
};

std::string request(const std::string& method, const std::string& target,
                    const std::string& body = "", const std::string& extra_headers = "") {
  return method + " " + target + " HTTP/1.1\r\nHost: 127.0.0.1\r\n" + extra_headers +
         "Content-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) +
         "\r\n\r\n" + body;
}

std::string pod_with_annotation(size_t value_bytes) {
  json pod = {{"apiVersion", "v1"},
              {"kind", "Pod"},
              {"metadata", {{"name", "big"}, {"annotations", {{"note", std::string(value_bytes, 'x')}}}}},
              {"spec", {{"containers", {{{"name", "c"}, {"image", "busybox"}}}}}}};
  return pod.dump();
}

TEST(ApiLimits, AnnotationsOver256KiBAreRefusedWith422NamingTheField) {
  Server server({});
  Conn c(server.port());
  ASSERT_TRUE(c.connected());
  c.exchange(request("POST", "/api/v1/namespaces/default/pods", pod_with_annotation(300 * 1024)));
  ASSERT_EQ(c.status(), 422) << c.head();
  json st = json::parse(c.body());
  EXPECT_EQ(st["kind"], "Status");
  EXPECT_EQ(st["reason"], "Invalid");
  EXPECT_EQ(st["code"], 422);
  std::string message = st["message"];
  EXPECT_NE(message.find("metadata.annotations"), std::string::npos) << message;
  EXPECT_NE(message.find("262144"), std::string::npos) << message;
  ASSERT_EQ(st["details"]["causes"].size(), 1u);
  EXPECT_EQ(st["details"]["causes"][0]["field"], "metadata.annotations");

  // Just under the limit (key "note" + value) is accepted.
  Conn ok(server.port());
  ok.exchange(request("POST", "/api/v1/namespaces/default/pods",
                      pod_with_annotation(256 * 1024 - 4)));
  EXPECT_EQ(ok.status(), 201) << ok.body().substr(0, 300);
}

TEST(ApiLimits, BodiesOver3MiBGet413) {
  Server server({});
  Conn c(server.port());
  c.exchange(request("POST", "/api/v1/namespaces/default/pods",
                     pod_with_annotation(3 * 1024 * 1024 + 10)));
  ASSERT_EQ(c.status(), 413) << c.head();
  json st = json::parse(c.body());
  EXPECT_EQ(st["code"], 413);
  EXPECT_EQ(st["reason"], "RequestEntityTooLarge");
  EXPECT_NE(st["message"].get<std::string>().find("3145728"), std::string::npos);
}

TEST(ApiLimits, LongUrlGets414AndLongHeadersGet431) {
  Server server({});
  {
    // Over max_url_bytes (32 KiB) but within the header limit.
    Conn c(server.port());
    c.exchange(request("GET", "/api/v1/namespaces/default/pods?labelSelector=" +
                                  std::string(40 * 1024, 'a')));
    ASSERT_EQ(c.status(), 414) << c.head();
    json st = json::parse(c.body());
    EXPECT_EQ(st["code"], 414);
    EXPECT_NE(st["message"].get<std::string>().find("URI Too Long"), std::string::npos);
  }
  {
    // A request line over the whole header limit (64 KiB).
    Conn c(server.port());
    c.exchange(request("GET", "/api/v1/pods?x=" + std::string(70 * 1024, 'a')));
    EXPECT_EQ(c.status(), 414) << c.head();
  }
  {
    // Many headers, a short request line.
    std::string headers;
    for (int i = 0; i < 100; ++i) headers += "X-Pad-" + std::to_string(i) + ": " + std::string(1000, 'p') + "\r\n";
    Conn c(server.port());
    c.exchange(request("GET", "/api/v1/pods", "", headers));
    ASSERT_EQ(c.status(), 431) << c.head();
    json st = json::parse(c.body());
    EXPECT_EQ(st["code"], 431);
    EXPECT_NE(st["message"].get<std::string>().find("65536"), std::string::npos);
  }
  {
    // The server still serves ordinary requests.
    Conn c(server.port());
    c.exchange(request("GET", "/api/v1/namespaces/default/pods"));
    EXPECT_EQ(c.status(), 200);
  }
}

TEST(ApiLimits, WatchesOverTheCapGet429WithRetryAfter) {
  apiserver::ApiServerOptions o;
  o.max_watches = 2;
  Server server(o);
  auto open_watch = [&](Conn& c) {
    c.send(request("GET", "/api/v1/namespaces/default/pods?watch=true"));
    return c.read_until([](const std::string& r) { return r.find("\r\n\r\n") != std::string::npos; });
  };
  auto w1 = std::make_unique<Conn>(server.port());
  Conn w2(server.port());
  ASSERT_TRUE(open_watch(*w1));
  ASSERT_TRUE(open_watch(w2));
  EXPECT_EQ(w1->status(), 200);
  EXPECT_EQ(w2.status(), 200);

  Conn w3(server.port());
  w3.exchange(request("GET", "/api/v1/namespaces/default/pods?watch=true"));
  ASSERT_EQ(w3.status(), 429) << w3.head();
  EXPECT_NE(w3.head().find("Retry-After: 1"), std::string::npos) << w3.head();
  json st = json::parse(w3.body());
  EXPECT_EQ(st["kind"], "Status");
  EXPECT_EQ(st["code"], 429);
  EXPECT_EQ(st["reason"], "TooManyRequests");
  EXPECT_NE(st["message"].get<std::string>().find("limit (--max-watches) is 2"),
            std::string::npos);
  // Lists are not watches: still served.
  Conn list(server.port());
  list.exchange(request("GET", "/api/v1/namespaces/default/pods"));
  EXPECT_EQ(list.status(), 200);

  // A watch that ends frees its slot.
  w1.reset();
  bool reopened = false;
  auto deadline = Clock::now() + 20s;
  while (!reopened && Clock::now() < deadline) {
    Conn w4(server.port());
    ASSERT_TRUE(open_watch(w4));
    reopened = w4.status() == 200;
  }
  EXPECT_TRUE(reopened);
}

TEST(TraceLineLimit, ALineOver1MiBIsRefusedNamingFileAndLine) {
  namespace fs = std::filesystem;
  fs::path path = fs::temp_directory_path() / ("flotilla-limits-" + std::to_string(::getpid()) + ".csv");
  {
    std::ofstream out(path);
    out << "a,b\n1,2\n" << std::string(replay::LineReader::kMaxLineBytes + 1, 'x') << "\n3,4\n";
  }
  auto reader = replay::LineReader::open(path.string());
  ASSERT_TRUE(reader.is_ok());
  auto l1 = (*reader)->next();
  ASSERT_TRUE(l1.is_ok() && l1->has_value());
  auto l2 = (*reader)->next();
  ASSERT_TRUE(l2.is_ok() && l2->has_value());
  EXPECT_EQ(**l2, "1,2");
  auto l3 = (*reader)->next();
  ASSERT_FALSE(l3.is_ok());
  EXPECT_EQ(l3.status().code(), StatusCode::kBadRequest);
  EXPECT_NE(l3.status().message().find(path.filename().string() + ":3: line longer than 1048576"),
            std::string::npos)
      << l3.status().message();

  // A line of exactly the limit reads.
  {
    std::ofstream out(path);
    out << std::string(replay::LineReader::kMaxLineBytes, 'y') << "\n";
  }
  auto again = replay::LineReader::open(path.string());
  ASSERT_TRUE(again.is_ok());
  auto line = (*again)->next();
  ASSERT_TRUE(line.is_ok() && line->has_value()) << line.status().message();
  EXPECT_EQ((*line)->size(), replay::LineReader::kMaxLineBytes);
  fs::remove(path);
}

}  // namespace
}  // namespace flotilla
