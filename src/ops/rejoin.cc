#include "ops/rejoin.h"

#include <fmt/chrono.h>
#include <fmt/format.h>

#include <cstdio>
#include <filesystem>

#include "ops/clone.h"
#include "ops/find_primary.h"
#include "pg/admin_connection.h"
#include "pg/node_files.h"
#include "pg/node_probe.h"
#include "pg/replication_queries.h"
#include "pg/server_queries.h"
#include "pg/slot_queries.h"

namespace tandem {
namespace {

struct PrimaryWal {
  TimelineHistory history;
  Lsn end;
};

// The primary's timeline history and WAL end. A CHECKPOINT first: until the checkpoint after
// a promotion completes, pg_control still names the old timeline and pg_rewind would conclude
// that nothing needs rewinding.
Result<PrimaryWal> read_primary_wal(Context& context, const NodeConfig& primary) {
  auto admin = connect_admin(context.config, primary);
  if (!admin) return std::unexpected(admin.error());
  if (auto ok = checkpoint(*admin); !ok) return std::unexpected(ok.error());
  auto wal = checkpoint_wal(*admin);
  if (!wal) return std::unexpected(wal.error());
  if (wal->timeline == 1) return PrimaryWal{TimelineHistory(), wal->wal_end};
  auto file = read_wal_file(*admin, history_file_name(wal->timeline));
  if (!file) return std::unexpected(file.error());
  auto history = TimelineHistory::parse(wal->timeline, *file);
  if (!history) return std::unexpected(history.error());
  return PrimaryWal{*history, wal->wal_end};
}

// Where the node's WAL ends, from pg_control of a cleanly stopped node: its shutdown
// checkpoint, or for a standby the point recovery must reach if that is later.
WalPosition wal_position(const ControlData& control) {
  if (control.min_recovery_end > control.checkpoint) {
    return {control.min_recovery_timeline, control.min_recovery_end};
  }
  return {control.checkpoint_timeline, control.checkpoint};
}

// Brings the node to a clean shutdown, finishing crash recovery if it crashed.
Result<ControlData> stopped_cleanly(Context& context, const NodeConfig& node) {
  auto control = context.controller.control_data(node);
  if (!control) return control;
  if (control->cleanly_shut_down()) return control;
  context.report(fmt::format("{} stopped uncleanly ({}); finishing its crash recovery", node.name,
                             control->cluster_state));
  if (auto ok = context.controller.finish_crash_recovery(node); !ok) {
    return std::unexpected(ok.error());
  }
  return context.controller.control_data(node);
}

// The last resort: the old directory is kept, renamed, and a fresh copy made.
// `why` names the moved directory: <data_dir>.<why>-<time>.
Result<std::string> reclone(Context& context, const NodeConfig& node, const NodeConfig& primary,
                            std::string_view why = "diverged") {
  std::string aside =
      fmt::format("{}.{}-{:%Y%m%dT%H%M%S}", node.data_dir, why,
                  std::chrono::floor<std::chrono::seconds>(context.clock.wall_now()));
  if (std::rename(node.data_dir.c_str(), aside.c_str()) != 0) {
    return fail(ErrorCode::kFailed,
                fmt::format("cannot move {} aside to {}", node.data_dir, aside));
  }
  context.report(fmt::format("moved {} aside to {} (nothing deleted)", node.data_dir, aside));
  if (auto ok = clone_standby(context, node, primary.name); !ok) {
    // No space, say, or the primary went away: the old data goes back where it was, and what
    // was copied is kept beside it.
    std::string partial = aside + ".incomplete-copy";
    bool copied = std::filesystem::exists(node.data_dir);
    if ((!copied || std::rename(node.data_dir.c_str(), partial.c_str()) == 0) &&
        std::rename(aside.c_str(), node.data_dir.c_str()) == 0) {
      return fail(
          ok.error().code,
          fmt::format("the copy of {} failed, its old data is back in {}{}: {}", node.name,
                      node.data_dir, copied ? " (the incomplete copy is in " + partial + ")" : "",
                      ok.error().message));
    }
    return fail(ok.error().code, fmt::format("the copy of {} failed and its old data is in {}: {}",
                                             node.name, aside, ok.error().message));
  }
  return aside;
}

Status start_following(Context& context, const NodeConfig& node, const NodeConfig& primary,
                       std::chrono::milliseconds timeout) {
  if (auto ok = write_node_files(context.config, context.os_user, node, &primary); !ok) return ok;
  if (auto ok = context.controller.start(node); !ok) return ok;
  return wait_streaming(context.config, context.clock, primary, node, timeout);
}

// Errors of a moment — the source shutting down or starting, a refused connection — are no
// verdict on the node's data: the rejoin is tried again, never turned into a reclone.
bool transient(const Error& error) {
  for (const char* sign : {"shutting down", "starting up", "Connection refused",
                           "could not connect", "in recovery mode", "timeout expired"}) {
    if (error.message.find(sign) != std::string::npos) return true;
  }
  return error.code == ErrorCode::kUnavailable || error.code == ErrorCode::kTimeout;
}

// pg_rewind, or when that is impossible a fresh clone with the old directory kept aside.
Status rewind_or_reclone(Context& context, const NodeConfig& node, const NodeConfig& primary,
                         RejoinOutcome& outcome) {
  auto started = context.clock.steady_now();
  auto rewound = context.controller.rewind(node, admin_conninfo(context.config, primary));
  if (rewound) {
    outcome.result = RejoinResult::kRewound;
    // Its time said: PostgreSQL 15's pg_rewind copies the source's whole pg_wal, whatever the
    // divergence (bench: rejoin).
    context.report(
        fmt::format("pg_rewind {} from {}: done in {:.2f} s", node.name, primary.name,
                    std::chrono::duration<double>(context.clock.steady_now() - started).count()));
    if (!rewound->held_wal.empty())
      context.report(fmt::format("{}: {}", node.name, rewound->held_wal));
    return start_following(context, node, primary, context.streaming_timeout);
  }
  if (transient(rewound.error())) {
    return fail(ErrorCode::kUnavailable,
                fmt::format("pg_rewind of {} failed for a passing reason, to be tried again: {}",
                            node.name, rewound.error().message));
  }
  context.report(fmt::format("pg_rewind is impossible: {}", rewound.error().message));
  auto aside = reclone(context, node, primary);
  if (!aside) return std::unexpected(aside.error());
  outcome.result = RejoinResult::kRecloned;
  outcome.moved_aside = *aside;
  return {};
}

Result<bool> slot_is_lost(Context& context, const NodeConfig& primary, const NodeConfig& node) {
  auto admin = connect_admin(context.config, primary);
  if (!admin) return std::unexpected(admin.error());
  return slot_lost(*admin, node.name);
}

bool streams_from(Context& context, const NodeConfig& primary, const NodeConfig& node) {
  auto admin = connect_admin(context.config, primary);
  if (!admin) return false;
  auto streaming = streams_to(*admin, node.name);
  return streaming && *streaming;
}

// Follows the primary when the plan says it can (rewinding if it cannot after all), or
// rewinds (or reclones) at once.
Result<RejoinOutcome> follow_or_rewind(Context& context, const NodeConfig& node,
                                       const NodeConfig& primary, const RejoinPlan& plan,
                                       const WalPosition& position) {
  RejoinOutcome outcome{RejoinResult::kFollowed, plan.reason};
  if (plan.method == RejoinMethod::kFollow) {
    auto followed = start_following(context, node, primary, context.follow_timeout);
    if (followed) {
      context.report(fmt::format("{} streams from {}", node.name, primary.name));
      return outcome;
    }
    // Its primary is a primary no more (it handed over meanwhile): the node follows whoever
    // leads next, neither rewound from a standby nor kept waiting.
    if (followed.error().code == ErrorCode::kUnavailable) return std::unexpected(followed.error());
    // pg_control can understate how far a standby replayed; PostgreSQL knows better.
    context.report(fmt::format("{} cannot follow after all ({}); rewinding", node.name,
                               followed.error().message));
    if (auto ok = context.controller.stop(node, StopMode::kFast); !ok) {
      return std::unexpected(ok.error());
    }
  } else {
    outcome.diverged_from = plan.diverged_at;
    outcome.diverged_to = position.last_record;
  }
  if (auto ok = rewind_or_reclone(context, node, primary, outcome); !ok) {
    return std::unexpected(ok.error());
  }
  context.report(fmt::format("{} streams from {}", node.name, primary.name));
  return outcome;
}

// A standby whose slot was invalidated, with a WAL archive: a new slot, and the standby
// replays from the archive what the primary no longer has, then streams — no copy of the whole
// database. Only for a node whose WAL the primary's history contains (one that diverged needs a
// rewind, which needs that WAL); nullopt when it did not work out, said why: the caller
// reclones.
std::optional<RejoinOutcome> catch_up_from_archive(Context& context, const NodeConfig& node,
                                                   const NodeConfig& primary) {
  if (!context.config.backup.enabled()) return std::nullopt;
  auto say_why = [&](const std::string& why) {
    context.report(fmt::format("{} cannot catch up from the archive: {}", node.name, why));
    return std::nullopt;
  };
  auto control = stopped_cleanly(context, node);
  if (!control) return say_why(control.error().message);
  auto primary_wal = read_primary_wal(context, primary);
  if (!primary_wal) return say_why(primary_wal.error().message);
  RejoinPlan plan = plan_rejoin(wal_position(*control), primary_wal->history, primary_wal->end);
  if (plan.method != RejoinMethod::kFollow) return say_why(plan.reason);
  auto admin = connect_admin(context.config, primary);
  if (!admin) return say_why(admin.error().message);
  if (auto created = ensure_slot(*admin, node.name); !created) {
    return say_why(created.error().message);
  }
  context.report(
      fmt::format("slot {} on {} was invalidated: created anew; {} replays what it "
                  "lacks from the archive, then streams",
                  node.name, primary.name, node.name));
  if (auto ok = start_following(context, node, primary, context.streaming_timeout); !ok) {
    (void)context.controller.stop(node, StopMode::kFast);
    return say_why(ok.error().message);
  }
  context.report(fmt::format("{} streams from {} again (caught up from the archive)", node.name,
                             primary.name));
  return RejoinOutcome{.result = RejoinResult::kFollowed,
                       .reason = "its slot was invalidated; caught up from the archive"};
}

}  // namespace

Result<RejoinOutcome> rejoin_node(Context& context, const NodeConfig& node) {
  auto found = find_primary(context, node.name);
  if (!found) return fail_with_context(found.error(), fmt::format("cannot rejoin {}", node.name));
  const NodeConfig& primary = **found;
  NodeProbe probe = probe_node(context.config, context.controller, node);
  if (probe.state == NodeRunState::kPrimary) {
    return fail(ErrorCode::kConflict,
                fmt::format("{} runs as a primary while {} is the primary: two writable "
                            "primaries. Stop {} yourself (its writes since the failover will be "
                            "reported), then rejoin it",
                            node.name, primary.name, node.name));
  }
  if (probe.state == NodeRunState::kUnreachable) {
    return fail(ErrorCode::kUnavailable,
                fmt::format("{} does not answer: {}", node.name, probe.error));
  }
  if (probe.state == NodeRunState::kStandby) {
    if (streams_from(context, primary, node)) {
      return RejoinOutcome{RejoinResult::kAlreadyStandby,
                           fmt::format("{} already streams from {}", node.name, primary.name)};
    }
    if (auto ok = context.controller.stop(node, StopMode::kFast); !ok) {
      return std::unexpected(ok.error());
    }
  }

  // The WAL it needs is gone from the primary: no rewind or restart brings it back, but the
  // archive may.
  if (auto lost = slot_is_lost(context, primary, node); !lost) {
    return std::unexpected(lost.error());
  } else if (*lost) {
    if (auto caught = catch_up_from_archive(context, node, primary)) return *caught;
    context.report(
        fmt::format("slot {} on {} was invalidated: the WAL {} needs is gone; cloning "
                    "it again",
                    node.name, primary.name, node.name));
    auto aside = reclone(context, node, primary, "slot-lost");
    if (!aside) return std::unexpected(aside.error());
    return RejoinOutcome{.result = RejoinResult::kRecloned,
                         .reason = "its slot was invalidated",
                         .moved_aside = *aside};
  }
  auto control = stopped_cleanly(context, node);
  if (!control) return std::unexpected(control.error());
  auto primary_wal = read_primary_wal(context, primary);
  if (!primary_wal) return std::unexpected(primary_wal.error());
  WalPosition position = wal_position(*control);
  RejoinPlan plan = plan_rejoin(position, primary_wal->history, primary_wal->end);
  context.report(fmt::format("{}: {}", node.name, plan.reason));
  if (plan.method == RejoinMethod::kRefuse) {
    return fail(ErrorCode::kConflict, fmt::format("not rejoining {}: {}", node.name, plan.reason));
  }
  {
    auto admin = connect_admin(context.config, primary);
    if (!admin) return std::unexpected(admin.error());
    if (auto created = ensure_slot(*admin, node.name); !created) {
      return std::unexpected(created.error());
    }
  }

  return follow_or_rewind(context, node, primary, plan, position);
}

Result<std::string> reinitialize_standby(Context& context, const NodeConfig& node,
                                         const NodeConfig& primary) {
  if (node.name == primary.name) {
    return fail(ErrorCode::kConflict,
                node.name + " is the primary: only a standby is reinitialized");
  }
  if (auto ok = context.controller.stop(node, StopMode::kFast); !ok)
    return std::unexpected(ok.error());
  return reclone(context, node, primary, "reinitialized");
}

}  // namespace tandem
