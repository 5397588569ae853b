#include "core/status_report.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "common/units.h"
#include "core/sync_plan.h"

namespace tandem {

std::string_view role_name(NodeRole role) {
  switch (role) {
    case NodeRole::kPrimary:
      return "primary";
    case NodeRole::kStandby:
      return "standby";
    case NodeRole::kStopped:
      return "stopped";
    case NodeRole::kUnreachable:
      return "unreachable";
  }
  return "unknown";
}

std::map<std::string, WallTime> track_inactive_slots(
    const std::map<std::string, WallTime>& previous, const std::vector<SlotRow>& slots,
    WallTime now) {
  std::map<std::string, WallTime> inactive;
  for (const SlotRow& slot : slots) {
    if (slot.active) continue;
    auto known = previous.find(slot.name);
    inactive[slot.name] = known == previous.end() ? now : known->second;
  }
  return inactive;
}

namespace {

void assess_nodes(const ClusterReport& report, std::vector<std::string>& warnings) {
  int primaries = 0;
  for (const NodeReport& node : report.nodes) {
    if (node.role == NodeRole::kPrimary) ++primaries;
  }
  for (const NodeReport& node : report.nodes) {
    for (const std::string& error : node.configuration_errors) {
      warnings.push_back(fmt::format(
          "{}'s PostgreSQL did not apply a line of its configuration: {}", node.name, error));
    }
    if (!node.pending_restart.empty()) {
      warnings.push_back(
          fmt::format("{} waits for a restart to apply {} (tandem restart --all --pending)",
                      node.name, fmt::join(node.pending_restart, ", ")));
    }
  }
  if (primaries == 0) warnings.push_back("no primary is running: writes are impossible");
  if (primaries > 1) {
    warnings.push_back(
        fmt::format("{} nodes accept writes: split brain, stop all but one", primaries));
  }
  if (primaries != 1) return;
  for (const NodeReport& node : report.nodes) {
    if (node.role != NodeRole::kStandby) continue;
    if (!node.replication || node.replication->state != "streaming") {
      warnings.push_back(fmt::format("standby {} is not streaming from the primary {}", node.name,
                                     *report.primary));
    }
  }
}

void assess_slot(const SlotRow& slot, const ClusterConfig& config, WallTime now,
                 std::vector<std::string>& warnings) {
  if (slot.wal_status == "lost") {
    warnings.push_back(fmt::format(
        "slot {} was invalidated: it held more than max_slot_wal_keep_size ({}) and the WAL is "
        "gone; its standby must be cloned again: its agent does so when it finds it not "
        "streaming, by hand `tandem rejoin {}` or `tandem reinit {}` (the old data is moved "
        "aside)",
        slot.name, format_size_exact(config.replication.max_slot_wal_keep_size), slot.name,
        slot.name));
    return;
  }
  if (slot.wal_status == "unreserved") {
    warnings.push_back(fmt::format(
        "slot {} holds more than max_slot_wal_keep_size: it will be invalidated at the next "
        "checkpoint",
        slot.name));
  }
  if (slot.retained_bytes && *slot.retained_bytes > config.status.slot_retained_warning) {
    warnings.push_back(fmt::format("slot {} retains {} of WAL (warning above {})", slot.name,
                                   format_size_human(*slot.retained_bytes),
                                   format_size_human(config.status.slot_retained_warning)));
  }
  if (!slot.active && slot.inactive_since) {
    auto gone = std::chrono::duration_cast<std::chrono::milliseconds>(now - *slot.inactive_since);
    if (gone > config.status.standby_gone_warning) {
      warnings.push_back(fmt::format(
          "slot {} has had no standby for {} (warning after {}): drop it with `tandem slot drop "
          "{}` if it is not coming back",
          slot.name, format_duration(std::chrono::duration_cast<std::chrono::seconds>(gone)),
          format_duration(config.status.standby_gone_warning), slot.name));
    }
  }
  if (config.find_node(slot.name) == nullptr) {
    warnings.push_back(fmt::format("slot {} belongs to no node of this cluster", slot.name));
  }
}

void assess_agents(const ClusterReport& report, std::vector<std::string>& warnings) {
  if (!report.agents) return;
  const AgentsReport& agents = *report.agents;
  if (agents.synchronous_mode && !agents.leader.empty() &&
      (!agents.sync_standbys || agents.sync_standbys->empty())) {
    warnings.push_back(agents.synchronous_strict
                           ? "no synchronous standby is named: commits wait until a standby has "
                             "caught up (synchronous_mode_strict)"
                           : "no synchronous standby is named: commits go on unprotected, and "
                             "no standby may take over until one has caught up");
  } else if (agents.synchronous_mode && !agents.leader.empty() &&
             agents.sync_standbys->size() <
                 static_cast<std::size_t>(agents.synchronous_node_count)) {
    warnings.push_back(
        fmt::format("{} of {} synchronous standbys named ({}): a commit is on fewer standbys than "
                    "ha.synchronous_node_count asks until another streams and has caught up",
                    agents.sync_standbys->size(), agents.synchronous_node_count,
                    join_names(*agents.sync_standbys)));
  }
  if (agents.paused) {
    warnings.push_back("paused: the agents take no automatic action (tandem resume)");
  }
  if (agents.leader.empty()) {
    warnings.push_back("no agent holds the lease");
  } else if (report.primary && *report.primary != agents.leader) {
    warnings.push_back(
        fmt::format("{} accepts writes but {} holds the lease", *report.primary, agents.leader));
  }
  if (!agents.leader.empty() && agents.candidates.empty()) {
    std::string why;
    for (const std::string& reason : agents.not_eligible) why += "; " + reason;
    warnings.push_back(fmt::format("no standby may take over if {} fails{}", agents.leader, why));
  }
}

// A failing archive_command is no silent disk filling with WAL.
void assess_archiver(const ClusterReport& report, std::vector<std::string>& warnings) {
  if (!report.archiver || !report.archiver->failing()) return;
  const ArchiverRow& archiver = *report.archiver;
  warnings.push_back(fmt::format(
      "{}'s WAL archiving fails ({} failures, the last for {}): its WAL stays in pg_wal until an "
      "archive_command succeeds (see its log; tandem backup check)",
      report.primary.value_or("the primary"), archiver.failed_count, archiver.last_failed_wal));
}

}  // namespace

std::vector<std::string> assess(const ClusterReport& report, const ClusterConfig& config,
                                WallTime now) {
  std::vector<std::string> warnings;
  assess_nodes(report, warnings);
  assess_agents(report, warnings);
  assess_archiver(report, warnings);
  for (const SlotRow& slot : report.slots) assess_slot(slot, config, now, warnings);
  return warnings;
}

}  // namespace tandem
