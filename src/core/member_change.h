// Members at run time (`tandem member add|remove`): the cluster's config after one change, or
// why the change is refused. One change at a time, and nothing else changes with it: the
// replication settings stay the running ones (a change of max_wal_senders would need every
// PostgreSQL restarted), so the running agents can take the new member list without a restart.
// Pure.
#pragma once

#include <map>
#include <string>

#include "common/result.h"
#include "core/cluster_config.h"

namespace tandem {

// `config` plus `node`. Refused: a name, data directory or address already in use, a name that
// cannot name a slot, a cluster of one node (it runs without a watchdog, which a second node
// needs: restart its agent after adding), a cluster the running replication settings cannot
// carry one more node in, or, on several machines, an address outside replication.networks
// (pg_hba.conf would refuse its copy and its stream).
Result<ClusterConfig> plan_member_add(const ClusterConfig& config, const NodeConfig& node);

// `config` without the node `name`. Refused: an unknown node, the current leader (`leader`:
// switch over first), the last node.
Result<ClusterConfig> plan_member_remove(const ClusterConfig& config, const std::string& name,
                                         const std::string& leader);

// Several machines: whether a new member list may be written over `running` (its nodes and
// member_list), given what each agent last reported running (`acks`, by node). The agents count
// majorities over the list they run; two lists one member apart have intersecting majorities,
// any two further apart need not (an old primary, cut from etcd, writing on with two answers of
// three while three of five others prove it silent). So a change is written only once every
// agent of the running list reported running it, names and version, and at most two lists are
// ever counted over. `except`: the member being removed — behind, it is alone on its list (the
// agents answer only pings of their own list), which gives no majority.
Status every_agent_took(const ClusterConfig& running,
                        const std::map<std::string, MemberListAck>& acks,
                        const std::string& except);

// The acknowledgement an agent running `config` writes.
MemberListAck ack_of(const ClusterConfig& config);

}  // namespace tandem
