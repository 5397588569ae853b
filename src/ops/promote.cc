#include "ops/promote.h"

#include <fmt/format.h>

#include <filesystem>

#include "core/decide.h"
#include "dcs/cluster_layout.h"
#include "ops/find_primary.h"
#include "ops/timeline_claim.h"
#include "ops/wal_archive.h"
#include "pg/admin_connection.h"
#include "pg/node_files.h"
#include "pg/node_probe.h"
#include "pg/server_queries.h"
#include "pg/slot_queries.h"

namespace tandem {
namespace {

// Writes only succeed once the server has left recovery and can assign transaction ids;
// asking it to promote is not proof of that. A postmaster that is gone never will: its
// promotion failed (fenced by a watchdog while this agent was frozen, killed, out of memory),
// said at once rather than after the whole wait, so that the next cycle decides what it is.
// Looks through `connection` while it lasts (a session begun in recovery takes writes once the
// server has left it), then through a connection of its own.
Status wait_writable(Context& context, const NodeConfig& node, Connection* connection) {
  std::string last_error;
  bool gone = false;
  std::optional<Connection> own;
  bool writable =
      poll_until(context.clock, std::chrono::seconds(60), std::chrono::milliseconds(10), [&] {
        auto running = context.controller.is_running(node);
        if (running && !*running) {
          gone = true;
          return true;
        }
        if (connection != nullptr && !connection->usable()) connection = nullptr;
        if (connection == nullptr) {
          auto opened = connect_admin(context.config, node);
          if (!opened) {
            last_error = opened.error().message;
            return false;
          }
          own.emplace(std::move(*opened));
          connection = &*own;
        }
        auto writable = check_writable(*connection);
        if (!writable) last_error = writable.error().message;
        return writable.has_value();
      });
  if (gone) {
    return fail(ErrorCode::kFailed,
                fmt::format("{} stopped during its promotion (its postmaster is gone)", node.name));
  }
  if (!writable) {
    return fail(ErrorCode::kTimeout, fmt::format("{} was promoted but does not accept writes: {}",
                                                 node.name, last_error));
  }
  return {};
}

// Slots do not follow a promotion: the new primary needs one per other node, at once, so a
// returning node finds its WAL kept.
Status create_member_slots(Context& context, const NodeConfig& primary) {
  auto connection = connect_admin(context.config, primary);
  if (!connection) return std::unexpected(connection.error());
  for (const NodeConfig& member : context.config.nodes) {
    if (member.name == primary.name) continue;
    auto created = ensure_slot(*connection, member.name);
    if (!created) return std::unexpected(created.error());
    if (*created) context.report(fmt::format("created slot {} on {}", member.name, primary.name));
  }
  return {};
}

// Standbys (a data directory with standby.signal) are pointed at the new primary; running ones
// re-read their configuration, which restarts their WAL receiver without a server restart.
Status repoint_standbys(Context& context, const NodeConfig& primary) {
  for (const NodeConfig& member : context.config.nodes) {
    if (member.name == primary.name) continue;
    if (!std::filesystem::exists(member.data_dir + "/standby.signal")) continue;
    if (auto ok = write_node_files(context.config, context.os_user, member, &primary); !ok) {
      return ok;
    }
    if (probe_node(context.config, context.controller, member).state == NodeRunState::kStandby) {
      if (auto ok = context.controller.reload(member); !ok) return ok;
      if (auto ok = wait_streaming(context.config, context.clock, primary, member,
                                   context.follow_timeout);
          !ok) {
        context.report(fmt::format("warning: {}; if it stays so, run `tandem rejoin {}`",
                                   ok.error().message, member.name));
        continue;
      }
      context.report(fmt::format("{} now streams from {}", member.name, primary.name));
    } else {
      context.report(
          fmt::format("{} will stream from {} when it starts", member.name, primary.name));
    }
  }
  return {};
}

}  // namespace

Status promote_standby(Context& context, const NodeConfig& node, Store& store,
                       bool allow_data_loss) {
  NodeProbe probe = probe_node(context.config, context.controller, node);
  switch (probe.state) {
    case NodeRunState::kPrimary:
      return fail(ErrorCode::kConflict, fmt::format("{} is already the primary", node.name));
    case NodeRunState::kStopped:
      return fail(ErrorCode::kConflict,
                  fmt::format("{} is not running: start it first (tandem local start {})",
                              node.name, node.name));
    case NodeRunState::kUnreachable:
      return fail(ErrorCode::kUnavailable,
                  fmt::format("{} does not answer: {}", node.name, probe.error));
    case NodeRunState::kStandby:
      break;
  }
  auto other = find_primary(context, node.name);
  if (other) {
    return fail(ErrorCode::kConflict,
                fmt::format("{} still runs as the primary: promoting {} would leave two writable "
                            "primaries; stop {} first",
                            (*other)->name, node.name, (*other)->name));
  }
  if (other.error().code == ErrorCode::kConflict) return std::unexpected(other.error());
  if (context.config.ha.synchronous_mode && !allow_data_loss) {
    // The agents' rule for who has every acknowledged commit holds by hand too (found by
    // review: a standby the record did not name, promoted by hand, then led through its claim).
    ClusterLayout layout(context.config.name);
    auto state = layout.read_state(store);
    if (!state) return fail_with_context(state.error(), "reading the sync record");
    if (auto why = manual_promotion_refusal(layout.view(*state), node.name)) {
      return fail(ErrorCode::kConflict,
                  fmt::format("{}: promoting it could lose acknowledged commits (allow it with "
                              "--allow-data-loss)",
                              *why));
    }
  }
  auto connection = connect_admin(context.config, node);
  if (!connection) return std::unexpected(connection.error());
  auto timeline = standby_timeline(*connection);
  if (!timeline) return std::unexpected(timeline.error());
  auto claimed = claim_timeline(store, ClusterLayout(context.config.name), node.name, *timeline);
  if (!claimed) return std::unexpected(claimed.error());
  context.report(fmt::format("claimed timeline {} for {}", *claimed, node.name));
  if (context.config.backup.enabled() && context.runner != nullptr) {
    // What the old primary may not have archived (ops/wal_archive.h): all it received.
    auto marked = mark_received_wal(context.config, *context.runner, node, "");
    context.report(marked ? fmt::format("{} WAL segments {} received marked for its archiver",
                                        *marked, node.name)
                          : fmt::format("WAL {} received not marked for its archiver: {}",
                                        node.name, marked.error().message));
  }
  if (auto ok = promote_in_place(context, node, &*connection); !ok) return ok;
  if (auto ok = mark_claim_promoted(store, ClusterLayout(context.config.name), node.name, *claimed);
      !ok) {
    context.report(fmt::format("timeline {} not marked promoted: {} (its agent marks it)", *claimed,
                               ok.error().message));
  }
  return repoint_standbys(context, node);
}

Status promote_in_place(Context& context, const NodeConfig& node, Connection* connection) {
  auto started = context.clock.steady_now();
  // pg_promote() over the open session: pg_ctl promote is a process to start, which took 60 ms
  // of a switchover's write gap on a loaded machine (bench: switchover, under load). pg_ctl
  // when there is no session, or it could not ask (lost, or the server refused).
  Status asked = connection != nullptr && connection->usable()
                     ? request_promotion(*connection)
                     : fail(ErrorCode::kUnavailable, "no session");
  if (!asked) {
    if (auto ok = context.controller.promote(node); !ok) return ok;
  }
  if (auto ok = wait_writable(context, node, connection); !ok) return ok;
  auto took =
      std::chrono::duration_cast<std::chrono::milliseconds>(context.clock.steady_now() - started);
  context.report(fmt::format("{} promoted; it accepts writes ({} ms)", node.name, took.count()));
  if (auto ok = write_node_files(context.config, context.os_user, node, nullptr); !ok) return ok;
  return create_member_slots(context, node);
}

}  // namespace tandem
