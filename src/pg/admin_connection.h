// Connecting to a node as tandem does: the superuser over the node's Unix socket or, with nodes
// on several machines, over TCP; and checking the replication role's login.
#pragma once

#include <map>
#include <string>

#include "core/cluster_config.h"
#include "pg/connection.h"

namespace tandem {

// A connection over TCP with postgresql.tls configured: TLS, the server's certificate checked
// against the CA and its address (sslmode=verify-full, sslrootcert). Unchanged without it.
std::map<std::string, std::string> with_tls(const ClusterConfig& config,
                                            std::map<std::string, std::string> parameters);

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

// Checks that the replication role can open a replication connection to `primary`.
Status check_replication_login(const ClusterConfig& config, const NodeConfig& primary);

}  // namespace tandem
