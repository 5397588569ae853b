// PeerWaker: wakes another agent's sleep between two cycles. A standby at rest sleeps until a
// cycle before the lease can lapse (core/observe_rest.h, rest_sleep); a leader that hands it the
// lease sooner (a switchover, a clean stop) wakes it, so that it promotes at its next cycle, not
// after its sleep. Best effort: a wake lost costs that sleep's time, never safety.
#pragma once

#include <string>

#include "core/cluster_config.h"

namespace tandem {

class PeerWaker {
 public:
  virtual ~PeerWaker() = default;
  // Whether the node's agent said it was woken. Returns at once or within a short timeout,
  // whatever the peer does.
  virtual bool wake(const std::string& node) = 0;
};

// POST /wake to the node's API, with the cluster's API token; a tenth of a second at most.
class HttpPeerWaker final : public PeerWaker {
 public:
  // Reads api.token_file now; without a token there is nothing to send (every POST is refused).
  explicit HttpPeerWaker(const ClusterConfig& config);
  bool wake(const std::string& node) override;
  bool can_wake() const { return !token_.empty(); }

 private:
  ClusterConfig config_;
  std::string token_;
};

// A request written to the store (a switchover, a failover): every agent but `except` is woken,
// one machine only (elsewhere nobody rests), best effort.
void wake_agents(const ClusterConfig& config, const std::string& except = "");

}  // namespace tandem
