// `tandem local`: the walk-through's topology on one machine, in one directory — a primary and
// N standbys on consecutive ports, config, passwords, sockets and logs beside them.
#pragma once

#include <optional>
#include <string>

#include "core/cluster_config.h"
#include "ops/context.h"

namespace tandem {

struct LocalLayout {
  std::string dir;  // absolute
  int standbys = 2;
  int base_port = 5432;
  int api_base_port = 0;  // 0: base_port + 2576 (8008 for 5432, as Patroni's default)
  std::string os_user = "postgres";
  std::string pg_bin;
  bool app = true;     // create the walk-through's test_app role and database
  bool agents = true;  // an agent per node (automatic failover); false: manual operation
  std::int64_t max_slot_wal_keep_size = ReplicationConfig{}.max_slot_wal_keep_size;
};

// node1 on base_port (the primary), node2.. on the following ports, all under `dir`; their
// agents' APIs on api_base_port and the following ports, the token in dir/api.token.
ClusterConfig local_config(const LocalLayout& layout);

// Brings every node up. With agents (ha.agents), starts an agent per node and waits until
// they have bootstrapped, cloned and started everything. Without, a missing primary is
// initialised, missing standbys are cloned, stopped nodes are started (primary first).
Status local_up(Context& context, const std::string& config_path);

// Starts the named node, or every stopped node (primary first) — its agent, with agents.
Status local_start(Context& context, const std::string& config_path,
                   const std::optional<std::string>& node);
// Stops the named node, or every running node. With agents: their agents (standbys first),
// which stop their PostgreSQL cleanly; kImmediate kills a node's agent and PostgreSQL together,
// as a host crash does.
Status local_stop(Context& context, const std::optional<std::string>& node, StopMode mode);
// Kills only the postmaster of a node (its agent, if any, lives on).
Status local_kill_postgres(Context& context, const std::string& node);

}  // namespace tandem
