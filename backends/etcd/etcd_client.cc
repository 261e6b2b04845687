// EtcdClient over Boost.Beast: each request runs asynchronous operations on a
// private io_context until they finish, so tcp_stream's timeouts apply to a
// call that blocks its caller. The watch stream reads the gateway's chunked
// reply (one JSON object per line) through the parser's chunk callback.
#include "backends/etcd/etcd_client.h"

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <charconv>
#include <condition_variable>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <thread>

namespace flotilla::etcd {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using json = nlohmann::json;

// ------------------------------------------------------------- helpers

StatusOr<std::vector<Endpoint>> parse_endpoints(std::string_view url) {
  std::string_view rest = url;
  if (rest.starts_with("etcd://")) rest.remove_prefix(7);
  std::vector<Endpoint> out;
  while (!rest.empty() || out.empty()) {
    size_t comma = rest.find(',');
    std::string_view part = rest.substr(0, comma);
    rest = comma == std::string_view::npos ? std::string_view() : rest.substr(comma + 1);
    if (part.starts_with("http://")) part.remove_prefix(7);
    while (part.ends_with('/')) part.remove_suffix(1);
    if (part.empty()) {
      return invalid_error("etcd endpoint list \"" + std::string(url) +
                           "\" has an empty entry; expected etcd://HOST:PORT[,HOST:PORT...]");
    }
    Endpoint ep;
    size_t colon = part.rfind(':');
    if (part.starts_with('[')) {  // [v6]:port
      size_t close = part.find(']');
      if (close == std::string_view::npos)
        return invalid_error("bad etcd endpoint " + std::string(part));
      ep.host = std::string(part.substr(1, close - 1));
      colon =
          part.size() > close + 1 && part[close + 1] == ':' ? close + 1 : std::string_view::npos;
    } else {
      ep.host = std::string(part.substr(0, colon));
    }
    if (colon != std::string_view::npos) {
      std::string_view digits = part.substr(colon + 1);
      unsigned port = 0;
      auto [p, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), port);
      if (ec != std::errc() || p != digits.data() + digits.size() || port == 0 || port > 65535) {
        return invalid_error("bad port in etcd endpoint \"" + std::string(part) + "\"");
      }
      ep.port = static_cast<uint16_t>(port);
    }
    if (ep.host.empty())
      return invalid_error("no host in etcd endpoint \"" + std::string(part) + "\"");
    out.push_back(std::move(ep));
    if (comma == std::string_view::npos) break;
  }
  return out;
}

namespace {
constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
}

std::string base64_encode(std::string_view bytes) {
  std::string out;
  out.reserve((bytes.size() + 2) / 3 * 4);
  size_t i = 0;
  for (; i + 2 < bytes.size(); i += 3) {
    uint32_t v = (uint32_t(uint8_t(bytes[i])) << 16) | (uint32_t(uint8_t(bytes[i + 1])) << 8) |
                 uint8_t(bytes[i + 2]);
    out += kAlphabet[(v >> 18) & 63];
    out += kAlphabet[(v >> 12) & 63];
    out += kAlphabet[(v >> 6) & 63];
    out += kAlphabet[v & 63];
  }
  if (i + 1 == bytes.size()) {
    uint32_t v = uint32_t(uint8_t(bytes[i])) << 16;
    out += kAlphabet[(v >> 18) & 63];
    out += kAlphabet[(v >> 12) & 63];
    out += "==";
  } else if (i + 2 == bytes.size()) {
    uint32_t v = (uint32_t(uint8_t(bytes[i])) << 16) | (uint32_t(uint8_t(bytes[i + 1])) << 8);
    out += kAlphabet[(v >> 18) & 63];
    out += kAlphabet[(v >> 12) & 63];
    out += kAlphabet[(v >> 6) & 63];
    out += '=';
  }
  return out;
}

StatusOr<std::string> base64_decode(std::string_view text) {
  std::string out;
  out.reserve(text.size() / 4 * 3);
  uint32_t acc = 0;
  int bits = 0;
  for (char c : text) {
    int v;
    if (c >= 'A' && c <= 'Z')
      v = c - 'A';
    else if (c >= 'a' && c <= 'z')
      v = c - 'a' + 26;
    else if (c >= '0' && c <= '9')
      v = c - '0' + 52;
    else if (c == '+' || c == '-')
      v = 62;
    else if (c == '/' || c == '_')
      v = 63;
    else if (c == '=')
      break;
    else
      return bad_request_error("not base64: character " + std::to_string(int(uint8_t(c))));
    acc = (acc << 6) | static_cast<uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out += static_cast<char>((acc >> bits) & 0xff);
    }
  }
  return out;
}

std::string prefix_end(std::string_view prefix) {
  std::string end(prefix);
  while (!end.empty()) {
    if (static_cast<uint8_t>(end.back()) < 0xff) {
      end.back() = static_cast<char>(static_cast<uint8_t>(end.back()) + 1);
      return end;
    }
    end.pop_back();
  }
  return std::string(1, '\0');  // every key
}

namespace {

// etcd's gateway writes int64 as JSON strings.
int64_t num(const json& j, const char* field) {
  auto it = j.find(field);
  if (it == j.end()) return 0;
  if (it->is_number_integer()) return it->get<int64_t>();
  if (it->is_string()) {
    const std::string& s = it->get_ref<const std::string&>();
    int64_t v = 0;
    std::from_chars(s.data(), s.data() + s.size(), v);
    return v;
  }
  return 0;
}

std::string bytes_field(const json& j, const char* field) {
  auto it = j.find(field);
  if (it == j.end() || !it->is_string()) return "";
  StatusOr<std::string> d = base64_decode(it->get_ref<const std::string&>());
  return d.is_ok() ? std::move(*d) : std::string();
}

std::vector<KeyValue> parse_kvs(const json& j) {
  std::vector<KeyValue> out;
  auto it = j.find("kvs");
  if (it == j.end() || !it->is_array()) return out;
  out.reserve(it->size());
  for (const json& kv : *it) {
    out.push_back(KeyValue{bytes_field(kv, "key"), bytes_field(kv, "value"),
                           num(kv, "create_revision"), num(kv, "mod_revision")});
  }
  return out;
}

// The gateway's error reply: {"error": "...", "message": "...", "code": N}.
Status gateway_error(const std::string& body, unsigned http_status, const std::string& where) {
  json j = json::parse(body, nullptr, false);
  std::string msg = body;
  int code = 0;
  if (j.is_object()) {
    if (j.contains("message") && j["message"].is_string()) msg = j["message"].get<std::string>();
    if (j.contains("code") && j["code"].is_number_integer()) code = j["code"].get<int>();
  }
  if (msg.find("compacted") != std::string::npos || code == 11) {
    return Status(StatusCode::kGone, "etcd at " + where + ": " + msg);
  }
  return unavailable_error("etcd at " + where + " answered " + std::to_string(http_status) + ": " +
                           msg);
}

StatusOr<json> parse_reply(const std::string& body, const std::string& where) {
  json j = json::parse(body, nullptr, false);
  if (!j.is_object())
    return unavailable_error("etcd at " + where + " sent a reply that is not JSON");
  return j;
}

std::string error_text(const beast::error_code& ec) {
  if (ec == beast::error::timeout) return "timed out";
  return ec.message();
}

}  // namespace

// ------------------------------------------------------------- unary calls

struct EtcdClient::Conn {
  asio::io_context ioc;
  std::optional<beast::tcp_stream> stream;
  beast::flat_buffer buffer;

  // Runs the operation started by `start(handler)` to completion.
  template <typename Start>
  beast::error_code run(Start&& start) {
    beast::error_code result = asio::error::would_block;
    start([&result](beast::error_code ec, auto&&...) { result = ec; });
    ioc.restart();
    ioc.run();
    return result;
  }

  void close() {
    if (stream) {
      beast::error_code ignored;
      stream->socket().shutdown(tcp::socket::shutdown_both, ignored);
      stream->close();
      stream.reset();
    }
    buffer.clear();
  }
};

EtcdClient::EtcdClient(std::vector<Endpoint> endpoints, Duration timeout)
    : endpoints_(std::move(endpoints)), timeout_(timeout), conn_(std::make_unique<Conn>()) {}

EtcdClient::~EtcdClient() { conn_->close(); }

std::string EtcdClient::endpoint() const {
  return endpoints_.empty() ? std::string() : endpoints_[current_].str();
}

StatusOr<std::string> EtcdClient::post(std::string_view path, const std::string& body) {
  ++requests_;
  auto chrono_timeout = std::chrono::nanoseconds(to_nanos(timeout_));
  std::string failures;
  // Each endpoint once, starting with the current one; a kept-alive connection
  // that turns out closed is retried once on a fresh one.
  for (size_t attempt = 0; attempt < endpoints_.size() + 1; ++attempt) {
    const Endpoint& ep = endpoints_[current_];
    bool reused = conn_->stream.has_value();
    beast::error_code ec;
    if (!reused) {
      tcp::resolver resolver(conn_->ioc);
      auto results = resolver.resolve(ep.host, std::to_string(ep.port), ec);
      if (!ec) {
        conn_->stream.emplace(conn_->ioc);
        conn_->stream->expires_after(chrono_timeout);
        ec = conn_->run([&](auto h) { conn_->stream->async_connect(results, h); });
        if (!ec) conn_->stream->socket().set_option(tcp::no_delay(true), ec);
      }
    }
    http::response<http::string_body> res;
    if (!ec) {
      http::request<http::string_body> req{http::verb::post, std::string(path), 11};
      req.set(http::field::host, ep.host);
      req.set(http::field::content_type, "application/json");
      req.keep_alive(true);
      req.body() = body;
      req.prepare_payload();
      conn_->stream->expires_after(chrono_timeout);
      ec = conn_->run([&](auto h) { http::async_write(*conn_->stream, req, h); });
      if (!ec) {
        conn_->stream->expires_after(chrono_timeout);
        ec = conn_->run([&](auto h) { http::async_read(*conn_->stream, conn_->buffer, res, h); });
      }
    }
    if (ec) {
      conn_->close();
      if (reused && ec != beast::error::timeout) continue;  // stale keep-alive: retry
      if (!failures.empty()) failures += "; ";
      failures += ep.str() + ": " + error_text(ec);
      current_ = (current_ + 1) % endpoints_.size();
      if (attempt + 1 >= endpoints_.size() + (reused ? 1 : 0)) break;
      continue;
    }
    if (!res.keep_alive()) conn_->close();
    if (res.result_int() / 100 != 2) return gateway_error(res.body(), res.result_int(), ep.str());
    return std::move(res.body());
  }
  return unavailable_error("cannot reach etcd (" + failures + ")");
}

StatusOr<RangeResult> EtcdClient::range(std::string_view key, std::string_view range_end,
                                        int64_t revision, int64_t limit) {
  json req = {{"key", base64_encode(key)}};
  if (!range_end.empty()) req["range_end"] = base64_encode(range_end);
  if (revision > 0) req["revision"] = std::to_string(revision);
  if (limit > 0) req["limit"] = std::to_string(limit);
  StatusOr<std::string> body = post("/v3/kv/range", req.dump());
  if (!body.is_ok()) return body.status();
  StatusOr<json> j = parse_reply(*body, endpoint());
  if (!j.is_ok()) return j.status();
  RangeResult out;
  out.revision = num((*j)["header"], "revision");
  out.kvs = parse_kvs(*j);
  out.more = j->value("more", false);
  return out;
}

namespace {

json compare_mod(std::string_view key, int64_t expected) {
  if (expected == 0) {
    return {{"target", "CREATE"}, {"key", base64_encode(key)}, {"create_revision", "0"}};
  }
  return {
      {"target", "MOD"}, {"key", base64_encode(key)}, {"mod_revision", std::to_string(expected)}};
}

}  // namespace

static StatusOr<TxnResult> run_txn(EtcdClient& c, const json& req) {
  StatusOr<std::string> body = c.post("/v3/kv/txn", req.dump());
  if (!body.is_ok()) return body.status();
  StatusOr<json> j = parse_reply(*body, c.endpoint());
  if (!j.is_ok()) return j.status();
  TxnResult out;
  out.revision = num((*j)["header"], "revision");
  out.succeeded = j->value("succeeded", false);
  if (!out.succeeded) {
    auto rs = j->find("responses");
    if (rs != j->end() && rs->is_array() && !rs->empty()) {
      const json& r = (*rs)[0];
      if (r.contains("response_range")) out.current = parse_kvs(r["response_range"]);
    }
  }
  return out;
}

StatusOr<TxnResult> EtcdClient::put_if(std::string_view key, std::string_view value,
                                       int64_t expected) {
  json req = {{"compare", json::array({compare_mod(key, expected)})},
              {"success",
               json::array({{{"request_put",
                              {{"key", base64_encode(key)}, {"value", base64_encode(value)}}}}})},
              {"failure", json::array({{{"request_range", {{"key", base64_encode(key)}}}}})}};
  return run_txn(*this, req);
}

StatusOr<TxnResult> EtcdClient::delete_if(std::string_view key, int64_t expected) {
  json req = {{"compare", json::array({compare_mod(key, expected)})},
              {"success", json::array({{{"request_delete_range", {{"key", base64_encode(key)}}}}})},
              {"failure", json::array({{{"request_range", {{"key", base64_encode(key)}}}}})}};
  return run_txn(*this, req);
}

Status EtcdClient::compact(int64_t revision) {
  json req = {{"revision", std::to_string(revision)}, {"physical", true}};
  StatusOr<std::string> body = post("/v3/kv/compaction", req.dump());
  return body.status();
}

// ------------------------------------------------------------- watch stream

struct EtcdWatchStream::Impl {
  std::vector<Endpoint> endpoints;
  std::string key;
  std::string range_end;
  int64_t next_revision;
  Callbacks cb;
  asio::io_context ioc;
  std::mutex mu;
  std::condition_variable cv;
  bool stopping = false;
  std::thread thread;

  // One connection: reads until it ends. Returns why it ended; sets *fatal
  // when the stream must not be retried.
  std::string run_once(const Endpoint& ep, std::optional<Status>* fatal) {
    beast::error_code ec;
    tcp::resolver resolver(ioc);
    auto results = resolver.resolve(ep.host, std::to_string(ep.port), ec);
    if (ec) return ep.str() + ": " + ec.message();
    beast::tcp_stream stream(ioc);
    http::response_parser<http::string_body> parser;
    std::function<std::size_t(std::uint64_t, beast::string_view, beast::error_code&)> chunk_cb;
    std::string pending;
    beast::flat_buffer buffer;
    beast::error_code result = asio::error::would_block;
    auto run = [&](auto start) {
      result = asio::error::would_block;
      start([&result](beast::error_code e, auto&&...) { result = e; });
      {
        // The destructor stops the context under the same lock, so a stop
        // never lands before this restart.
        std::lock_guard<std::mutex> lock(mu);
        if (stopping) return beast::error_code(asio::error::operation_aborted);
        ioc.restart();
      }
      ioc.run();
      return result;
    };
    // Whatever way this returns: close the socket and run the aborted
    // handlers now, while the locals they refer to still exist.
    struct Drain {
      Impl* self;
      beast::tcp_stream* stream;
      ~Drain() {
        beast::error_code ignored;
        stream->socket().close(ignored);
        {
          std::lock_guard<std::mutex> lock(self->mu);
          if (self->stopping) return;
          self->ioc.restart();
        }
        self->ioc.run();
      }
    } drain{this, &stream};
    stream.expires_after(std::chrono::seconds(10));
    if ((ec = run([&](auto h) { stream.async_connect(results, h); }))) {
      return ep.str() + ": " + error_text(ec);
    }
    json create = {{"key", base64_encode(key)},
                   {"range_end", base64_encode(range_end)},
                   {"start_revision", std::to_string(next_revision)}};
    http::request<http::string_body> req{http::verb::post, "/v3/watch", 11};
    req.set(http::field::host, ep.host);
    req.set(http::field::content_type, "application/json");
    req.body() = json{{"create_request", create}}.dump();
    req.prepare_payload();
    if ((ec = run([&](auto h) { http::async_write(stream, req, h); }))) {
      return ep.str() + ": " + error_text(ec);
    }
    stream.expires_never();
    parser.body_limit(boost::none);
    auto on_line = [&](std::string_view line) {
      json j = json::parse(line, nullptr, false);
      if (!j.is_object()) return;
      if (j.contains("error")) {
        std::string msg = j["error"].is_object() ? j["error"].value("message", j["error"].dump())
                                                 : j.value("message", j["error"].dump());
        if (msg.find("compacted") != std::string::npos) {
          *fatal = Status(StatusCode::kGone, "etcd watch: " + msg);
        }
        return;
      }
      const json& r = j.contains("result") ? j["result"] : j;
      if (r.value("canceled", false)) {
        int64_t compact = num(r, "compact_revision");
        *fatal = compact > 0
                     ? Status(StatusCode::kGone, "etcd compacted its history past revision " +
                                                     std::to_string(next_revision) + " (now from " +
                                                     std::to_string(compact) + ")")
                     : unavailable_error("etcd canceled the watch: " +
                                         r.value("cancel_reason", std::string("?")));
        return;
      }
      auto evs = r.find("events");
      if (evs == r.end() || !evs->is_array() || evs->empty()) return;
      std::vector<WatchedChange> batch;
      batch.reserve(evs->size());
      for (const json& e : *evs) {
        const json& kv = e["kv"];
        WatchedChange c;
        c.deleted = e.value("type", std::string("PUT")) == "DELETE";
        c.key = bytes_field(kv, "key");
        if (!c.deleted) c.value = bytes_field(kv, "value");
        c.mod_revision = num(kv, "mod_revision");
        next_revision = std::max(next_revision, c.mod_revision + 1);
        batch.push_back(std::move(c));
      }
      cb.on_changes(std::move(batch));
    };
    chunk_cb = [&](std::uint64_t, beast::string_view body, beast::error_code&) -> std::size_t {
      pending.append(body.data(), body.size());
      size_t start = 0;
      for (size_t nl; (nl = pending.find('\n', start)) != std::string::npos; start = nl + 1) {
        if (nl > start) on_line(std::string_view(pending).substr(start, nl - start));
        if (fatal->has_value()) break;
      }
      pending.erase(0, start);
      if (fatal->has_value()) ioc.stop();
      return body.size();
    };
    parser.on_chunk_body(chunk_cb);
    ec = run([&](auto h) { http::async_read(stream, buffer, parser, h); });
    if (!pending.empty() && !fatal->has_value()) on_line(pending);
    if (parser.is_header_done() && parser.get().result_int() / 100 != 2) {
      Status s = gateway_error(parser.get().body(), parser.get().result_int(), ep.str());
      if (s.code() == StatusCode::kGone) *fatal = s;
      return s.message();
    }
    return ep.str() + ": the watch stream ended (" + (ec ? error_text(ec) : "closed") + ")";
  }

  void loop() {
    size_t current = 0;
    for (;;) {
      {
        std::lock_guard<std::mutex> lock(mu);
        if (stopping) return;
      }
      std::optional<Status> fatal;
      std::string why = run_once(endpoints[current], &fatal);
      {
        std::unique_lock<std::mutex> lock(mu);
        if (stopping) return;
        if (fatal) {
          lock.unlock();
          cb.on_fatal(*fatal);
          return;
        }
        if (cb.on_retry) cb.on_retry(why);
        current = (current + 1) % endpoints.size();
        cv.wait_for(lock, std::chrono::milliseconds(200), [&] { return stopping; });
      }
    }
  }
};

EtcdWatchStream::EtcdWatchStream(std::vector<Endpoint> endpoints, std::string key,
                                 std::string range_end, int64_t start_revision, Callbacks callbacks)
    : impl_(std::make_unique<Impl>()) {
  impl_->endpoints = std::move(endpoints);
  impl_->key = std::move(key);
  impl_->range_end = std::move(range_end);
  impl_->next_revision = start_revision;
  impl_->cb = std::move(callbacks);
  impl_->thread = std::thread([this] { impl_->loop(); });
}

EtcdWatchStream::~EtcdWatchStream() {
  {
    std::lock_guard<std::mutex> lock(impl_->mu);
    impl_->stopping = true;
    impl_->ioc.stop();
  }
  impl_->cv.notify_all();
  impl_->thread.join();
}

}  // namespace flotilla::etcd
