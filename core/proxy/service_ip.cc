#include "core/proxy/service_ip.h"

#include <algorithm>
#include <charconv>
#include <tuple>

#include "core/proxy/events.h"

namespace flotilla::proxy {

StatusOr<uint32_t> parse_ipv4(std::string_view text) {
  uint32_t ip = 0;
  const char* p = text.data();
  const char* end = text.data() + text.size();
  for (int i = 0; i < 4; ++i) {
    if (i > 0) {
      if (p == end || *p != '.') break;
      ++p;
    }
    unsigned octet = 0;
    auto [next, ec] = std::from_chars(p, end, octet);
    if (ec != std::errc() || next == p || next - p > 3 || octet > 255 ||
        (next - p > 1 && *p == '0')) {
      return invalid_error("\"" + std::string(text) + "\" is not a valid IPv4 address");
    }
    ip = (ip << 8) | octet;
    p = next;
    if (i == 3) {
      if (p != end) break;
      return ip;
    }
  }
  return invalid_error("\"" + std::string(text) + "\" is not a valid IPv4 address");
}

std::string format_ipv4(uint32_t ip) {
  return std::to_string(ip >> 24) + "." + std::to_string((ip >> 16) & 255) + "." +
         std::to_string((ip >> 8) & 255) + "." + std::to_string(ip & 255);
}

StatusOr<Ipv4Cidr> Ipv4Cidr::parse(std::string_view text) {
  auto slash = text.find('/');
  if (slash == std::string_view::npos) {
    return invalid_error("\"" + std::string(text) + "\" is not a CIDR (want e.g. 10.96.0.0/12)");
  }
  auto ip = parse_ipv4(text.substr(0, slash));
  if (!ip) return ip.status().with_prefix("CIDR " + std::string(text) + ": ");
  int prefix = -1;
  auto rest = text.substr(slash + 1);
  auto [next, ec] = std::from_chars(rest.data(), rest.data() + rest.size(), prefix);
  if (ec != std::errc() || next != rest.data() + rest.size() || prefix < 0 || prefix > 32) {
    return invalid_error("CIDR " + std::string(text) + ": prefix length must be 0..32");
  }
  Ipv4Cidr c;
  c.prefix = prefix;
  c.base = *ip;
  const uint32_t host_mask = prefix == 0 ? ~uint32_t{0} : (uint32_t{1} << (32 - prefix)) - 1;
  if ((c.base & host_mask) != 0) {
    return invalid_error("CIDR " + std::string(text) + " has host bits set (did you mean " +
                         format_ipv4(c.base & ~host_mask) + "/" + std::to_string(prefix) + "?)");
  }
  return c;
}

std::string Ipv4Cidr::to_string() const { return format_ipv4(base) + "/" + std::to_string(prefix); }

std::string service_dns_name(std::string_view name, std::string_view ns, std::string_view domain) {
  std::string out(name);
  out += '.';
  out += ns.empty() ? std::string_view("default") : ns;
  out += ".svc.";
  out += domain;
  return out;
}

std::string service_key(const api::Service& service) {
  const auto& m = service.metadata();
  return (m.namespace_().empty() ? std::string("default") : m.namespace_()) + "/" + m.name();
}

bool is_headless(const api::Service& service) {
  return service.spec().cluster_ip() == kHeadlessClusterIP;
}

// ------------------------------------------------------------------ ClusterIPPool

ClusterIPPool::ClusterIPPool(Ipv4Cidr cidr) : cidr_(cidr), bits_((cidr.size() + 63) / 64, 0) {
  set_used(0, true);                 // network address
  set_used(cidr.size() - 1, true);  // broadcast address
  set_used(1, true);                 // kubernetes (handed out only to its owner)
}

StatusOr<ClusterIPPool> ClusterIPPool::create(std::string_view cidr) {
  auto parsed = Ipv4Cidr::parse(cidr);
  if (!parsed) return parsed.status().with_prefix("service CIDR: ");
  if (parsed->prefix > 29) {
    return invalid_error("service CIDR " + parsed->to_string() +
                         " is too small: use a prefix of /29 or shorter");
  }
  return ClusterIPPool(*parsed);
}

void ClusterIPPool::set_used(uint64_t offset, bool v) {
  uint64_t mask = uint64_t{1} << (offset & 63);
  if (v) {
    bits_[offset >> 6] |= mask;
  } else {
    bits_[offset >> 6] &= ~mask;
  }
}

StatusOr<std::string> ClusterIPPool::allocate(const std::string& owner) {
  if (const std::string* ip = ip_of(owner)) return *ip;
  if (owner == kKubernetesServiceKey && by_offset_.find(1) == by_offset_.end()) {
    Held h{1, format_ipv4(cidr_.base + 1)};
    by_offset_[1] = owner;
    owners_[owner] = h;
    return h.ip;
  }
  // Lowest free offset at or above the hint: skip full words 64 at a time.
  const uint64_t size = cidr_.size();
  uint64_t word = hint_ >> 6;
  uint64_t found = size;
  for (uint64_t w = word; w < bits_.size(); ++w) {
    uint64_t free_bits = ~bits_[w];
    if (w == word) free_bits &= ~uint64_t{0} << (hint_ & 63);
    if (free_bits != 0) {
      found = w * 64 + static_cast<uint64_t>(__builtin_ctzll(free_bits));
      break;
    }
  }
  if (found >= size) {
    hint_ = size;
    return unavailable_error("no free service IPs left in " + cidr_.to_string() + " (" +
                             std::to_string(allocated()) +
                             " allocated): delete unused Services or widen the service CIDR");
  }
  set_used(found, true);
  hint_ = found + 1;
  Held h{found, format_ipv4(cidr_.base + static_cast<uint32_t>(found))};
  by_offset_[found] = owner;
  owners_[owner] = h;
  return h.ip;
}

Status ClusterIPPool::validate(const std::string& owner, uint32_t ip, std::string_view text) const {
  const std::string prefix = "spec.clusterIP: Invalid value: \"" + std::string(text) + "\": ";
  if (!cidr_.contains(ip)) {
    return invalid_error(prefix + "provided IP is not in the valid range. The range of valid IPs is " +
                         cidr_.to_string());
  }
  const uint64_t offset = ip - cidr_.base;
  if (offset == 0 || offset == cidr_.size() - 1) {
    return invalid_error(prefix + "the network and broadcast addresses of " + cidr_.to_string() +
                         " cannot be used");
  }
  if (offset == 1 && owner != kKubernetesServiceKey) {
    return invalid_error(prefix + "provided IP is reserved for the service " +
                         std::string(kKubernetesServiceKey));
  }
  auto it = by_offset_.find(offset);
  if (it != by_offset_.end() && it->second != owner) {
    return invalid_error(prefix + "provided IP is already allocated (to service " + it->second +
                         ")");
  }
  return Status::ok();
}

Status ClusterIPPool::claim(const std::string& owner, std::string_view text) {
  auto ip = parse_ipv4(text);
  if (!ip) {
    return invalid_error("spec.clusterIP: Invalid value: \"" + std::string(text) +
                         "\": must be a valid IPv4 address, \"None\" or empty");
  }
  FLOTILLA_RETURN_IF_ERROR(validate(owner, *ip, text));
  const uint64_t offset = *ip - cidr_.base;
  auto held = owners_.find(owner);
  if (held != owners_.end()) {
    if (held->second.offset == offset) return Status::ok();
    release(owner);
  }
  set_used(offset, true);
  by_offset_[offset] = owner;
  owners_[owner] = Held{offset, format_ipv4(*ip)};
  return Status::ok();
}

void ClusterIPPool::release(const std::string& owner) {
  auto it = owners_.find(owner);
  if (it == owners_.end()) return;
  const uint64_t offset = it->second.offset;
  by_offset_.erase(offset);
  owners_.erase(it);
  if (offset == 1) return;  // stays reserved for kubernetes
  set_used(offset, false);
  hint_ = std::min(hint_, offset);
}

const std::string* ClusterIPPool::ip_of(const std::string& owner) const {
  auto it = owners_.find(owner);
  return it == owners_.end() ? nullptr : &it->second.ip;
}

const std::string* ClusterIPPool::owner_of(std::string_view text) const {
  auto ip = parse_ipv4(text);
  if (!ip || !cidr_.contains(*ip)) return nullptr;
  auto it = by_offset_.find(*ip - cidr_.base);
  return it == by_offset_.end() ? nullptr : &it->second;
}

// ------------------------------------------------------------- ServiceIPAllocator

namespace {
constexpr std::string_view kComponent = "service-ip-allocator";

std::string key_ns(const std::string& key) { return key.substr(0, key.find('/')); }
std::string key_name(const std::string& key) { return key.substr(key.find('/') + 1); }
}  // namespace

ServiceIPAllocator::ServiceIPAllocator(EventLoop& loop, Store& store, Network& network,
                                       ServiceIPAllocatorOptions options, ClusterIPPool pool)
    : loop_(loop), store_(store), network_(network), options_(std::move(options)),
      pool_(std::move(pool)) {}

ServiceIPAllocator::~ServiceIPAllocator() { *alive_ = false; }

StatusOr<std::unique_ptr<ServiceIPAllocator>> ServiceIPAllocator::create(
    EventLoop& loop, Store& store, Network& network, ServiceIPAllocatorOptions options) {
  auto pool = ClusterIPPool::create(options.service_cidr);
  if (!pool) return pool.status();
  return std::unique_ptr<ServiceIPAllocator>(
      new ServiceIPAllocator(loop, store, network, std::move(options), std::move(*pool)));
}

Status ServiceIPAllocator::start() {
  auto listed = store_.list(api::Kind::kService, ListOptions{});
  if (!listed) return listed.status().with_prefix("service-ip-allocator: listing Services: ");
  // Existing addresses first, oldest Service first, so a restart re-derives the
  // same ownership and a duplicate goes to whoever had it first.
  std::vector<std::shared_ptr<const api::Service>> services;
  for (const auto& o : listed->items) services.push_back(api::as<api::Service>(o));
  std::stable_sort(services.begin(), services.end(), [](const auto& a, const auto& b) {
    return a->metadata().creation_timestamp().nanos() < b->metadata().creation_timestamp().nanos();
  });
  for (const auto& s : services) {
    const std::string& ip = s->spec().cluster_ip();
    if (ip.empty() || ip == kHeadlessClusterIP) continue;
    (void)pool_.claim(service_key(*s), ip);  // conflicts surface in reconcile()
  }
  WatchOptions wo;
  wo.resource_version = listed->resource_version;
  std::weak_ptr<bool> alive = alive_;
  auto watch = store_.watch(api::Kind::kService, wo, [this, alive](const WatchEvent& e) {
    if (alive.expired()) return;
    enqueue(service_key(*api::as<api::Service>(e.object)));
  });
  if (!watch) return watch.status().with_prefix("service-ip-allocator: watching Services: ");
  watch_ = std::move(*watch);
  for (const auto& s : services) enqueue(service_key(*s));
  return Status::ok();
}

void ServiceIPAllocator::enqueue(const std::string& key) {
  if (queued_.insert(key).second) queue_.push_back(key);
  if (drain_posted_) return;
  drain_posted_ = true;
  std::weak_ptr<bool> alive = alive_;
  loop_.post([this, alive] {
    if (alive.expired()) return;
    drain();
  });
}

void ServiceIPAllocator::drain() {
  drain_posted_ = false;
  std::deque<std::string> batch;
  batch.swap(queue_);
  queued_.clear();
  for (const auto& key : batch) {
    Status s = reconcile(key);
    if (s.is_ok()) {
      retries_.erase(key);
      retry_timers_.erase(key);
    } else if (s.code() == StatusCode::kConflict) {
      enqueue(key);  // stale read: retry at once with fresh state
    } else {
      ++failures_;
      requeue_with_backoff(key);
    }
  }
}

void ServiceIPAllocator::requeue_with_backoff(const std::string& key) {
  int n = retries_[key]++;
  Duration d = options_.backoff_initial;
  for (int i = 0; i < n && d < options_.backoff_max; ++i) d *= 2;
  d = std::min(d, options_.backoff_max);
  std::weak_ptr<bool> alive = alive_;
  retry_timers_[key] = loop_.run_after(d, [this, alive, key] {
    if (alive.expired()) return;
    enqueue(key);
  });
}

Status ServiceIPAllocator::reconcile(const std::string& key) {
  auto got = store_.get(api::Kind::kService, key_ns(key), key_name(key));
  if (!got) {
    if (got.status().code() != StatusCode::kNotFound) return got.status();
    pool_.release(key);
    remove_dns(key);
    warned_.erase(key);
    return Status::ok();
  }
  auto service = api::as<api::Service>(*got);
  const std::string& ip = service->spec().cluster_ip();
  if (ip == kHeadlessClusterIP) {
    pool_.release(key);
    remove_dns(key);
    return Status::ok();
  }
  if (ip.empty()) {
    auto allocated = pool_.allocate(key);
    if (!allocated) {
      warn(*service, "ClusterIPNotAllocated", allocated.status().message());
      return allocated.status();
    }
    api::Service updated = *service;
    updated.mutable_spec()->set_cluster_ip(*allocated);
    updated.mutable_spec()->clear_cluster_ips();
    updated.mutable_spec()->add_cluster_ips(*allocated);
    auto written = store_.update(api::share(std::move(updated)));
    if (!written) return written.status();  // kConflict requeues; the address stays held
    publish_dns(key, *allocated);
    return Status::ok();
  }
  Status claimed = pool_.claim(key, ip);
  if (!claimed.is_ok()) {
    remove_dns(key);
    warn(*service, "ClusterIPNotAllocated", claimed.message());
    return claimed;
  }
  warned_.erase(key);
  if (service->spec().cluster_ips_size() != 1 || service->spec().cluster_ips(0) != ip) {
    api::Service updated = *service;
    updated.mutable_spec()->clear_cluster_ips();
    updated.mutable_spec()->add_cluster_ips(ip);
    auto written = store_.update(api::share(std::move(updated)));
    if (!written) return written.status();
  }
  publish_dns(key, ip);
  return Status::ok();
}

void ServiceIPAllocator::publish_dns(const std::string& key, const std::string& ip) {
  auto it = published_.find(key);
  if (it != published_.end() && it->second == ip) return;
  network_.set_dns_record(service_dns_name(key_name(key), key_ns(key), options_.cluster_domain),
                          ip);
  published_[key] = ip;
}

void ServiceIPAllocator::remove_dns(const std::string& key) {
  auto it = published_.find(key);
  if (it == published_.end()) return;
  network_.set_dns_record(service_dns_name(key_name(key), key_ns(key), options_.cluster_domain),
                          "");
  published_.erase(it);
}

void ServiceIPAllocator::warn(const api::Service& service, std::string_view reason,
                              const std::string& message) {
  const std::string key = service_key(service);
  auto it = warned_.find(key);
  if (it != warned_.end() && it->second == message) return;  // once per distinct problem
  warned_[key] = message;
  (void)record_service_warning(store_, loop_.now(), service, kComponent, reason, message);
}

}  // namespace flotilla::proxy
