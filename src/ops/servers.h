// Reaching the nodes of a cluster: admin connections, what each node is right now, and which
// one is the primary.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "core/timeline.h"
#include "ops/context.h"
#include "pg/connection.h"

namespace tandem {

// The superuser, as a node on any host reaches another: over the node's Unix socket (peer
// authentication through the ident map) on one machine; with nodes on several machines (etcd),
// over TCP to the node's address with the superuser's password from the password file.
std::string admin_conninfo(const ClusterConfig& config, const NodeConfig& node,
                           const std::string& database = "postgres");
// The superuser over the node's Unix socket, always: for an agent and its own node (no network
// in between, and before the superuser has a password).
std::string local_admin_conninfo(const ClusterConfig& config, const NodeConfig& node,
                                 const std::string& database = "postgres");
Result<Connection> connect_local_admin(const ClusterConfig& config, const NodeConfig& node,
                                       const std::string& database = "postgres");
Result<Connection> connect_admin(const ClusterConfig& config, const NodeConfig& node,
                                 const std::string& database = "postgres");

enum class NodeRunState { kStopped, kPrimary, kStandby, kUnreachable };

struct NodeProbe {
  NodeRunState state = NodeRunState::kStopped;
  std::string error;  // why it is unreachable
};

// What the node is: stopped (no postmaster), primary or standby (asked over SQL), or running
// but not answering.
NodeProbe probe_node(Context& context, const NodeConfig& node);

// The one running primary other than `except`; errors when none or several run.
Result<const NodeConfig*> find_primary(Context& context, std::string_view except = {});

// True when the directory does not exist or is empty.
bool is_absent_or_empty(const std::string& dir);

// Checks before creating a data directory: it must be absent or empty and its port free.
Status check_new_node(const NodeConfig& node);

// Waits up to `timeout` until `primary` reports `standby` streaming in pg_stat_replication
// and the standby receives the primary's timeline.
Status wait_streaming(Context& context, const NodeConfig& primary, const NodeConfig& standby,
                      std::chrono::milliseconds timeout);

enum class ServerRole { kPrimary, kStandby };

// Writes tandem.conf for the node, with primary_conninfo when `upstream_primary` is given, and
// creates standby.signal for a standby (removes it for a primary). A standby without upstream
// runs read-only, streaming from nobody.
Status write_node_files(Context& context, const NodeConfig& node,
                        const NodeConfig* upstream_primary, ServerRole role,
                        const std::string& synchronous_standby = "");
// The usual pairing: a standby of `upstream_primary`, or a primary when it is nullptr.
inline Status write_node_files(Context& context, const NodeConfig& node,
                               const NodeConfig* upstream_primary) {
  return write_node_files(context, node, upstream_primary,
                          upstream_primary ? ServerRole::kStandby : ServerRole::kPrimary);
}

}  // namespace tandem
