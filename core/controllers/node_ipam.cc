#include "core/controllers/node_ipam.h"

#include <charconv>
#include <utility>

namespace flotilla::ctrl {

std::optional<uint32_t> parse_ipv4(std::string_view text) {
  uint32_t addr = 0;
  const char* p = text.data();
  const char* end = text.data() + text.size();
  for (int i = 0; i < 4; ++i) {
    if (i > 0) {
      if (p == end || *p != '.') return std::nullopt;
      ++p;
    }
    unsigned octet = 0;
    auto [next, ec] = std::from_chars(p, end, octet);
    if (ec != std::errc() || next == p || next - p > 3 || octet > 255) return std::nullopt;
    addr = (addr << 8) | octet;
    p = next;
  }
  if (p != end) return std::nullopt;
  return addr;
}

std::string format_ipv4(uint32_t addr) {
  return std::to_string(addr >> 24) + "." + std::to_string((addr >> 16) & 0xff) + "." +
         std::to_string((addr >> 8) & 0xff) + "." + std::to_string(addr & 0xff);
}

StatusOr<Ipv4Cidr> Ipv4Cidr::parse(std::string_view text) {
  size_t slash = text.find('/');
  if (slash == std::string_view::npos) {
    return bad_request_error("\"" + std::string(text) + "\" is not a CIDR (ADDRESS/LENGTH)");
  }
  std::optional<uint32_t> addr = parse_ipv4(text.substr(0, slash));
  if (!addr) {
    return bad_request_error("\"" + std::string(text) + "\": not an IPv4 address");
  }
  std::string_view len = text.substr(slash + 1);
  int prefix = -1;
  auto [next, ec] = std::from_chars(len.data(), len.data() + len.size(), prefix);
  if (ec != std::errc() || next != len.data() + len.size() || prefix < 0 || prefix > 32) {
    return bad_request_error("\"" + std::string(text) + "\": prefix length must be 0-32");
  }
  const uint32_t mask = prefix == 0 ? 0 : ~uint32_t{0} << (32 - prefix);
  if ((*addr & ~mask) != 0) {
    return bad_request_error("\"" + std::string(text) + "\": host bits set (did you mean " +
                             format_ipv4(*addr & mask) + "/" + std::to_string(prefix) + "?)");
  }
  return Ipv4Cidr{*addr, prefix};
}

std::string Ipv4Cidr::to_string() const { return format_ipv4(base) + "/" + std::to_string(prefix); }

bool Ipv4Cidr::contains(uint32_t addr) const {
  const uint32_t mask = prefix == 0 ? 0 : ~uint32_t{0} << (32 - prefix);
  return (addr & mask) == base;
}

StatusOr<std::unique_ptr<NodeIpamController>> NodeIpamController::create(
    ControllerContext ctx, NodeIpamOptions options) {
  StatusOr<Ipv4Cidr> cluster = Ipv4Cidr::parse(options.cluster_cidr);
  if (!cluster.is_ok()) return bad_request_error("cluster CIDR " + cluster.status().message());
  if (options.node_mask_size < cluster->prefix || options.node_mask_size > 32) {
    return bad_request_error("node CIDR mask size " + std::to_string(options.node_mask_size) +
                             " must be between the cluster CIDR's prefix (" +
                             std::to_string(cluster->prefix) + ") and 32");
  }
  return std::unique_ptr<NodeIpamController>(
      new NodeIpamController(ctx, std::move(options), *cluster));
}

NodeIpamController::NodeIpamController(ControllerContext ctx, NodeIpamOptions options,
                                       Ipv4Cidr cluster)
    : ctx_(ctx),
      options_(std::move(options)),
      cluster_(cluster),
      blocks_(uint64_t{1} << (options_.node_mask_size - cluster.prefix)),
      recorder_(ctx.store, ctx.loop, std::string(kComponent)) {
  queue_ = std::make_unique<WorkQueue>(
      ctx_.loop, std::string(kComponent),
      [this](const std::string& key) { return reconcile(key); }, WorkQueueOptions{});
}

NodeIpamController::~NodeIpamController() { node_watch_.reset(); }

Status NodeIpamController::start() {
  WatchOptions wo;
  wo.send_initial_events = true;
  StatusOr<WatchHandle> w =
      ctx_.store.watch(api::Kind::kNode, wo, [this](const WatchEvent& e) { on_node(e); });
  if (!w.is_ok()) return w.status();
  node_watch_ = std::move(*w);
  return Status::ok();
}

std::string NodeIpamController::block(uint64_t index) const {
  return Ipv4Cidr{cluster_.at(index << (32 - options_.node_mask_size)), options_.node_mask_size}
      .to_string();
}

std::optional<uint64_t> NodeIpamController::index_of(const std::string& cidr) const {
  StatusOr<Ipv4Cidr> c = Ipv4Cidr::parse(cidr);
  if (!c.is_ok() || c->prefix != options_.node_mask_size || !cluster_.contains(c->base)) {
    return std::nullopt;
  }
  return uint64_t{c->base - cluster_.base} >> (32 - options_.node_mask_size);
}

std::string NodeIpamController::owner_of(const std::string& cidr) const {
  std::optional<uint64_t> i = index_of(cidr);
  if (!i) return "";
  auto it = owner_.find(*i);
  return it == owner_.end() ? "" : it->second;
}

void NodeIpamController::release(const std::string& node) {
  auto it = by_node_.find(node);
  if (it == by_node_.end()) return;
  auto o = owner_.find(it->second);
  if (o != owner_.end() && o->second == node) owner_.erase(o);
  by_node_.erase(it);
}

void NodeIpamController::on_node(const WatchEvent& e) {
  auto node = api::as<api::Node>(e.object);
  const std::string& name = node->metadata().name();
  if (e.type == WatchEventType::kDeleted) {
    const bool had = by_node_.count(name) > 0;
    release(name);
    reported_full_.erase(name);
    if (had) {
      // A block came free: nodes waiting for one get it now.
      for (const std::string& waiting : reported_full_) queue_->add(waiting);
    }
    return;
  }
  const std::string& cidr = node->spec().pod_cidr();
  if (cidr.empty()) {
    // Keeps the node's block if it has one: this may be an event older than
    // our own write, and a cleared podCIDR gets the same block back.
    queue_->add(name);
    return;
  }
  std::optional<uint64_t> index = index_of(cidr);
  auto mine = by_node_.find(name);
  if (mine != by_node_.end() && index && mine->second == *index) return;  // as recorded
  release(name);
  reported_full_.erase(name);
  // A block set by someone else (or learned after a restart) is honoured if it
  // is ours and free; a CIDR outside the cluster range is the user's business.
  if (index && owner_.count(*index) == 0) {
    owner_[*index] = name;
    by_node_[name] = *index;
  }
}

ReconcileResult NodeIpamController::reconcile(const std::string& name) {
  StatusOr<api::Object> got = ctx_.store.get(api::Kind::kNode, "", name);
  if (!got.is_ok()) {
    return got.status().code() == StatusCode::kNotFound ? ReconcileResult::ok()
                                                        : ReconcileResult::error(got.status());
  }
  auto node = api::as<api::Node>(*got);
  if (!node->spec().pod_cidr().empty()) return ReconcileResult::ok();
  // The node's own block if it had one, else the lowest free block (owner_ is
  // ordered by index).
  uint64_t index = 0;
  if (auto mine = by_node_.find(name); mine != by_node_.end()) {
    index = mine->second;
  } else {
    for (const auto& [taken, owner] : owner_) {
      if (taken != index) break;
      ++index;
    }
  }
  if (index >= blocks_) {
    if (reported_full_.insert(name).second) {
      recorder_.warning(*node, kReasonNotAvailable,
                        "Node " + name + " status is now: CIDRNotAvailable (all " +
                            std::to_string(blocks_) + " /" +
                            std::to_string(options_.node_mask_size) + " blocks of " +
                            cluster_.to_string() + " are taken)");
    }
    return ReconcileResult::requeue_after(options_.retry_when_full);
  }
  api::Node copy = *node;
  const std::string cidr = block(index);
  copy.mutable_spec()->set_pod_cidr(cidr);
  copy.mutable_spec()->clear_pod_cidrs();
  copy.mutable_spec()->add_pod_cidrs(cidr);
  StatusOr<api::Object> written = ctx_.store.update(api::share(std::move(copy)));
  if (!written.is_ok()) {
    if (written.status().code() == StatusCode::kConflict) return ReconcileResult::requeue();
    if (written.status().code() == StatusCode::kNotFound) return ReconcileResult::ok();
    return ReconcileResult::error(written.status());
  }
  // Taken now, not when the watch echoes it: the next reconcile must not hand
  // out the same block.
  owner_[index] = name;
  by_node_[name] = index;
  reported_full_.erase(name);
  recorder_.normal(*node,
                   kReasonAssigned, "Node " + name + " got pod CIDR " + cidr);
  return ReconcileResult::ok();
}

}  // namespace flotilla::ctrl
