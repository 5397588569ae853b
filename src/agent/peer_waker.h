// PeerWaker: wakes other agents' sleep between two cycles. A standby at rest sleeps until a
// cycle before the lease can lapse (core/observe_rest.h, rest_sleep); a leader that ends the
// lease sooner (hands it over in a switchover or a clean stop, releases it) wakes the others, so
// that the one it hands it to promotes at its next cycle, not after its sleep. Best effort: a
// wake lost costs that sleep's time, never safety.
#pragma once

#include <string>
#include <vector>

#include "core/cluster_config.h"

namespace tandem {

class PeerWaker {
 public:
  virtual ~PeerWaker() = default;
  // Wakes each of `nodes` at once (in parallel), the first of them tried twice; returns those
  // whose agent said it was woken. Returns within a short timeout whatever the peers do.
  virtual std::vector<std::string> wake(const std::vector<std::string>& nodes) = 0;
};

// POST /wake to each node's API, without the token (/wake needs none: it changes nothing but
// when the next cycle runs, and the token is never sent to a port another local user may hold
// while that agent is down); 50 ms per step at most.
class HttpPeerWaker final : public PeerWaker {
 public:
  explicit HttpPeerWaker(const ClusterConfig& config) : config_(config) {}
  std::vector<std::string> wake(const std::vector<std::string>& nodes) override;

 private:
  bool wake_one(const std::string& node) const;
  ClusterConfig config_;
};

// A request written to the store (a switchover, a failover): every agent but `except` is woken,
// `first` first, one machine only (elsewhere nobody rests), best effort.
void wake_agents(const ClusterConfig& config, const std::string& except = "",
                 const std::string& first = "");

}  // namespace tandem
