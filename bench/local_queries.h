// Reaching the nodes of a local cluster from outside tandem, as its clients would: shared by
// the benchmarks and the integration tests.
#pragma once

#include <optional>
#include <string>

#include "core/cluster_config.h"

namespace tandem::bench {

// The superuser on one node, over its Unix socket, in test_app.
std::string node_conninfo(const ClusterConfig& config, const std::string& node);
// Every node at once with target_session_attrs=read-write: how clients find the primary.
std::string any_primary_conninfo(const ClusterConfig& config);
// The single value (column "v") a query returns on a node; nullopt on any error or no row.
std::optional<std::string> query_value(const ClusterConfig& config, const std::string& node,
                                       const std::string& query);
// The one node that accepts writes, or "" when none or several do.
std::string writable_node(const ClusterConfig& config);
// Whether `primary` reports `standby` streaming.
bool streams(const ClusterConfig& config, const std::string& primary, const std::string& standby);

}  // namespace tandem::bench
