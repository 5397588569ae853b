#include "ops/cluster_requests.h"

#include <fmt/format.h>

namespace tandem {
namespace {

using std::chrono::milliseconds;

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
    return fail(ErrorCode::kConflict, target + " is tagged nofailover (a failover forces it)");
  }
  return {};
}

Status check_leader(const ClusterView& view, const std::string& expected_leader) {
  if (expected_leader.empty() || view.leader_is(expected_leader)) return {};
  return fail(ErrorCode::kConflict, fmt::format("{} does not lead ({} does)", expected_leader,
                                                view.leader ? view.leader->name : "nobody"));
}

}  // namespace

Result<SwitchoverRequest> plan_switchover(const ClusterView& view, const ClusterConfig& config,
                                          const std::string& expected_leader,
                                          const std::string& to) {
  if (!view.leader) {
    return fail(ErrorCode::kConflict,
                "nobody leads, so there is nothing to switch over: fail over to a node instead");
  }
  if (auto ok = check_leader(view, expected_leader); !ok) return std::unexpected(ok.error());
  if (!to.empty()) {
    if (auto ok = check_target(view, config, to, false); !ok) return std::unexpected(ok.error());
  }
  return SwitchoverRequest{.from = view.leader->name, .to = to};
}

Result<SwitchoverRequest> plan_failover(const ClusterView& view, const ClusterConfig& config,
                                        const std::string& expected_leader, const std::string& to,
                                        bool allow_data_loss) {
  if (to.empty()) {
    return fail(ErrorCode::kInvalidArgument, "a failover needs a candidate: the node to promote");
  }
  if (auto ok = check_leader(view, expected_leader); !ok) return std::unexpected(ok.error());
  if (auto ok = check_target(view, config, to, true); !ok) return std::unexpected(ok.error());
  return SwitchoverRequest{.from = view.leader ? view.leader->name : "",
                           .to = to,
                           .force = true,
                           .allow_data_loss = allow_data_loss};
}

Result<RequestOutcome> carry_out(Store& store, const ClusterLayout& layout,
                                 const SwitchoverRequest& request, Clock& clock,
                                 milliseconds timeout) {
  auto expires = std::chrono::duration_cast<milliseconds>(timeout) + std::chrono::seconds(5);
  if (auto put = store.put(layout.switchover(), encode_switchover(request), expires); !put) {
    return std::unexpected(put.error());
  }
  auto asked = clock.steady_now();
  std::string new_leader;
  bool done = poll_until(clock, timeout, milliseconds(10), [&] {
    auto snapshot = store.read(layout.prefix());
    if (!snapshot) return false;
    ClusterView view = layout.view(*snapshot);
    if (!view.leader || view.leader->name == request.from) return false;
    new_leader = view.leader->name;
    auto member = view.members.find(new_leader);
    return member != view.members.end() && member->second.state == PgState::kPrimary;
  });
  if (!done) {
    (void)store.remove(layout.switchover(), std::nullopt);
    return fail(ErrorCode::kTimeout,
                fmt::format("the agents did not carry out the request within {} s (see their "
                            "logs); it was withdrawn",
                            std::chrono::duration_cast<std::chrono::seconds>(timeout).count()));
  }
  return RequestOutcome{new_leader,
                        std::chrono::duration_cast<milliseconds>(clock.steady_now() - asked)};
}

Status set_paused(Store& store, const ClusterLayout& layout, bool paused) {
  auto put = store.put(layout.config(), encode_cluster_config(paused), std::nullopt);
  if (!put) return std::unexpected(put.error());
  return {};
}

}  // namespace tandem
