#include "ops/slot_ops.h"

#include <fmt/format.h>

#include "ops/find_primary.h"
#include "ops/status.h"
#include "pg/admin_connection.h"
#include "pg/slot_queries.h"

namespace tandem {

Status drop_slot(Context& context, const std::string& slot) {
  auto primary = find_primary(context);
  if (!primary) return std::unexpected(primary.error());
  auto admin = connect_admin(context.config, **primary);
  if (!admin) return std::unexpected(admin.error());
  auto active = slot_active(*admin, slot);
  if (!active) return std::unexpected(active.error());
  if (!*active) {
    return fail(ErrorCode::kNotFound,
                fmt::format("no slot named '{}' on the primary {}", slot, (*primary)->name));
  }
  if (**active) {
    return fail(
        ErrorCode::kConflict,
        fmt::format("slot {} is in use by a streaming standby: stop that standby first", slot));
  }
  if (auto dropped = drop_replication_slot(*admin, slot); !dropped) {
    return std::unexpected(dropped.error());
  }
  context.report(fmt::format("dropped slot {} on {}", slot, (*primary)->name));
  return {};
}

Result<std::vector<std::string>> cleanup_slots(Context& context,
                                               std::chrono::milliseconds gone_longer_than,
                                               bool dry_run) {
  ClusterReport report = collect_status(context);
  if (!report.primary) return fail(ErrorCode::kUnavailable, "no primary is running");
  WallTime now = context.clock.wall_now();
  std::vector<std::string> chosen;
  for (const SlotRow& slot : report.slots) {
    if (slot.active) continue;
    bool lost = slot.wal_status == "lost";
    bool abandoned = slot.inactive_since && now - *slot.inactive_since > gone_longer_than;
    if (!lost && !abandoned) continue;
    chosen.push_back(slot.name);
    std::string why = lost ? "its WAL is already lost" : "no standby for too long";
    if (dry_run) {
      context.report(fmt::format("would drop slot {}: {}", slot.name, why));
    } else if (auto ok = drop_slot(context, slot.name); !ok) {
      return std::unexpected(ok.error());
    }
  }
  return chosen;
}

}  // namespace tandem
