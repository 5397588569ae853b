// The primary's physical replication slots: whether one is in use or lost, creating and dropping
// one, and the list `tandem status` shows.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "core/status_report.h"
#include "pg/connection.h"

namespace tandem {

// Whether `slot` has a standby streaming from it right now; nullopt when there is no such slot.
Result<std::optional<bool>> slot_active(Connection& primary, const std::string& slot);

// Drops `slot`; the server's error as it is (PostgreSQL refuses an active slot).
Status drop_replication_slot(Connection& primary, const std::string& slot);

// Creates the physical slot on `primary` unless it exists; returns whether it created it. A slot
// that was invalidated (wal_status lost: it can never serve again) is dropped and created anew.
Result<bool> ensure_slot(Connection& primary, const std::string& slot);

// Whether `slot` on `primary` was invalidated: the WAL its standby needs is gone.
Result<bool> slot_lost(Connection& primary, const std::string& slot);

// Every physical slot, by name, with the WAL it retains and how much more it may (no
// inactive_since: only tandem remembers that).
Result<std::vector<SlotRow>> physical_slots(Connection& primary);

}  // namespace tandem
