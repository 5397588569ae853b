// tandem config set NAME=VALUE... | unset NAME... | show [--json]: the cluster's PostgreSQL
// settings, stored in the coordination store and applied by every agent.
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "cli/table.h"
#include "ops/cluster_settings.h"

namespace tandem {
namespace {

// How long `config set` waits for every running agent to apply the change.
constexpr std::chrono::seconds kApplyTimeout{15};

void print_behind(const SettingsApplied& applied) {
  if (applied.behind.empty()) return;
  fmt::print("not applied yet by the agent of {} (each applies it within a cycle of running)\n",
             fmt::join(applied.behind, ", "));
}

void print_applied(const SettingsApplied& applied) {
  std::vector<std::string> done;
  std::map<std::string, std::vector<std::string>> waiting;  // setting -> nodes
  for (const auto& [node, pending] : applied.pending_restart) {
    done.push_back(node);
    for (const std::string& name : pending) waiting[name].push_back(node);
  }
  if (!done.empty()) fmt::print("applied on {}\n", fmt::join(done, ", "));
  print_behind(applied);
  for (const auto& [name, nodes] : waiting) {
    fmt::print("{} waits for a restart on {}: tandem restart --all --pending\n", name,
               fmt::join(nodes, ", "));
  }
}

Status change(Context& context, const Result<SettingsChange>& changed) {
  if (!changed) return std::unexpected(changed.error());
  std::vector<std::string> lines;
  for (const auto& [name, value] : changed->stored.values) lines.push_back(name + "=" + value);
  fmt::print("stored for the cluster (revision {}): {}\n", changed->stored.revision,
             lines.empty() ? "no settings" : fmt::format("{}", fmt::join(lines, ", ")));
  auto applied = wait_settings_applied(context, changed->stored.revision, changed->need_restart,
                                       kApplyTimeout);
  if (!applied) return fail_with_context(applied.error(), "stored, but not seen applied");
  print_applied(*applied);
  for (const auto& [node, errors] : applied->refused) {
    for (const std::string& error : errors) fmt::print("{} refused {}\n", node, error);
  }
  if (!applied->refused.empty()) {
    return fail(ErrorCode::kFailed,
                "PostgreSQL refused a value (above): it keeps its old one, and would not start "
                "with this one — tandem config unset NAME, or set another value");
  }
  return {};
}

Status show(Context& context, bool json) {
  auto settings = read_cluster_settings(context);
  if (!settings) return std::unexpected(settings.error());
  auto applied = wait_settings_applied(context, settings->revision, {}, std::chrono::seconds(0));
  if (!applied) return std::unexpected(applied.error());
  if (json) {
    nlohmann::json out{{"revision", settings->revision},
                       {"settings", settings->values},
                       {"pending_restart", applied->pending_restart},
                       {"not_applied", applied->behind}};
    fmt::print("{}\n", out.dump(2));
    return {};
  }
  if (settings->values.empty()) {
    fmt::print("no settings for the cluster (tandem config set NAME=VALUE)\n");
    return {};
  }
  std::vector<std::vector<std::string>> rows;
  for (const auto& [name, value] : settings->values) {
    std::vector<std::string> waiting;
    for (const auto& [node, pending] : applied->pending_restart) {
      if (std::find(pending.begin(), pending.end(), name) != pending.end()) {
        waiting.push_back(node);
      }
    }
    rows.push_back(
        {name, value, waiting.empty() ? "-" : fmt::format("{}", fmt::join(waiting, ", "))});
  }
  fmt::print("{}", render_table({"NAME", "VALUE", "WAITS FOR A RESTART ON"}, rows));
  print_behind(*applied);
  return {};
}

}  // namespace

void add_config_command(CLI::App& app, CliState& state) {
  auto* command = app.add_subcommand(
      "config", "The cluster's PostgreSQL settings: stored once, applied by every agent");
  command->require_subcommand(1);
  auto assignments = std::make_shared<std::vector<std::string>>();
  auto* set = command->add_subcommand(
      "set", "Set NAME=VALUE ... for every node, checked against the server's pg_settings");
  set->add_option("assignments", *assignments, "NAME=VALUE")->required();
  set->callback([&state, assignments] {
    state.result = with_session(state, [&](Context& context) {
      return change(context, set_cluster_settings(context, *assignments));
    });
  });
  auto names = std::make_shared<std::vector<std::string>>();
  auto* unset = command->add_subcommand(
      "unset", "Remove NAME ... from the cluster's settings (each node's own file rules again)");
  unset->add_option("names", *names, "NAME")->required();
  unset->callback([&state, names] {
    state.result = with_session(state, [&](Context& context) {
      return change(context, unset_cluster_settings(context, *names));
    });
  });
  auto json = std::make_shared<bool>(false);
  auto* show_command =
      command->add_subcommand("show", "The cluster's settings, and where they wait for a restart");
  show_command->add_flag("--json", *json, "Print JSON for scripts");
  show_command->callback([&state, json] {
    state.result = with_session(state, [&](Context& context) { return show(context, *json); });
  });
}

}  // namespace tandem
