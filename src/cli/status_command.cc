// tandem status [--json]: one table for the cluster, one for the slots, then warnings.
#include <fmt/chrono.h>
#include <fmt/format.h>

#include "cli/commands.h"
#include "cli/status_view.h"
#include "cli/table.h"
#include "common/units.h"
#include "ops/status.h"

namespace tandem {
namespace {

std::string lsn_text(const std::optional<Lsn>& lsn) { return lsn ? lsn->str() : "-"; }

std::string seconds_text(const std::optional<double>& seconds) {
  return seconds ? fmt::format("{:.3f}s", *seconds) : "-";
}

std::string time_text(const std::optional<WallTime>& time) {
  if (!time) return "-";
  return fmt::format("{:%Y-%m-%d %H:%M:%S}", std::chrono::floor<std::chrono::seconds>(*time));
}

std::vector<std::string> node_row(const NodeReport& node) {
  const ReplicationRow* replication = node.replication ? &*node.replication : nullptr;
  bool primary = node.role == NodeRole::kPrimary;
  return {node.name,
          node.endpoint,
          std::string(role_name(node.role)),
          node.detail,
          node.timeline ? std::to_string(*node.timeline) : "-",
          primary       ? lsn_text(node.wal_lsn)
          : replication ? lsn_text(replication->sent)
                        : "-",
          replication ? lsn_text(replication->write) : "-",
          replication ? lsn_text(replication->flush) : "-",
          replication ? lsn_text(replication->replay) : lsn_text(node.replay_lsn),
          node.lag_bytes ? format_size_human(*node.lag_bytes) : "-",
          replication ? seconds_text(replication->replay_lag_s) : "-",
          replication ? replication->sync_state : "-",
          time_text(node.last_replay_at)};
}

std::vector<std::string> slot_row(const SlotRow& slot) {
  return {slot.name,
          slot.active ? "yes" : "no",
          lsn_text(slot.restart_lsn),
          slot.retained_bytes ? format_size_human(*slot.retained_bytes) : "-",
          slot.wal_status.empty() ? "-" : slot.wal_status,
          slot.safe_wal_size ? format_size_human(*slot.safe_wal_size) : "-",
          slot.active ? "-" : time_text(slot.inactive_since)};
}

}  // namespace

std::string render_slots(const ClusterReport& report) {
  std::vector<std::vector<std::string>> rows;
  for (const SlotRow& slot : report.slots) rows.push_back(slot_row(slot));
  return render_table(
      {"SLOT", "ACTIVE", "RESTART LSN", "RETAINED", "WAL STATUS", "SAFE WAL", "INACTIVE SINCE"},
      rows);
}

void add_status_command(CLI::App& app, CliState& state) {
  auto* command = app.add_subcommand("status", "Show every node, the replication and the slots");
  auto json = std::make_shared<bool>(false);
  command->add_flag("--json", *json, "Print JSON for scripts");
  command->callback([&state, json] {
    auto session = Session::open(state.options);
    if (!session) {
      state.result = std::unexpected(session.error());
      return;
    }
    ClusterReport report = collect_status((*session)->context());
    if (*json) {
      fmt::print("{}\n", report_to_json(report).dump(2));
      return;
    }
    std::vector<std::vector<std::string>> rows;
    for (const NodeReport& node : report.nodes) rows.push_back(node_row(node));
    fmt::print("{}", render_table({"NODE", "ADDRESS", "ROLE", "STATE", "TL", "SENT/WAL", "WRITE",
                                   "FLUSH", "REPLAY", "LAG", "LAG TIME", "SYNC", "LAST REPLAY"},
                                  rows));
    if (report.agents) {
      const AgentsReport& agents = *report.agents;
      fmt::print("\nlease: {}{}{}; next primary if it fails: {}\n",
                 agents.leader.empty() ? "nobody" : agents.leader, agents.paused ? " (paused)" : "",
                 agents.synchronous_mode ? fmt::format(", synchronous standby: {}",
                                                       agents.sync_standby.value_or("none"))
                                         : "",
                 agents.candidates.empty() ? "nobody" : agents.candidates.front());
    }
    if (!report.slots.empty()) fmt::print("\n{}", render_slots(report));
    for (const std::string& warning : report.warnings) fmt::print("\nWARNING: {}", warning);
    if (!report.warnings.empty()) fmt::print("\n");
  });
}

}  // namespace tandem
