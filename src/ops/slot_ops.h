// Replication slots on the primary: dropping one, and cleaning up the abandoned.
#pragma once

#include <string>
#include <vector>

#include "ops/context.h"

namespace tandem {

// Drops an inactive slot on the primary. Refuses an active one, and an unknown one.
Status drop_slot(Context& context, const std::string& slot);

// Drops every inactive slot whose WAL is already lost, or that has had no standby for longer
// than `gone_longer_than`. With dry_run, only says which. Returns the slots (to be) dropped.
Result<std::vector<std::string>> cleanup_slots(Context& context,
                                               std::chrono::milliseconds gone_longer_than,
                                               bool dry_run);

}  // namespace tandem
