// What a node is right now (stopped, primary, standby or not answering), and waiting until a
// standby streams from its primary.
#pragma once

#include <chrono>
#include <string>

#include "common/clock.h"
#include "core/cluster_config.h"
#include "pg/node_controller.h"

namespace tandem {

enum class NodeRunState { kStopped, kPrimary, kStandby, kUnreachable };

struct NodeProbe {
  NodeRunState state = NodeRunState::kStopped;
  std::string error;  // why it is unreachable
};

// What the node is: stopped (no postmaster), primary or standby (asked over SQL), or running
// but not answering.
NodeProbe probe_node(const ClusterConfig& config, NodeController& controller,
                     const NodeConfig& node);

// Waits up to `timeout` until `primary` reports `standby` streaming in pg_stat_replication
// and the standby receives the primary's timeline. Gives up at once (kUnavailable) when
// `primary` is in recovery: it handed over meanwhile, and nobody streams from it as a primary;
// and when `primary` has refused every connection for kUpstreamGoneAfter: it stopped (a clean
// stop that handed the lease over, a crash), and the standby follows whoever leads next rather
// than waiting out `timeout` for it.
inline constexpr std::chrono::milliseconds kUpstreamGoneAfter{5000};
Status wait_streaming(const ClusterConfig& config, Clock& clock, const NodeConfig& primary,
                      const NodeConfig& standby, std::chrono::milliseconds timeout);

}  // namespace tandem
