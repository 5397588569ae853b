// tandem history [--json]: every role change the agents recorded, oldest first.
#include <fmt/chrono.h>
#include <fmt/format.h>

#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "cli/table.h"
#include "core/role_transitions.h"
#include "dcs/cluster_layout.h"
#include "ops/store_access.h"

namespace tandem {
namespace {

std::string time_text(std::int64_t time_ms) {
  auto time = std::chrono::system_clock::time_point(std::chrono::milliseconds(time_ms));
  return fmt::format("{:%Y-%m-%d %H:%M:%S}", std::chrono::floor<std::chrono::milliseconds>(time));
}

Status print_history(CliState& state, bool json) {
  return with_session(state, [&](Context& context) -> Status {
    SystemClock clock;
    auto store = open_cluster_store(context.config, clock);
    if (!store) return std::unexpected(store.error());
    ClusterLayout layout(context.config.name);
    auto snapshot = (*store)->read(layout.history_prefix());
    if (!snapshot) return std::unexpected(snapshot.error());
    std::vector<HistoryEntry> entries = layout.history(*snapshot);
    if (json) {
      nlohmann::json out = nlohmann::json::array();
      for (const HistoryEntry& entry : entries)
        out.push_back(nlohmann::json::parse(encode_history(entry)));
      fmt::print("{}\n", out.dump(2));
      return {};
    }
    std::vector<std::vector<std::string>> rows;
    for (const HistoryEntry& entry : entries) {
      rows.push_back(
          {time_text(entry.time_ms), entry.from.empty() ? "-" : entry.from, entry.to,
           std::to_string(entry.timeline), entry.switch_lsn ? entry.switch_lsn->str() : "-",
           entry.lost_bytes ? std::to_string(*entry.lost_bytes) + " B" : "-", entry.reason});
    }
    fmt::print("{}",
               render_table({"TIME", "FROM", "TO", "TL", "SWITCH LSN", "LOST", "REASON"}, rows));
    return {};
  });
}

}  // namespace

void add_history_command(CLI::App& app, CliState& state) {
  app.add_subcommand("transitions", "Print the agent's role transition table (Mermaid)")
      ->callback([] { fmt::print("{}", transitions_diagram()); });
  auto* command = app.add_subcommand("history", "Every role change the agents made, and why");
  auto json = std::make_shared<bool>(false);
  command->add_flag("--json", *json, "Print JSON for scripts");
  command->callback([&state, json] { state.result = print_history(state, *json); });
}

}  // namespace tandem
