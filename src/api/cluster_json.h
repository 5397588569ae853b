// The JSON documents of GET /cluster and GET /history: the cluster as the store shows it to
// this agent, and the leader changes recorded there.
#pragma once

#include <deque>
#include <nlohmann/json.hpp>
#include <vector>

#include "agent/agent_board.h"
#include "core/cluster_config.h"
#include "dcs/cluster_layout.h"

namespace tandem {

// {cluster, leader, paused, sync_standby (the first of sync_standbys), sync_standbys, timeline,
// store_reachable, members: [...], slots: [...]}
// Members are listed in config order; one without a live agent has state "unknown".
// Each member: name, role (leader | sync_standby | replica | none), state, host, port, api_url,
// timeline, received_lsn, replayed_lsn, upstream, lag_bytes, lag_seconds, nofailover.
// `now_ms`: the wall clock, for the last backup's age.
nlohmann::json cluster_json(const ClusterConfig& config, const std::optional<ClusterView>& view,
                            std::int64_t now_ms = 0);

nlohmann::json history_json(const std::vector<HistoryEntry>& history);

// {window_s, samples: [{t: ms, lag: {member: bytes}}]}
nlohmann::json lag_json(const std::deque<LagSample>& samples);

}  // namespace tandem
