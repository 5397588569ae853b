// GET /metrics: the agent's view in Prometheus' text exposition format (version 0.0.4).
// Names are tandem_<what>[_<unit>], base units (bytes, seconds), counters end in _total.
#pragma once

#include <chrono>
#include <string>
#include <vector>

#include "agent/agent_board.h"
#include "dcs/cluster_layout.h"

namespace tandem {

struct MetricsInput {
  std::string self;
  const AgentSnapshot& snapshot;
  // The leader changes recorded in the store (nullopt: the store was unreachable).
  std::optional<std::vector<HistoryEntry>> history;
};

std::string render_metrics(const MetricsInput& input);

}  // namespace tandem
