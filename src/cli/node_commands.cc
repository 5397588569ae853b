// tandem init | clone | promote | rejoin: one node at a time.
#include <fmt/format.h>

#include "cli/commands.h"
#include "ops/clone.h"
#include "ops/cluster_lock.h"
#include "ops/find_primary.h"
#include "ops/init.h"
#include "ops/promote.h"
#include "ops/rejoin.h"
#include "ops/store_access.h"
#include "pg/node_probe.h"

namespace tandem {
namespace {

// Opens the session, finds the node, runs `action` on it.
template <typename Action>
Status with_node(CliState& state, const std::string& node_name, Action action) {
  return with_session(state, [&](Context& context) -> Status {
    auto node = context.config.node(node_name);
    if (!node) return std::unexpected(node.error());
    return action(context, **node);
  });
}

// Like with_node, holding the cluster's command lock (ops/cluster_lock.h) throughout: one
// role-changing command by hand at a time.
template <typename Action>
Status with_locked_node(CliState& state, const std::string& node_name, const std::string& what,
                        Action action) {
  return with_node(state, node_name, [&](Context& context, const NodeConfig& target) -> Status {
    auto store = open_cluster_store(context.config, context.clock);
    if (!store) return std::unexpected(store.error());
    auto lock =
        ClusterLock::take(**store, ClusterLayout(context.config.name), what + " " + target.name);
    if (!lock) return std::unexpected(lock.error());
    return action(context, target, **store);
  });
}

std::string_view result_name(RejoinResult result) {
  switch (result) {
    case RejoinResult::kAlreadyStandby:
      return "already a standby";
    case RejoinResult::kFollowed:
      return "followed without rewind";
    case RejoinResult::kRewound:
      return "rewound with pg_rewind";
    case RejoinResult::kRecloned:
      return "recloned";
  }
  return "";
}

}  // namespace

void add_init_command(CLI::App& app, CliState& state) {
  auto* command = app.add_subcommand("init", "Create and start the primary NODE of the config");
  auto node = std::make_shared<std::string>();
  command->add_option("node", *node, "Node name from tandem.yaml")->required();
  command->callback([&state, node] {
    state.result = with_node(state, *node, [](Context& context, const NodeConfig& target) {
      fmt::print("init {}\n", target.name);
      return init_primary(context, target);
    });
  });
}

void add_clone_command(CLI::App& app, CliState& state) {
  auto* command = app.add_subcommand("clone", "Make NODE a streaming standby of the primary");
  auto node = std::make_shared<std::string>();
  auto from = std::make_shared<std::string>();
  auto from_backup = std::make_shared<bool>(false);
  auto set = std::make_shared<std::string>();
  command->add_option("node", *node, "Node name from tandem.yaml")->required();
  auto* from_option =
      command->add_option("--from", *from, "Copy from this node (default: the running primary)");
  command
      ->add_flag("--from-backup", *from_backup,
                 "Restore the newest backup of the repository instead, then replay the archive "
                 "and stream")
      ->excludes(from_option);
  command->add_option("--set", *set, "With --from-backup: this backup (see tandem backup list)");
  command->callback([&state, node, from, from_backup, set] {
    state.result =
        with_node(state, *node, [&](Context& context, const NodeConfig& target) -> Status {
          fmt::print("clone {}\n", target.name);
          if (*from_backup) return clone_from_backup(context, target, *set);
          if (!set->empty()) {
            return fail(ErrorCode::kInvalidArgument, "--set goes with --from-backup");
          }
          return clone_standby(context, target,
                               from->empty() ? std::nullopt : std::optional<std::string>(*from));
        });
  });
}

void add_promote_command(CLI::App& app, CliState& state) {
  auto* command = app.add_subcommand("promote", "Promote the standby NODE to primary");
  auto node = std::make_shared<std::string>();
  auto allow_data_loss = std::make_shared<bool>(false);
  command->add_option("node", *node, "Node name from tandem.yaml")->required();
  command->add_flag("--allow-data-loss", *allow_data_loss,
                    "Synchronous mode: promote NODE even if the sync record does not say it has "
                    "every acknowledged commit");
  command->callback([&state, node, allow_data_loss] {
    state.result = with_locked_node(
        state, *node, "promote", [&](Context& context, const NodeConfig& target, Store& store) {
          fmt::print("promote {}\n", target.name);
          return promote_standby(context, target, store, *allow_data_loss);
        });
  });
}

void add_rejoin_command(CLI::App& app, CliState& state) {
  auto* command =
      app.add_subcommand("rejoin", "Make NODE (a former primary) a standby of the primary");
  auto node = std::make_shared<std::string>();
  command->add_option("node", *node, "Node name from tandem.yaml")->required();
  command->callback([&state, node] {
    state.result = with_locked_node(
        state, *node, "rejoin", [](Context& context, const NodeConfig& target, Store&) {
          fmt::print("rejoin {}\n", target.name);
          auto outcome = rejoin_node(context, target);
          if (!outcome) return Status(std::unexpected(outcome.error()));
          fmt::print("{}: {}\n", target.name, result_name(outcome->result));
          if (outcome->diverged_from && outcome->diverged_to) {
            fmt::print("WAL written by {} after the failover, not on the primary: {} .. {}{}\n",
                       target.name, outcome->diverged_from->str(), outcome->diverged_to->str(),
                       outcome->moved_aside.empty() ? " (undone by pg_rewind)"
                                                    : " (kept in " + outcome->moved_aside + ")");
          }
          return Status();
        });
  });
}

void add_reinit_command(CLI::App& app, CliState& state) {
  auto* command = app.add_subcommand(
      "reinit", "Clone the standby NODE again from the primary (its old data is moved aside)");
  auto node = std::make_shared<std::string>();
  command->add_option("node", *node, "Node name from tandem.yaml")->required();
  command->callback([&state, node] {
    state.result = with_locked_node(
        state, *node, "reinit", [](Context& context, const NodeConfig& target, Store&) {
          fmt::print("reinit {}\n", target.name);
          if (probe_node(context.config, context.controller, target).state ==
              NodeRunState::kPrimary) {
            return Status(
                fail(ErrorCode::kConflict,
                     target.name + " runs as a primary: only a standby is reinitialized"));
          }
          auto primary = find_primary(context, target.name);
          if (!primary) {
            return Status(fail_with_context(primary.error(), "cannot reinitialize " + target.name));
          }
          auto aside = reinitialize_standby(context, target, **primary);
          if (!aside) return Status(std::unexpected(aside.error()));
          fmt::print("{} streams from {}; its old data is in {}\n", target.name, (*primary)->name,
                     *aside);
          return Status();
        });
  });
}

}  // namespace tandem
