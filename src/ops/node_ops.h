// Making nodes: a new primary (init) and a standby cloned from a running primary (clone).
#pragma once

#include <optional>
#include <string>

#include "ops/context.h"

namespace tandem {

// initdb (checksums, UTF-8, no locale), tandem's settings and pg_hba, the replication role
// (and the app role and database if configured) with passwords kept in the password file,
// then start. Refuses, changing nothing, when the data directory is in use or the port taken.
Status init_primary(Context& context, const NodeConfig& node);

// pg_basebackup from `source` (default: the running primary) through a slot named after the
// node, then start it as a standby and wait until it streams. Refuses, changing nothing, when
// the data directory is in use, the port taken, or the primary refuses the replication role.
Status clone_standby(Context& context, const NodeConfig& node,
                     std::optional<std::string> source_name = std::nullopt);

// Makes the data directory (0700) and the socket and log directories, all owned by the OS
// user, after checking that the OS user can reach them. Shared by init and clone.
Status prepare_dirs(Context& context, const NodeConfig& node);

// Checks that the replication role can open a replication connection to `primary`.
Status check_replication_login(const ClusterConfig& config, const NodeConfig& primary);

}  // namespace tandem
