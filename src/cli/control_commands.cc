// tandem switchover | failover | pause | resume: requests to the agents, through the store.
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "cli/commands.h"
#include "dcs/cluster_layout.h"
#include "dcs/sqlite_store.h"
#include "ops/servers.h"

namespace tandem {
namespace {

using std::chrono::milliseconds;

struct StoreAccess {
  SystemClock clock;
  std::unique_ptr<SqliteStore> store;
  ClusterLayout layout;
};

Result<std::unique_ptr<StoreAccess>> open_store(const ClusterConfig& config) {
  auto access = std::make_unique<StoreAccess>(StoreAccess{{}, nullptr, ClusterLayout(config.name)});
  auto store = SqliteStore::open(config.store_file, access->clock);
  if (!store) return std::unexpected(store.error());
  access->store = std::move(*store);
  return access;
}

bool accepts_writes(const ClusterConfig& config, const NodeConfig& node) {
  auto connection = connect_admin(config, node);
  return connection && connection->query("SELECT pg_current_xact_id()").has_value();
}

// Writes the request, then waits until a node other than `old_leader` leads and takes writes.
Status request_and_wait(Context& context, StoreAccess& access, const SwitchoverRequest& request,
                        const std::string& old_leader) {
  if (auto put = access.store->put(access.layout.switchover(), encode_switchover(request),
                                   std::chrono::seconds(30));
      !put) {
    return std::unexpected(put.error());
  }
  auto asked = context.clock.steady_now();
  std::size_t history_before = 0;
  if (auto snapshot = access.store->read(access.layout.prefix())) {
    history_before = access.layout.history(*snapshot).size();
  }
  std::string new_leader;
  bool done = poll_until(context.clock, std::chrono::seconds(30), milliseconds(10), [&] {
    auto snapshot = access.store->read(access.layout.prefix());
    if (!snapshot) return false;
    ClusterView view = access.layout.view(*snapshot);
    if (!view.leader || view.leader->name == old_leader) return false;
    const NodeConfig* node = context.config.find_node(view.leader->name);
    new_leader = view.leader->name;
    return node != nullptr && accepts_writes(context.config, *node);
  });
  if (!done) {
    (void)access.store->remove(access.layout.switchover(), std::nullopt);
    return fail(ErrorCode::kTimeout,
                "the agents did not carry out the request within 30 s (see their logs); it was "
                "withdrawn");
  }
  auto took = std::chrono::duration_cast<milliseconds>(context.clock.steady_now() - asked);
  // The new leader records the change just after it accepts writes.
  poll_until(context.clock, std::chrono::seconds(5), milliseconds(10), [&] {
    auto snapshot = access.store->read(access.layout.prefix());
    return snapshot && access.layout.history(*snapshot).size() > history_before;
  });
  fmt::print("{} -> {}: {} accepts writes, {} ms after the request\n",
             old_leader.empty() ? "(no leader)" : old_leader, new_leader, new_leader, took.count());
  return {};
}

Result<ClusterView> read_view(StoreAccess& access) {
  auto snapshot = access.store->read(access.layout.prefix());
  if (!snapshot) return std::unexpected(snapshot.error());
  return access.layout.view(*snapshot);
}

Status check_target(const ClusterView& view, const ClusterConfig& config, const std::string& target,
                    bool forced) {
  auto node = config.node(target);
  if (!node) return std::unexpected(node.error());
  if (view.leader_is(target)) return fail(ErrorCode::kConflict, target + " already leads");
  auto member = view.members.find(target);
  if (member == view.members.end() || member->second.state != PgState::kStandby) {
    return fail(ErrorCode::kConflict, target + " is not a running standby with a live agent");
  }
  if (!forced && (*node)->nofailover) {
    return fail(ErrorCode::kConflict,
                target + " is tagged nofailover (tandem failover --to forces it)");
  }
  return {};
}

Status switchover(CliState& state, const std::string& to) {
  return with_session(state, [&](Context& context) -> Status {
    auto access = open_store(context.config);
    if (!access) return std::unexpected(access.error());
    auto view = read_view(**access);
    if (!view) return std::unexpected(view.error());
    if (!view->leader) {
      return fail(
          ErrorCode::kConflict,
          "nobody leads, so there is nothing to switch over: use tandem failover --to NODE");
    }
    if (!to.empty()) {
      if (auto ok = check_target(*view, context.config, to, false); !ok) return ok;
    }
    return request_and_wait(context, **access, {.from = view->leader->name, .to = to},
                            view->leader->name);
  });
}

Status failover(CliState& state, const std::string& to, bool allow_data_loss) {
  return with_session(state, [&](Context& context) -> Status {
    auto access = open_store(context.config);
    if (!access) return std::unexpected(access.error());
    auto view = read_view(**access);
    if (!view) return std::unexpected(view.error());
    if (auto ok = check_target(*view, context.config, to, true); !ok) return ok;
    std::string leader = view->leader ? view->leader->name : "";
    if (allow_data_loss) {
      spdlog::warn("failover to {} with --allow-data-loss requested by the operator", to);
    }
    return request_and_wait(
        context, **access,
        {.from = leader, .to = to, .force = true, .allow_data_loss = allow_data_loss}, leader);
  });
}

Status set_paused(CliState& state, bool paused) {
  return with_session(state, [&](Context& context) -> Status {
    auto access = open_store(context.config);
    if (!access) return std::unexpected(access.error());
    auto put = (*access)->store->put((*access)->layout.config(), encode_cluster_config(paused),
                                     std::nullopt);
    if (!put) return std::unexpected(put.error());
    fmt::print("{}\n", paused ? "paused: the agents take no automatic action"
                              : "resumed: the agents act again");
    return {};
  });
}

}  // namespace

void add_control_commands(CLI::App& app, CliState& state) {
  auto* planned = app.add_subcommand(
      "switchover", "Move the primary role to a standby, cleanly, without losing a write");
  auto to = std::make_shared<std::string>();
  planned->add_option("--to", *to, "The new primary (default: the best standby)");
  planned->callback([&state, to] { state.result = switchover(state, *to); });

  auto* forced = app.add_subcommand("failover", "Make NODE the primary, with or without a leader");
  auto target = std::make_shared<std::string>();
  auto allow_loss = std::make_shared<bool>(false);
  forced->add_option("--to", *target, "The new primary")->required();
  forced->add_flag("--allow-data-loss", *allow_loss,
                   "Even if NODE is further behind than maximum_lag_on_failover");
  forced->callback(
      [&state, target, allow_loss] { state.result = failover(state, *target, *allow_loss); });

  app.add_subcommand("pause", "Stop automatic actions (maintenance)")->callback([&state] {
    state.result = set_paused(state, true);
  });
  app.add_subcommand("resume", "Resume automatic actions")->callback([&state] {
    state.result = set_paused(state, false);
  });
}

}  // namespace tandem
