// `tandem adopt` on one machine: running servers tandem did not create — a primary and the
// standbys that stream from it, built by hand as the walk-through does — become a tandem cluster
// in place. Their data, roles, passwords and slots are kept; no data is copied.
#pragma once

#include <string>
#include <vector>

#include "core/adopt_plan.h"
#include "ops/context.h"

namespace tandem {

// Carries out `plan` (its config is context.config, written to config_path), one step after the
// other, each done only if not done yet, so that running it again after an interruption
// finishes the job:
//  1. tandem's files beside the config (the API token, the replication role's password when
//     the standbys' primary_conninfo held one);
//  2. each node: tandem.conf included from postgresql.conf, primary_conninfo and
//     primary_slot_name moved out of postgresql.auto.conf into it, pg_hba.conf and pg_ident.conf
//     given tandem's superuser line only if the superuser cannot connect without it; reloaded;
//     each standby streaming again;
//  3. the store: the cluster initialised by its primary, which holds the lease (no TTL until its
//     agent renews it, so that nobody takes over before that agent runs); the adoption in the
//     history;
//  4. the agents, one node at a time, never two down at once: each standby's agent restarts it
//     (tandem's settings, wal_log_hints among them, take a restart) and it streams again before
//     the next; then the primary's agent restarts it in place (after a checkpoint).
// `servers` are the facts the plan was made of, in the order of the config's nodes.
Status adopt_servers(Context& context, const std::string& config_path, const AdoptionPlan& plan,
                     const std::vector<ServerFacts>& servers);

// `tandem adopt --node NAME` on the node's own host, nodes on several machines (etcd), the
// config (the same file on every host) written by the person. The primary's host goes first:
// tandem's lines first in pg_hba.conf (the superuser over the socket, the replication role and
// the superuser between the nodes), the superuser's password (set from the password file, or
// made and kept there, when it has none), every standby's slot, tandem.conf, the store told that
// it leads; then it waits for the standbys. Each standby's host, once the store knows the
// cluster: the same files, streaming from the primary as tandem says, then its agent restarts
// it. The primary's agent restarts it last, in place. One node restarts at a time across the
// hosts (the store's adopt_turn). Each step is done only if not done yet: run again after an
// interruption, it finishes the job. `adoption` is what plan_node_adoption made of `server`;
// `step` what check_node_adoption found.
enum class NodeAdoptionStep { kPrimary, kPrimaryResumed, kStandby, kStandbyResumed };
Status adopt_node(Context& context, const std::string& config_path, const NodeConfig& node,
                  const ServerFacts& server, const NodeAdoption& adoption, NodeAdoptionStep step);
// Where adopt_node would start for this node, or why it is refused, changing nothing: the
// store knows another primary; a standby before its primary (the store does not know the
// cluster yet) or streaming from another node than the leader; the password file without the
// replication role's password (nor the standby's primary_conninfo), or, on a standby's host,
// without the superuser's.
Result<NodeAdoptionStep> check_node_adoption(Context& context, const std::string& config_path,
                                             const NodeConfig& node, const NodeAdoption& adoption);

// A second run (an adoption interrupted) keeps the names, the cluster and the API ports the
// first one wrote to `existing` (a standby's slot name, read from postgresql.auto.conf the first
// time, is no longer there); refused when `existing` describes other servers.
Status resume_options(const ClusterConfig& existing, const std::vector<ServerFacts>& servers,
                      AdoptOptions& options, const std::string& path);

// tandem's directory (root's, 0755), the log directory (the OS user's) and the config (root's,
// 0644, unless it exists).
Status write_adopted_config(const ClusterConfig& config, const std::string& dir,
                            const std::string& path);

}  // namespace tandem
