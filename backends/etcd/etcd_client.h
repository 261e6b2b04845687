// EtcdClient: a small blocking client for etcd's v3 API through its gRPC-JSON
// gateway (POST /v3/kv/range, /v3/kv/txn, /v3/kv/compaction, /v3/watch over
// HTTP/1.1, keys and values base64 in JSON), on Boost.Beast. It speaks just
// what EtcdStore needs: ranges, compare-and-swap transactions on one key, and
// a watch stream read on a thread of its own (EtcdWatchStream).
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/util/status.h"
#include "core/util/time.h"

namespace flotilla::etcd {

struct Endpoint {
  std::string host;
  uint16_t port = 2379;
  std::string str() const { return host + ":" + std::to_string(port); }
};

// "etcd://HOST:PORT[,HOST:PORT...]" (also "http://" per endpoint or no scheme;
// the port defaults to 2379). Errors: kInvalid naming the bad part.
StatusOr<std::vector<Endpoint>> parse_endpoints(std::string_view url);

std::string base64_encode(std::string_view bytes);
// Errors: kBadRequest for characters outside the alphabet.
StatusOr<std::string> base64_decode(std::string_view text);

// The first key after every key that starts with `prefix` (etcd's range_end
// for a prefix).
std::string prefix_end(std::string_view prefix);

struct KeyValue {
  std::string key;
  std::string value;
  int64_t create_revision = 0;
  int64_t mod_revision = 0;
};

struct RangeResult {
  int64_t revision = 0;  // the store's revision the range reflects
  std::vector<KeyValue> kvs;
  bool more = false;
};

struct TxnResult {
  int64_t revision = 0;           // after the transaction (its own when it wrote)
  bool succeeded = false;         // the compare held and the write was made
  std::vector<KeyValue> current;  // when it failed: the key as it is (empty: absent)
};

class EtcdClient {
 public:
  // Tries the endpoints in order, sticking with the first that answers.
  // `timeout` bounds each request (connect, send, receive).
  EtcdClient(std::vector<Endpoint> endpoints, Duration timeout);
  ~EtcdClient();
  EtcdClient(const EtcdClient&) = delete;
  EtcdClient& operator=(const EtcdClient&) = delete;

  // Keys in [key, range_end) (range_end empty: just `key`) at `revision`
  // (0: the latest), at most `limit` (0: all), in key order. Errors:
  // kUnavailable (no endpoint answers, naming them), kGone (compacted).
  StatusOr<RangeResult> range(std::string_view key, std::string_view range_end,
                              int64_t revision = 0, int64_t limit = 0);
  // Writes `value` at `key` if the key's mod_revision is `expected` (0: only
  // when the key does not exist).
  StatusOr<TxnResult> put_if(std::string_view key, std::string_view value, int64_t expected);
  // Deletes `key` if its mod_revision is `expected`.
  StatusOr<TxnResult> delete_if(std::string_view key, int64_t expected);
  // Discards the history before `revision` (tests: expired watches).
  Status compact(int64_t revision);
  // One POST with a JSON body; the JSON reply (any 2xx). kUnavailable when no
  // endpoint answers; the gateway's error message otherwise.
  StatusOr<std::string> post(std::string_view path, const std::string& body);

  // The endpoint used last ("host:port").
  std::string endpoint() const;
  int64_t requests() const { return requests_; }

  struct Conn;

 private:
  std::vector<Endpoint> endpoints_;
  Duration timeout_;
  size_t current_ = 0;
  std::unique_ptr<Conn> conn_;
  int64_t requests_ = 0;
};

struct WatchedChange {
  bool deleted = false;
  std::string key;
  std::string value;  // empty for a deletion
  int64_t mod_revision = 0;
};

// A watch on [key, range_end) from a revision, read on its own thread. It
// reconnects (to any endpoint) after a failure, resuming after the last
// revision it delivered. Callbacks run on that thread.
class EtcdWatchStream {
 public:
  struct Callbacks {
    // Changes in revision order, a batch per etcd response.
    std::function<void(std::vector<WatchedChange>)> on_changes;
    // The stream cannot go on: the next revision was compacted (kGone), or
    // another error etcd reported. Called once; the thread then ends.
    std::function<void(Status)> on_fatal;
    // A connection failed or ended; it will be retried. Optional.
    std::function<void(const std::string&)> on_retry;
  };
  EtcdWatchStream(std::vector<Endpoint> endpoints, std::string key, std::string range_end,
                  int64_t start_revision, Callbacks callbacks);
  // Stops the thread; no callback runs after it returns.
  ~EtcdWatchStream();
  EtcdWatchStream(const EtcdWatchStream&) = delete;
  EtcdWatchStream& operator=(const EtcdWatchStream&) = delete;

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace flotilla::etcd
