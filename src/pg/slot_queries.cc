#include "pg/slot_queries.h"

#include "pg/query_values.h"

namespace tandem {

Result<std::optional<bool>> slot_active(Connection& primary, const std::string& slot) {
  auto rows = primary.query("SELECT active FROM pg_replication_slots WHERE slot_name = $1", {slot});
  if (!rows) return std::unexpected(rows.error());
  if (rows->empty()) return std::optional<bool>();
  return std::optional<bool>(rows->text(0, "active") == "t");
}

Status drop_replication_slot(Connection& primary, const std::string& slot) {
  auto dropped = primary.query("SELECT pg_drop_replication_slot($1)", {slot});
  if (!dropped) return std::unexpected(dropped.error());
  return {};
}

Result<bool> slot_lost(Connection& primary, const std::string& slot) {
  auto rows = primary.query(
      "SELECT 1 FROM pg_replication_slots WHERE slot_name = $1 AND wal_status = 'lost'", {slot});
  if (!rows) return std::unexpected(rows.error());
  return !rows->empty();
}

Result<bool> ensure_slot(Connection& primary, const std::string& slot) {
  auto existing = primary.query(
      "SELECT coalesce(wal_status, '') AS status, active::text AS active FROM "
      "pg_replication_slots WHERE slot_name = $1",
      {slot});
  if (!existing) return std::unexpected(existing.error());
  if (!existing->empty() && existing->text(0, "status") != "lost") return false;
  if (!existing->empty()) {
    if (existing->text(0, "active") == "true") {
      return fail(ErrorCode::kConflict, "slot " + slot + " was invalidated but is still in use");
    }
    if (auto dropped = drop_replication_slot(primary, slot); !dropped) {
      return fail_with_context(dropped.error(), "dropping the invalidated slot " + slot);
    }
  }
  // immediately_reserve: the slot holds WAL from now on, before its standby first connects.
  auto created = primary.query("SELECT pg_create_physical_replication_slot($1, true)", {slot});
  if (!created) {
    // Another agent made it between the check and the creation (a new primary creates slots
    // for every node while the old primary's agent, rejoining, ensures its own): there it is.
    if (created.error().message.find("already exists") != std::string::npos) return false;
    return fail_with_context(created.error(), "creating slot " + slot);
  }
  return true;
}

Result<std::vector<SlotRow>> physical_slots(Connection& primary) {
  auto slots = primary.query(
      "SELECT slot_name, active, restart_lsn, wal_status, "
      "pg_current_wal_lsn() - restart_lsn AS retained, safe_wal_size "
      "FROM pg_replication_slots WHERE slot_type = 'physical' ORDER BY slot_name");
  if (!slots) return std::unexpected(slots.error());
  std::vector<SlotRow> result;
  for (std::size_t row = 0; row < slots->size(); ++row) {
    SlotRow slot{.name = slots->text(row, "slot_name"),
                 .active = slots->text(row, "active") == "t",
                 .restart_lsn = lsn_of(*slots, row, "restart_lsn"),
                 .wal_status = slots->text(row, "wal_status")};
    if (auto retained = number_of(*slots, row, "retained")) {
      slot.retained_bytes = static_cast<std::int64_t>(*retained);
    }
    if (auto safe = number_of(*slots, row, "safe_wal_size")) {
      slot.safe_wal_size = static_cast<std::int64_t>(*safe);
    }
    result.push_back(std::move(slot));
  }
  return result;
}

}  // namespace tandem
