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

}  // namespace tandem
