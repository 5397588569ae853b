// Gathering `tandem status`: every node's role and WAL positions, the primary's view of its
// standbys and its slots, and the warnings they deserve.
#pragma once

#include "core/status_report.h"
#include "ops/context.h"

namespace tandem {

// Never fails for a node that is down: that is a fact to report. Updates the state file with
// since when each slot has been inactive.
ClusterReport collect_status(Context& context);

}  // namespace tandem
