// The node IPAM controller (Kubernetes' nodeipam "RangeAllocator", IPv4 only):
// gives every Node a spec.podCIDR carved out of one cluster CIDR (e.g.
// 10.244.0.0/16 in /24 blocks), the block each host's pod network is built
// from. Allocations are stable: a node keeps the block it has (also across a
// controller restart, which re-learns them from the nodes), a block is freed
// only when its Node object is deleted, and the lowest free block is handed
// out first so equal histories give equal allocations. Exhaustion is reported
// as a Warning event "CIDRNotAvailable" on the node and retried later.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>

#include "core/controllers/context.h"
#include "core/controllers/event_recorder.h"
#include "core/controllers/work_queue.h"

namespace flotilla::ctrl {

// An IPv4 prefix: network address (host byte order, host bits zero) and length.
struct Ipv4Cidr {
  uint32_t base = 0;
  int prefix = 0;

  // "10.244.0.0/16"; errors (kBadRequest) name what is wrong: not IPv4, a
  // length outside 0-32, host bits set.
  static StatusOr<Ipv4Cidr> parse(std::string_view text);
  std::string to_string() const;
  // Number of addresses in the block (2^(32-prefix)).
  uint64_t size() const { return uint64_t{1} << (32 - prefix); }
  bool contains(uint32_t addr) const;
  // The n-th address of the block (n < size()).
  uint32_t at(uint64_t n) const { return base + static_cast<uint32_t>(n); }
  bool operator==(const Ipv4Cidr&) const = default;
};

// "10.1.2.3" <-> host-order integer; nullopt when not a dotted quad.
std::optional<uint32_t> parse_ipv4(std::string_view text);
std::string format_ipv4(uint32_t addr);

struct NodeIpamOptions {
  std::string cluster_cidr = "10.244.0.0/16";
  int node_mask_size = 24;  // prefix length of each node's block
  // How long an exhausted allocation waits before it is tried again (a node
  // deleted meanwhile frees a block, and its DELETED event retries at once).
  Duration retry_when_full = seconds(30);
};

class NodeIpamController {
 public:
  static constexpr std::string_view kComponent = "node-ipam-controller";
  static constexpr std::string_view kReasonNotAvailable = "CIDRNotAvailable";
  static constexpr std::string_view kReasonAssigned = "CIDRAssigned";

  // Fails (kBadRequest) for a bad cluster CIDR or a node mask not longer than
  // its prefix (at most 32).
  static StatusOr<std::unique_ptr<NodeIpamController>> create(ControllerContext ctx,
                                                               NodeIpamOptions options);
  ~NodeIpamController();
  NodeIpamController(const NodeIpamController&) = delete;
  NodeIpamController& operator=(const NodeIpamController&) = delete;

  // Watches nodes (with their current state first) and allocates for every
  // node without a podCIDR.
  Status start();
  // Allocates for one node (by name) if it has no podCIDR. Public for tests.
  ReconcileResult reconcile(const std::string& name);

  // Blocks in the cluster CIDR, and how many are taken.
  uint64_t capacity() const { return blocks_; }
  size_t allocated() const { return owner_.size(); }
  // The node holding a block ("" when free), for tests and status output.
  std::string owner_of(const std::string& cidr) const;
  WorkQueue& queue() { return *queue_; }

 private:
  NodeIpamController(ControllerContext ctx, NodeIpamOptions options, Ipv4Cidr cluster);
  void on_node(const WatchEvent& e);
  // The block index a CIDR string names, if it is one of ours (aligned, right size).
  std::optional<uint64_t> index_of(const std::string& cidr) const;
  std::string block(uint64_t index) const;
  void release(const std::string& node);

  ControllerContext ctx_;
  NodeIpamOptions options_;
  Ipv4Cidr cluster_;
  uint64_t blocks_ = 0;
  EventRecorder recorder_;
  std::unique_ptr<WorkQueue> queue_;
  WatchHandle node_watch_;
  std::map<uint64_t, std::string> owner_;    // block index -> node
  std::map<std::string, uint64_t> by_node_;  // node -> block index
  std::set<std::string> reported_full_;      // nodes told "no CIDR" since their last change
};

}  // namespace flotilla::ctrl
