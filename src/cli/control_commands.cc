// tandem switchover | failover | pause | resume: requests to the agents, through the store.
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "agent/peer_waker.h"
#include "cli/commands.h"
#include "dcs/cluster_layout.h"
#include "ops/cluster_lock.h"
#include "ops/cluster_requests.h"
#include "ops/store_access.h"

namespace tandem {
namespace {

struct StoreAccess {
  SystemClock clock;
  std::unique_ptr<Store> store;
  ClusterLayout layout;
};

Result<std::unique_ptr<StoreAccess>> open_store(const ClusterConfig& config) {
  auto access = std::make_unique<StoreAccess>(StoreAccess{{}, nullptr, ClusterLayout(config.name)});
  auto store = open_cluster_store(config, access->clock);
  if (!store) return std::unexpected(store.error());
  access->store = std::move(*store);
  return access;
}

Result<ClusterView> read_view(StoreAccess& access) {
  auto snapshot = access.store->read(access.layout.prefix());
  if (!snapshot) return std::unexpected(snapshot.error());
  return access.layout.view(*snapshot);
}

Status request_and_wait(Context& context, StoreAccess& access, const SwitchoverRequest& request) {
  auto outcome =
      carry_out(*access.store, access.layout, request, context.clock, std::chrono::seconds(30),
                [&] { wake_agents(context.config, "", request.to); });
  if (!outcome) return std::unexpected(outcome.error());
  fmt::print("{} -> {}: {} accepts writes, {} ms after the request\n",
             request.from.empty() ? "(no leader)" : request.from, outcome->new_leader,
             outcome->new_leader, outcome->took.count());
  return {};
}

Status switchover(CliState& state, const std::string& to) {
  return with_session(state, [&](Context& context) { return request_switchover(context, to); });
}

Status failover(CliState& state, const std::string& to, bool allow_data_loss) {
  return with_session(state, [&](Context& context) -> Status {
    auto access = open_store(context.config);
    if (!access) return std::unexpected(access.error());
    // One forced failover at a time: the second would overwrite the first's request.
    auto lock = ClusterLock::take(*(*access)->store, (*access)->layout, "failover --to " + to);
    if (!lock) return std::unexpected(lock.error());
    auto view = read_view(**access);
    if (!view) return std::unexpected(view.error());
    auto request = plan_failover(*view, context.config, "", to, allow_data_loss);
    if (!request) return std::unexpected(request.error());
    if (allow_data_loss) {
      spdlog::warn("failover to {} with --allow-data-loss requested by the operator", to);
    }
    return request_and_wait(context, **access, *request);
  });
}

Status pause_or_resume(CliState& state, bool paused) {
  return with_session(state, [&](Context& context) -> Status {
    auto access = open_store(context.config);
    if (!access) return std::unexpected(access.error());
    if (auto ok = set_paused(*(*access)->store, (*access)->layout, paused); !ok) return ok;
    fmt::print("{}\n", paused ? "paused: the agents take no automatic action"
                              : "resumed: the agents act again");
    return {};
  });
}

}  // namespace

Status request_switchover(Context& context, const std::string& to) {
  auto access = open_store(context.config);
  if (!access) return std::unexpected(access.error());
  auto view = read_view(**access);
  if (!view) return std::unexpected(view.error());
  auto request = plan_switchover(*view, context.config, "", to);
  if (!request) return std::unexpected(request.error());
  return request_and_wait(context, **access, *request);
}

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
    state.result = pause_or_resume(state, true);
  });
  app.add_subcommand("resume", "Resume automatic actions")->callback([&state] {
    state.result = pause_or_resume(state, false);
  });
}

}  // namespace tandem
