// Members at run time (`tandem member add|remove`): the cluster's config after one change, or
// why the change is refused. One change at a time, and nothing else changes with it: the
// replication settings stay the running ones (a change of max_wal_senders would need every
// PostgreSQL restarted), so the running agents can take the new member list without a restart.
// Pure.
#pragma once

#include <string>

#include "common/result.h"
#include "core/cluster_config.h"

namespace tandem {

// `config` plus `node`. Refused: a name, data directory or address already in use, a name that
// cannot name a slot, a cluster on several machines (its agents fence by counting each other:
// a change there needs every agent to agree on the members first, not built yet), a cluster of
// one node (it runs without a watchdog, which a second node needs: restart its agent after
// adding), or a cluster the running replication settings cannot carry one more node in.
Result<ClusterConfig> plan_member_add(const ClusterConfig& config, const NodeConfig& node);

// `config` without the node `name`. Refused: an unknown node, the current leader (`leader`:
// switch over first), the last node, a cluster on several machines.
Result<ClusterConfig> plan_member_remove(const ClusterConfig& config, const std::string& name,
                                         const std::string& leader);

}  // namespace tandem
