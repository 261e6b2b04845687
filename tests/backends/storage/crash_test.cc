// THE crash test: the real `flotilla serve` on a temporary data directory
// takes 10,000 pod creations over HTTP from several client threads and is
// SIGKILLed at 50 moments drawn from a seeded RNG, then restarted on the same
// directory. After every restart every acknowledged (2xx) write must be
// present exactly as acknowledged (uid, resourceVersion, content), and any
// other object must be one the test tried to write, complete and valid.
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <fstream>
#include <map>
#include <mutex>
#include <optional>
#include <random>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "tests/backends/storage/storage_test_util.h"

namespace flotilla::storage {
namespace {

namespace beast = boost::beast;
namespace http = beast::http;
namespace net = boost::asio;
using tcp = net::ip::tcp;
using Clock = std::chrono::steady_clock;
using json = nlohmann::json;

constexpr int kWrites = 10000;
constexpr int kKills = 50;
constexpr int kClients = 8;
constexpr uint64_t kSeed = 20261129;

std::string read_text(const std::string& path) {
  std::ifstream f(path);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

// The content the test writes for write number i: checkable after recovery.
std::string payload_for(int i) {
  std::string s = "write-" + std::to_string(i) + "-";
  uint64_t x = static_cast<uint64_t>(i) * 0x9e3779b97f4a7c15ULL + 1;
  while (s.size() < 160) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    s += "abcdefghijklmnopqrstuvwxyz0123456789"[x % 36];
  }
  return s;
}
std::string name_for(int i) { return "crash-" + std::to_string(i); }

std::string pod_json(int i) {
  json pod = {{"apiVersion", "v1"},
              {"kind", "Pod"},
              {"metadata",
               {{"name", name_for(i)},
                {"labels", {{"test", "crash"}, {"index", std::to_string(i)}}},
                {"annotations", {{"payload", payload_for(i)}}}}},
              {"spec", {{"containers", {{{"name", "main"}, {"image", "nginx:1.25"}}}}}}};
  return pod.dump();
}

// A keep-alive HTTP/1.1 connection to 127.0.0.1:port.
class Client {
 public:
  explicit Client(uint16_t port) : port_(port) {}
  // Status code, or 0 when the connection failed (server gone).
  int request(http::verb verb, const std::string& target, const std::string& body,
              std::string* response_body) {
    try {
      if (!stream_) {
        stream_.emplace(io_);
        stream_->connect(tcp::endpoint(net::ip::make_address("127.0.0.1"), port_));
      }
      http::request<http::string_body> req(verb, target, 11);
      req.set(http::field::host, "127.0.0.1");
      req.set(http::field::content_type, "application/json");
      req.keep_alive(true);
      req.body() = body;
      req.prepare_payload();
      http::write(*stream_, req);
      beast::flat_buffer buffer;
      http::response_parser<http::string_body> parser;
      parser.body_limit(256 * 1024 * 1024);
      http::read(*stream_, buffer, parser);
      if (response_body) *response_body = parser.get().body();
      if (!parser.get().keep_alive()) stream_.reset();
      return parser.get().result_int();
    } catch (const std::exception&) {
      stream_.reset();
      return 0;
    }
  }

 private:
  uint16_t port_;
  net::io_context io_;
  std::optional<beast::tcp_stream> stream_;
};

// One run of `flotilla serve` on the data directory; stderr to a file.
class Server {
 public:
  Server(const std::string& dir, const std::string& log_path, const std::vector<std::string>& extra)
      : log_path_(log_path) {
    std::vector<std::string> args = {FLOTILLA_BIN, "serve", "--listen", "127.0.0.1:0",
                                     "--data-dir", dir, "--snapshot-every", "500"};
    args.insert(args.end(), extra.begin(), extra.end());
    pid_ = ::fork();
    if (pid_ == 0) {
      int err = ::open(log_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
      int null = ::open("/dev/null", O_RDWR);
      ::dup2(null, 0);
      ::dup2(null, 1);
      ::dup2(err, 2);
      std::vector<char*> argv;
      for (auto& a : args) argv.push_back(a.data());
      argv.push_back(nullptr);
      ::execv(argv[0], argv.data());
      ::_exit(127);
    }
  }
  ~Server() { kill(); }

  // The port once the server says where it listens and answers /version.
  std::optional<uint16_t> wait_ready(std::chrono::seconds deadline) {
    static const std::regex kUrl("Kubernetes API on http://127\\.0\\.0\\.1:([0-9]+)");
    auto end = Clock::now() + deadline;
    while (Clock::now() < end) {
      std::smatch m;
      std::string text = read_text(log_path_);
      if (std::regex_search(text, m, kUrl)) {
        uint16_t port = static_cast<uint16_t>(std::stoi(m[1]));
        Client c(port);
        if (c.request(http::verb::get, "/version", "", nullptr) == 200) return port;
      }
      int status = 0;
      if (pid_ > 0 && ::waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        return std::nullopt;
      }
      std::this_thread::yield();
    }
    return std::nullopt;
  }

  void kill() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGKILL);
    int status = 0;
    ::waitpid(pid_, &status, 0);
    pid_ = -1;
  }
  std::string log() const { return read_text(log_path_); }

 private:
  std::string log_path_;
  pid_t pid_ = -1;
};

// Probes whether this build's serve has --backend (the bare store is `none`).
std::vector<std::string> bare_store_flags() {
  std::string out = "/tmp/flotilla-crash-help-" + std::to_string(::getpid());
  std::string cmd = std::string(FLOTILLA_BIN) + " serve --help > " + out + " 2>&1";
  int rc = std::system(cmd.c_str());
  std::string help = read_text(out);
  ::unlink(out.c_str());
  if (rc == 0 && help.find("--backend") != std::string::npos) return {"--backend", "none"};
  return {};
}

struct Acked {
  std::string uid;
  std::string resource_version;
  std::string creation_timestamp;
};

TEST(CrashTest, EveryAcknowledgedWriteSurvives50SigkillsAndNothingIsHalfWritten) {
  testing::TempDir tmp;
  std::string dir = tmp.path() + "/data";
  std::vector<std::string> extra = bare_store_flags();

  std::mt19937_64 rng(kSeed);
  std::set<int> kill_points;
  while (static_cast<int>(kill_points.size()) < kKills) {
    kill_points.insert(static_cast<int>(rng() % (kWrites - 200)) + 100);
  }

  std::mutex mu;
  std::map<int, Acked> acked;  // write index -> what the 2xx response said
  std::set<int> attempted;
  std::set<std::string> seen_after_restart;  // unacknowledged but recovered once
  std::atomic<int> next{0};
  int restarts = 0;
  int64_t last_rv = 0;

  auto check = [&](uint16_t port, const std::string& when) {
    Client c(port);
    std::string body;
    ASSERT_EQ(c.request(http::verb::get, "/api/v1/namespaces/default/pods?labelSelector=test%3Dcrash",
                        "", &body),
              200)
        << when;
    json list = json::parse(body);
    int64_t rv = std::stoll(list["metadata"]["resourceVersion"].get<std::string>());
    EXPECT_GE(rv, last_rv) << when << ": resourceVersion went backwards";
    last_rv = rv;
    std::map<std::string, json> present;
    for (auto& item : list["items"]) present[item["metadata"]["name"]] = item;
    std::lock_guard<std::mutex> lk(mu);
    for (const auto& [i, a] : acked) {
      auto it = present.find(name_for(i));
      ASSERT_NE(it, present.end()) << when << ": acknowledged write " << i << " is lost";
      const json& m = it->second["metadata"];
      EXPECT_EQ(m["uid"], a.uid) << when << ": " << name_for(i);
      EXPECT_EQ(m["resourceVersion"], a.resource_version) << when << ": " << name_for(i);
      EXPECT_EQ(m["creationTimestamp"], a.creation_timestamp) << when << ": " << name_for(i);
    }
    for (const std::string& name : seen_after_restart) {
      EXPECT_TRUE(present.contains(name)) << when << ": recovered once, then lost: " << name;
    }
    for (const auto& [name, obj] : present) {
      int i = std::stoi(name.substr(6));
      EXPECT_TRUE(attempted.contains(i)) << when << ": never written: " << name;
      const json& m = obj["metadata"];
      EXPECT_EQ(m["annotations"]["payload"], payload_for(i)) << when << ": " << name;
      EXPECT_EQ(m["labels"]["index"], std::to_string(i)) << when << ": " << name;
      EXPECT_EQ(obj["spec"]["containers"][0]["image"], "nginx:1.25") << when << ": " << name;
      EXPECT_FALSE(m["uid"].get<std::string>().empty()) << when << ": " << name;
      if (!acked.contains(i)) seen_after_restart.insert(name);
    }
  };

  auto kill_it = kill_points.begin();
  while (next.load() < kWrites) {
    Server server(dir, tmp.path() + "/serve-" + std::to_string(restarts) + ".log", extra);
    std::optional<uint16_t> port = server.wait_ready(std::chrono::seconds(60));
    ASSERT_TRUE(port) << "serve did not start (restart " << restarts << "):\n" << server.log();
    check(*port, "after start " + std::to_string(restarts));
    if (::testing::Test::HasFatalFailure()) return;
    int stop_at = kill_it == kill_points.end() ? kWrites : *kill_it;
    std::atomic<bool> server_gone{false};
    std::vector<std::thread> clients;
    for (int t = 0; t < kClients; ++t) {
      clients.emplace_back([&] {
        Client c(*port);
        while (!server_gone) {
          int i = next.fetch_add(1);
          if (i >= kWrites) return;
          {
            std::lock_guard<std::mutex> lk(mu);
            attempted.insert(i);
          }
          std::string body;
          int code = c.request(http::verb::post, "/api/v1/namespaces/default/pods", pod_json(i),
                               &body);
          if (code == 0) {
            server_gone = true;
            return;
          }
          if (code / 100 != 2) {
            ADD_FAILURE() << "write " << i << " refused with " << code << ": " << body;
            return;
          }
          json o = json::parse(body);
          std::lock_guard<std::mutex> lk(mu);
          acked[i] = Acked{o["metadata"]["uid"], o["metadata"]["resourceVersion"],
                           o["metadata"]["creationTimestamp"]};
        }
      });
    }
    // SIGKILL at the chosen moment: once that many writes were handed out,
    // with the clients' requests in flight.
    if (kill_it != kill_points.end()) {
      while (next.load() < stop_at && !server_gone) std::this_thread::yield();
      server.kill();
      ++kill_it;
    }
    for (auto& t : clients) t.join();
    if (kill_it == kill_points.end() && next.load() >= kWrites && !server_gone) {
      // The last round ran to the end: restart once more for the final check.
      server.kill();
    }
    ++restarts;
  }
  Server server(dir, tmp.path() + "/serve-final.log", extra);
  std::optional<uint16_t> port = server.wait_ready(std::chrono::seconds(60));
  ASSERT_TRUE(port) << server.log();
  check(*port, "final");
  EXPECT_EQ(restarts, kKills + 1);
  std::lock_guard<std::mutex> lk(mu);
  // Each kill loses at most one in-flight write per client; a kill that
  // catches every client mid-write reaches the bound exactly.
  EXPECT_GE(acked.size(), static_cast<size_t>(kWrites - kKills * kClients));
  std::cout << "crash test: " << acked.size() << " acknowledged of " << attempted.size()
            << " attempted writes, " << kKills << " SIGKILLs, " << seen_after_restart.size()
            << " unacknowledged writes recovered (complete)\n";
}

}  // namespace
}  // namespace flotilla::storage
