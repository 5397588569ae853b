// Making a standby: a copy of a running primary, started and streaming (tandem clone).
#pragma once

#include <optional>
#include <string>

#include "ops/context.h"

namespace tandem {

// pg_basebackup from `source` (default: the running primary) through a slot named after the
// node, then start it as a standby and wait until it streams. Refuses, changing nothing, when
// the data directory is in use, the port taken, or the primary refuses the replication role.
Status clone_standby(Context& context, const NodeConfig& node,
                     std::optional<std::string> source_name = std::nullopt);

// tandem clone NODE --from-backup [--set LABEL]: a standby made from the repository (backup:
// in the config) instead of a copy of the primary — the newest backup (or `set`) restored into
// the node's absent or empty data directory, its slot made on the primary first (the primary
// keeps the WAL from then on; what came before is in the archive), tandem's files, started as
// a standby that replays the archive to the primary's timeline (every timeline's history file
// is there) and then streams. Refused, changing nothing: no repository configured, no backup
// yet, an unknown set, the data directory in use.
Status clone_from_backup(Context& context, const NodeConfig& node, const std::string& set = "");

}  // namespace tandem
