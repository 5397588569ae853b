#include "ops/cluster_requests.h"

#include <fmt/format.h>

#include "core/decide.h"

namespace tandem {
namespace {

using std::chrono::milliseconds;

// The agents' own rule (request_refusal), so that a request they would not carry out is
// refused here at once, in their words, instead of waiting out its timeout.
Status check_target(const ClusterView& view, const ClusterConfig& config,
                    const SwitchoverRequest& request) {
  auto node = config.node(request.to);
  if (!node) return std::unexpected(node.error());
  if (view.leader_is(request.to)) return fail(ErrorCode::kConflict, request.to + " already leads");
  if (auto why = request_refusal(view, request, eligibility_rules(config))) {
    return fail(ErrorCode::kConflict, *why);
  }
  return {};
}

Status check_leader(const ClusterView& view, const std::string& expected_leader) {
  if (expected_leader.empty() || view.leader_is(expected_leader)) return {};
  return fail(ErrorCode::kConflict, fmt::format("{} does not lead ({} does)", expected_leader,
                                                view.leader ? view.leader->name : "nobody"));
}

std::string describe(const SwitchoverRequest& pending) {
  return fmt::format(
      "a {} {}{} is already under way: wait for it to end (or to expire) and ask again",
      pending.force ? "failover" : "switchover",
      pending.from.empty() ? "" : "from " + pending.from + " ",
      pending.to.empty() ? "to the best candidate" : "to " + pending.to);
}

std::string describe_pending(Store& store, const ClusterLayout& layout) {
  auto snapshot = store.read(layout.switchover());
  std::optional<SwitchoverRequest> pending;
  if (snapshot) pending = layout.view(*snapshot).switchover;
  if (!pending) return "another switchover or failover was requested at the same moment: try again";
  return describe(*pending);
}

}  // namespace

// A request while another is pending is told so first, whatever else is wrong with it: the
// pending one may be what makes its target look unfit (a node in the middle of following).
Status check_none_pending(const ClusterView& view) {
  if (!view.switchover) return {};
  return fail(ErrorCode::kConflict, describe(*view.switchover));
}

Result<SwitchoverRequest> plan_switchover(const ClusterView& view, const ClusterConfig& config,
                                          const std::string& expected_leader,
                                          const std::string& to) {
  if (!view.leader) {
    return fail(ErrorCode::kConflict,
                "nobody leads, so there is nothing to switch over: fail over to a node instead");
  }
  if (auto ok = check_none_pending(view); !ok) return std::unexpected(ok.error());
  if (auto ok = check_leader(view, expected_leader); !ok) return std::unexpected(ok.error());
  SwitchoverRequest request{.from = view.leader->name, .to = to};
  if (!to.empty()) {
    if (auto ok = check_target(view, config, request); !ok) return std::unexpected(ok.error());
  }
  return request;
}

Result<SwitchoverRequest> plan_failover(const ClusterView& view, const ClusterConfig& config,
                                        const std::string& expected_leader, const std::string& to,
                                        bool allow_data_loss) {
  if (to.empty()) {
    return fail(ErrorCode::kInvalidArgument, "a failover needs a candidate: the node to promote");
  }
  if (auto ok = check_none_pending(view); !ok) return std::unexpected(ok.error());
  if (auto ok = check_leader(view, expected_leader); !ok) return std::unexpected(ok.error());
  SwitchoverRequest request{.from = view.leader ? view.leader->name : "",
                            .to = to,
                            .force = true,
                            .allow_data_loss = allow_data_loss};
  if (auto ok = check_target(view, config, request); !ok) return std::unexpected(ok.error());
  return request;
}

Result<RequestOutcome> carry_out(Store& store, const ClusterLayout& layout,
                                 const SwitchoverRequest& request, Clock& clock,
                                 milliseconds timeout, const std::function<void()>& written) {
  auto expires = std::chrono::duration_cast<milliseconds>(timeout) + std::chrono::seconds(5);
  // Created only if no request is pending: two at once (through the API, which takes no
  // cluster lock, or the API and the CLI) never overwrite each other; the second is refused.
  auto created = store.create(layout.switchover(), encode_switchover(request), expires);
  if (!created && created.error().code == ErrorCode::kConflict) {
    return fail(ErrorCode::kConflict, describe_pending(store, layout));
  }
  if (!created) return std::unexpected(created.error());
  auto asked = clock.steady_now();
  if (written) written();
  std::string new_leader;
  bool taken_up = false;  // the request is gone: its target took it up (and may have failed)
  bool done = poll_until(clock, timeout, milliseconds(10), [&] {
    auto snapshot = store.read(layout.prefix());
    if (!snapshot) return false;
    ClusterView view = layout.view(*snapshot);
    taken_up = !view.switchover;
    if (!view.leader) return false;
    if (view.leader->name == request.from && !taken_up) return false;
    new_leader = view.leader->name;
    auto member = view.members.find(new_leader);
    return member != view.members.end() && member->second.state == PgState::kPrimary &&
           (new_leader != request.from || !request.to.empty());
  });
  if (done && !request.to.empty() && new_leader != request.to) {
    // The target took the lead and lost it (its promotion failed: its PostgreSQL stopped, its
    // agent froze); another node leads, as after any failure. Said at once, not after the wait.
    (void)store.remove(layout.switchover(), *created);
    return fail(
        ErrorCode::kFailed,
        fmt::format("{} did not become the primary (it took the request up and its promotion "
                    "failed, or it was refused: see the agents' logs); {} leads now",
                    request.to, new_leader));
  }
  if (!done) {
    (void)store.remove(layout.switchover(), *created);  // only this request, if still there
    return fail(ErrorCode::kTimeout,
                fmt::format("the agents did not carry out the request within {} s (see their "
                            "logs); it was withdrawn",
                            std::chrono::duration_cast<std::chrono::seconds>(timeout).count()));
  }
  // Done: the request is removed now (the new leader removes it too, a cycle later), so that
  // the next one is not refused as pending.
  (void)store.remove(layout.switchover(), *created);
  return RequestOutcome{new_leader,
                        std::chrono::duration_cast<milliseconds>(clock.steady_now() - asked)};
}

Status set_paused(Store& store, const ClusterLayout& layout, bool paused) {
  auto put = store.put(layout.config(), encode_cluster_config(paused), std::nullopt);
  if (!put) return std::unexpected(put.error());
  return {};
}

}  // namespace tandem
