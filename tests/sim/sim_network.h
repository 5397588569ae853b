// The network of a multi-host simulation: one host per node (its agent, its watchdog, its
// PostgreSQL) and the store (etcd, reached as one more endpoint). Every link is up, or cut until
// a given time, in both directions or in one (a firewall rule that drops one way: a request
// arrives and its answer does not). A partition is a set of cut links, and every cut heals on
// its own, so a scenario always ends with the whole network back.
#pragma once

#include <chrono>
#include <string>
#include <vector>

namespace tandem::sim {

using SimTime = std::chrono::milliseconds;  // since the start of the scenario

class SimNetwork {
 public:
  // REQUIRES: `now` (the simulated clock) outlives the network.
  SimNetwork(int hosts, const SimTime& now);

  // The store's index among the endpoints: after the hosts.
  int store() const { return hosts_; }
  // Whether what `a` sends reaches `b` (hosts or the store) now. A host always reaches itself.
  bool linked(int a, int b) const;
  // Both ways: what a connection needs (replication, a copy, a rewind).
  bool connected(int a, int b) const { return linked(a, b) && linked(b, a); }

  // Cuts the link between `a` and `b` until `until` (a longer cut already there stays).
  void cut(int a, int b, SimTime until);
  // Drops what `from` sends to `to` until `until`; the other way stays.
  void cut_one_way(int from, int to, SimTime until);
  // Cuts `host` off from every other host, from the store, or both.
  void isolate(int host, bool from_hosts, bool from_store, SimTime until);
  // Cuts the hosts with side[i] true from the others; the store stays with the first group
  // when `store_with_side`, with the second otherwise.
  void split(const std::vector<bool>& side, bool store_with_side, SimTime until);

  // When the last cut made so far heals.
  SimTime last_heal() const { return last_heal_; }
  // The links cut now, e.g. "node1-node2 node1-store", for traces.
  std::string describe(const std::vector<std::string>& names) const;

 private:
  int hosts_;
  const SimTime& now_;
  std::vector<SimTime> down_until_;  // (hosts + 1) x (hosts + 1)
  SimTime last_heal_{0};
};

}  // namespace tandem::sim
