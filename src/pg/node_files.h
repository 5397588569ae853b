// A node's directories and the files tandem writes into its data directory at every change of
// role: checks before a data directory is made, making it, tandem.conf and standby.signal.
#pragma once

#include <string>
#include <vector>

#include "common/result.h"
#include "core/cluster_config.h"
#include "proc/os_user.h"

namespace tandem {

// True when the directory does not exist or is empty.
bool is_absent_or_empty(const std::string& dir);

// Checks before creating a data directory: it must be absent or empty and its port free.
Status check_new_node(const NodeConfig& node);

// Makes the data directory (0700) and the socket and log directories, all owned by the OS
// user, after checking that the OS user can reach them. Shared by init and clone.
Status prepare_dirs(const ClusterConfig& config, const OsUser& os_user, const NodeConfig& node);

enum class ServerRole { kPrimary, kStandby };

// Writes tandem.conf for the node, with primary_conninfo when `upstream_primary` is given, and
// creates standby.signal for a standby (removes it for a primary). A standby without upstream
// runs read-only, streaming from nobody.
Status write_node_files(const ClusterConfig& config, const OsUser& os_user, const NodeConfig& node,
                        const NodeConfig* upstream_primary, ServerRole role,
                        const std::vector<std::string>& synchronous_standbys = {},
                        int synchronous_any = 0);
// The usual pairing: a standby of `upstream_primary`, or a primary when it is nullptr.
inline Status write_node_files(const ClusterConfig& config, const OsUser& os_user,
                               const NodeConfig& node, const NodeConfig* upstream_primary) {
  return write_node_files(config, os_user, node, upstream_primary,
                          upstream_primary ? ServerRole::kStandby : ServerRole::kPrimary);
}

}  // namespace tandem
