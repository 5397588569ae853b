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
#include "core/cluster_view.h"

namespace tandem {

// `config` plus `node`. Refused: a name, data directory or address already in use, a name that
// cannot name a slot, a cluster of one node (it runs without a watchdog, which a second node
// needs: restart its agent after adding), a cluster the running replication settings cannot
// carry one more node in, or, on several machines, an address outside replication.networks
// (pg_hba.conf would refuse its copy and its stream).
Result<ClusterConfig> plan_member_add(const ClusterConfig& config, const NodeConfig& node);

// `config` without the node `name`, the cluster being as `view` says. Refused: an unknown
// node, the current leader (switch over first), a node the `sync` record names (synchronous
// mode: the standby and the leader that named it are the only ones known to have every
// acknowledged commit — removed, nobody else could lead), the last node, the last but one on
// several machines.
// Several machines: no member is added or removed while `tandem adopt --node` runs (the store's
// adopting mark): its hosts wait for the members the config named.
Status no_adoption_under_way(const ClusterView& view);

Result<ClusterConfig> plan_member_remove(const ClusterConfig& config, const std::string& name,
                                         const ClusterView& view);

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

// Whether the change to `running`'s list is over for counting: every member of the list before
// it (previous_members) but one runs a later list (or said it left, removed). A primary still
// on the old list then has nobody there to back it — an agent backs only agents of its own
// list — and a taker still on it re-reads the list before it takes over; so, once what that
// last one counted has lapsed (proof_of_fencing), the agents count over the new list alone
// (ContactBook::end_change). Two left behind (a host away, a removed agent frozen) keep the
// change under way.
bool previous_list_left(const ClusterConfig& running,
                        const std::map<std::string, MemberListAck>& acks);

// The acknowledgement an agent running `config` writes.
MemberListAck ack_of(const ClusterConfig& config);

// `config` with the store's member list: its nodes, version and previous names. A node's
// nofailover stays the one `config` says (each host's tandem.yaml speaks for its own node).
ClusterConfig with_member_list(const ClusterConfig& config, const MemberList& list);

// Whether a running agent takes `list` over the one it runs: the next version, one member
// added or removed, every other member as it was (a member that moved is its agent's and
// PostgreSQL's restart). Anything else was not written by `tandem member`: not taken. A later
// version than the next is taken as a restart takes it (an agent left behind: removed, then
// added back while away; the others ran on without it): with a fresh contact book.
Status takes_member_list(const ClusterConfig& running, const MemberList& list);

}  // namespace tandem
