// tandem status [--json | --watch [INTERVAL]]: one table for the cluster, what each agent is
// doing (from its API), one table for the slots, then warnings.
#include <fmt/chrono.h>
#include <fmt/format.h>
#include <httplib.h>

#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "cli/status_view.h"
#include "cli/table.h"
#include "common/units.h"
#include "core/sync_plan.h"
#include "ops/status.h"
#include "ops/status_json.h"

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

namespace {

// What each agent is doing, from its API (/health): live state only the agent knows.
std::string render_agent_decisions(const ClusterConfig& config) {
  std::vector<std::vector<std::string>> rows;
  for (const NodeConfig& node : config.nodes) {
    std::string address = api_url(config, node);
    if (address.empty()) continue;
    httplib::Client client(address);
    client.enable_server_certificate_verification(false);
    client.set_connection_timeout(std::chrono::milliseconds(300));
    client.set_read_timeout(std::chrono::milliseconds(500));
    auto reply = client.Get("/health");
    auto body = reply ? nlohmann::json::parse(reply->body, nullptr, false) : nlohmann::json();
    if (!body.is_object()) {
      rows.push_back({node.name, "-", fmt::format("no answer from {}", address)});
      continue;
    }
    rows.push_back({node.name, body.value("last_decision", "?"), body.value("reason", "")});
  }
  if (rows.empty()) return "";
  return render_table({"AGENT", "LAST DECISION", "WHY"}, rows);
}

// `now_ms`: the wall clock, for the last backup's age.
std::string render_status(const ClusterConfig& config, const ClusterReport& report,
                          std::int64_t now_ms) {
  std::string out;
  std::vector<std::vector<std::string>> rows;
  for (const NodeReport& node : report.nodes) rows.push_back(node_row(node));
  out += render_table({"NODE", "ADDRESS", "ROLE", "STATE", "TL", "SENT/WAL", "WRITE", "FLUSH",
                       "REPLAY", "LAG", "LAG TIME", "SYNC", "LAST REPLAY"},
                      rows);
  if (report.agents) {
    const AgentsReport& agents = *report.agents;
    out += fmt::format(
        "\nlease: {}{}{}; next primary if it fails: {}\n",
        agents.leader.empty() ? "nobody" : agents.leader, agents.paused ? " (paused)" : "",
        agents.synchronous_mode
            ? fmt::format(", synchronous standby{}: {}{}",
                          agents.sync_standbys && agents.sync_standbys->size() > 1 ? "s" : "",
                          agents.sync_quorum ? fmt::format("any {} of ", *agents.sync_quorum) : "",
                          agents.sync_standbys && !agents.sync_standbys->empty()
                              ? join_names(*agents.sync_standbys)
                              : "none")
            : "",
        agents.candidates.empty() ? "nobody" : agents.candidates.front());
    std::string decisions = render_agent_decisions(config);
    if (!decisions.empty()) out += "\n" + decisions;
  }
  if (report.agents && report.agents->last_backup) {
    const LastBackup& last = *report.agents->last_backup;
    std::int64_t age_s = std::max<std::int64_t>(0, now_ms / 1000 - last.stopped_s);
    out += last.stopped_s == 0
               ? std::string("\nlast backup: none in the repository\n")
               : fmt::format("\nlast backup: {} ({}), ended {} ago\n", last.label, last.type,
                             format_duration(std::chrono::seconds(age_s)));
  }
  if (report.archiver) {
    const ArchiverRow& archiver = *report.archiver;
    out +=
        fmt::format("\narchive: last archived {}, {} failures{}\n",
                    archiver.last_archived_wal.empty() ? "nothing yet" : archiver.last_archived_wal,
                    archiver.failed_count, archiver.failing() ? " (failing now)" : "");
  }
  if (!report.slots.empty()) out += "\n" + render_slots(report);
  for (const std::string& warning : report.warnings) out += "\nWARNING: " + warning;
  if (!report.warnings.empty()) out += "\n";
  return out;
}

}  // namespace

void add_status_command(CLI::App& app, CliState& state) {
  auto* command = app.add_subcommand("status", "Show every node, the replication and the slots");
  auto json = std::make_shared<bool>(false);
  command->add_flag("--json", *json, "Print JSON for scripts");
  auto watch = std::make_shared<std::string>();
  command->add_option("--watch", *watch, "Refresh every INTERVAL (1s, 500ms) until Ctrl-C")
      ->expected(0, 1)
      ->default_str("1s");
  command->callback([&state, json, watch, command] {
    auto session = Session::open(state.options);
    if (!session) {
      state.result = std::unexpected(session.error());
      return;
    }
    bool watching = command->count("--watch") > 0;
    std::chrono::milliseconds interval{1000};
    if (watching && !watch->empty()) {
      auto parsed = parse_duration(*watch);
      if (!parsed || parsed->count() < 100) {
        state.result =
            fail(ErrorCode::kInvalidArgument,
                 fmt::format("--watch {}: give an interval of 100ms or more (1s, 500ms)", *watch));
        return;
      }
      interval = *parsed;
    }
    if (*json && watching) {
      state.result = fail(ErrorCode::kInvalidArgument, "--json and --watch do not go together");
      return;
    }
    const ClusterConfig& config = (*session)->config();
    if (*json) {
      Context& context = (*session)->context();
      fmt::print("{}\n",
                 report_to_json(collect_status(context), wall_ms_of(context.clock)).dump(2));
      return;
    }
    if (!watching) {
      fmt::print("{}", render_status(config, collect_status((*session)->context()),
                                     wall_ms_of((*session)->clock())));
      return;
    }
    Clock& clock = (*session)->context().clock;
    while (true) {
      std::string screen = render_status(config, collect_status((*session)->context()),
                                         wall_ms_of((*session)->clock()));
      auto now = std::chrono::floor<std::chrono::seconds>(clock.wall_now());
      // Home, clear: the whole screen is redrawn at once.
      fmt::print("\033[H\033[2J{} -- every {}, Ctrl-C to stop -- {:%H:%M:%S}\n\n{}", config.name,
                 format_duration(interval), now, screen);
      std::fflush(stdout);
      clock.sleep_for(interval);
    }
  });
}

}  // namespace tandem
