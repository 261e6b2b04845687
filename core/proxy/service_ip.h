// Service virtual IPs and DNS names. ClusterIPPool hands out one stable IPv4
// address per Service from the service CIDR (lowest free address first, so the
// same sequence of creations always yields the same IPs); ServiceIPAllocator is
// the level-triggered controller that writes spec.clusterIP into the Store and
// publishes `<service>.<namespace>.svc.cluster.local` through Network.
#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "core/api/object.h"
#include "core/ports/event_loop.h"
#include "core/ports/network.h"
#include "core/ports/store.h"
#include "core/util/status.h"

namespace flotilla::proxy {

inline constexpr std::string_view kDefaultServiceCidr = "10.96.0.0/12";
inline constexpr std::string_view kDefaultClusterDomain = "cluster.local";
// spec.clusterIP of a headless Service: no virtual IP, no proxying.
inline constexpr std::string_view kHeadlessClusterIP = "None";
// The Service that owns the first address of the range ("10.96.0.1").
inline constexpr std::string_view kKubernetesServiceKey = "default/kubernetes";

// "10.96.0.10" <-> host-order integer. Errors: kInvalid naming the text.
StatusOr<uint32_t> parse_ipv4(std::string_view text);
std::string format_ipv4(uint32_t ip);

struct Ipv4Cidr {
  uint32_t base = 0;  // network address, host bits zero
  int prefix = 0;     // 0..32
  // "10.96.0.0/12". Errors: kInvalid (malformed, host bits set).
  static StatusOr<Ipv4Cidr> parse(std::string_view text);
  uint64_t size() const { return uint64_t{1} << (32 - prefix); }
  bool contains(uint32_t ip) const { return ip - base < size(); }
  std::string to_string() const;
};

// "<name>.<namespace>.svc.<domain>"; an empty namespace means "default".
std::string service_dns_name(std::string_view name, std::string_view ns,
                             std::string_view domain = kDefaultClusterDomain);
// "<ns>/<name>" of a Service.
std::string service_key(const api::Service& service);
// spec.clusterIP is "None".
bool is_headless(const api::Service& service);

// Allocation of service VIPs within one CIDR. Deterministic: allocate() returns
// the lowest free address; the network and broadcast addresses are never
// handed out and the first usable address is kept for default/kubernetes.
// Owners are "<ns>/<name>" keys; each owns at most one address.
class ClusterIPPool {
 public:
  // Errors: kInvalid for a malformed CIDR or one with fewer than 8 addresses.
  static StatusOr<ClusterIPPool> create(std::string_view cidr = kDefaultServiceCidr);

  // The owner's address if it has one, else the lowest free one, now owned.
  // Errors: kUnavailable when the range is exhausted (naming the range).
  StatusOr<std::string> allocate(const std::string& owner);
  // Claims a user-chosen address. OK when it is free or already the owner's
  // (an owner that held another address gives it up). Errors (kInvalid, with
  // Kubernetes' wording): malformed, outside the range, the network or
  // broadcast address, the reserved kubernetes address, or already allocated
  // to another Service (the message names it).
  Status claim(const std::string& owner, std::string_view ip);
  // Frees the owner's address; a no-op for an owner without one.
  void release(const std::string& owner);

  // The owner's address, or nullptr.
  const std::string* ip_of(const std::string& owner) const;
  // The owner of `ip`, or nullptr.
  const std::string* owner_of(std::string_view ip) const;
  size_t allocated() const { return owners_.size(); }
  // Addresses that allocate() can hand out (excludes network, broadcast and
  // the kubernetes address).
  uint64_t capacity() const { return cidr_.size() - 3; }
  const Ipv4Cidr& cidr() const { return cidr_; }
  std::string kubernetes_ip() const { return format_ipv4(cidr_.base + 1); }

 private:
  explicit ClusterIPPool(Ipv4Cidr cidr);
  bool used(uint64_t offset) const { return (bits_[offset >> 6] >> (offset & 63)) & 1; }
  void set_used(uint64_t offset, bool v);
  Status validate(const std::string& owner, uint32_t ip, std::string_view text) const;

  Ipv4Cidr cidr_;
  std::vector<uint64_t> bits_;  // one bit per address offset
  uint64_t hint_ = 2;           // no free offset below this (offsets 0, 1 never free)
  struct Held {
    uint64_t offset;
    std::string ip;
  };
  std::map<std::string, Held> owners_;                  // ordered: deterministic dumps
  std::unordered_map<uint64_t, std::string> by_offset_;  // lookup only
};

struct ServiceIPAllocatorOptions {
  std::string service_cidr = std::string(kDefaultServiceCidr);
  std::string cluster_domain = std::string(kDefaultClusterDomain);
  // Requeue backoff after a failed reconcile (doubling, capped).
  Duration backoff_initial = milliseconds(5);
  Duration backoff_max = seconds(30);
};

// The controller. Watches Services; for each key, reconcile() reads the fresh
// object and (1) gives a Service without spec.clusterIP the pool's next
// address, written back with optimistic concurrency (a stale resourceVersion
// just requeues), (2) claims a user-set address, recording a Warning Event
// "ClusterIPNotAllocated" when it is invalid or taken, (3) publishes or removes
// the DNS name, (4) frees the address when the Service is gone. Headless
// Services get no address and no DNS record from here.
class ServiceIPAllocator {
 public:
  static StatusOr<std::unique_ptr<ServiceIPAllocator>> create(
      EventLoop& loop, Store& store, Network& network, ServiceIPAllocatorOptions options = {});
  ~ServiceIPAllocator();
  ServiceIPAllocator(const ServiceIPAllocator&) = delete;
  ServiceIPAllocator& operator=(const ServiceIPAllocator&) = delete;

  // Lists every Service (existing addresses are claimed first, oldest Service
  // winning a duplicate), then watches for changes. Call once.
  Status start();
  // Brings one "<ns>/<name>" in line; idempotent. Errors drive a backoff requeue.
  Status reconcile(const std::string& key);

  const ClusterIPPool& pool() const { return pool_; }
  // Reconciles that failed so far (for tests and metrics).
  int64_t failures() const { return failures_; }

 private:
  ServiceIPAllocator(EventLoop& loop, Store& store, Network& network,
                     ServiceIPAllocatorOptions options, ClusterIPPool pool);
  void enqueue(const std::string& key);
  void drain();
  void requeue_with_backoff(const std::string& key);
  void publish_dns(const std::string& key, const std::string& ip);
  void remove_dns(const std::string& key);
  void warn(const api::Service& service, std::string_view reason, const std::string& message);

  EventLoop& loop_;
  Store& store_;
  Network& network_;
  ServiceIPAllocatorOptions options_;
  ClusterIPPool pool_;
  WatchHandle watch_;
  std::deque<std::string> queue_;  // pending keys in arrival order (FIFO, like client-go)
  std::set<std::string> queued_;   // dedup: a key waits in the queue at most once
  bool drain_posted_ = false;
  std::map<std::string, int> retries_;
  std::map<std::string, TimerHandle> retry_timers_;
  std::map<std::string, std::string> published_;  // key -> ip in DNS
  std::map<std::string, std::string> warned_;     // key -> last warning message
  int64_t failures_ = 0;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace flotilla::proxy
