#include "agent/pg_local_node.h"

#include <fmt/format.h>
#include <poll.h>
#include <signal.h>
#include <spdlog/spdlog.h>
#include <sys/inotify.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>

#include "ops/clone.h"
#include "ops/init.h"
#include "ops/promote.h"
#include "ops/rejoin.h"
#include "pg/admin_connection.h"
#include "pg/node_files.h"
#include "pg/postmaster.h"
#include "pg/server_files.h"
#include "pg/server_queries.h"
#include "pg/timeline_files.h"

namespace tandem {

using std::chrono::milliseconds;

PgLocalNode::PgLocalNode(const ClusterConfig& config, const NodeConfig& self, const OsUser& os_user,
                         const PgBinaries& binaries, ProcessRunner& runner, Store& store,
                         Clock& clock)
    : config_(config),
      self_(self),
      clock_(clock),
      layout_(config.name),
      programs_(config, binaries, runner, os_user, clock),
      process_(config.log_dir + "/" + self.name + ".log", binaries, os_user, clock),
      controller_(config, self.name, programs_, process_, clock),
      observer_(config, self, process_, clock),
      context_{.config = config,
               .os_user = os_user,
               .controller = controller_,
               .clock = clock,
               .runner = &runner,
               .report = [](const std::string& line) { spdlog::info("  {}", line); }},
      sync_(context_, self, store, layout_) {}

const NodeConfig* PgLocalNode::node(const std::string& name) const {
  return name.empty() ? nullptr : config_.find_node(name);
}

Result<const NodeConfig*> PgLocalNode::leader_node(const std::string& name) const {
  const NodeConfig* leader = node(name);
  if (leader == nullptr) return fail(ErrorCode::kNotFound, "'" + name + "' is not configured");
  return leader;
}

NodeObservation PgLocalNode::observe(bool at_rest) {
  NodeObservation node = observer_.observe(at_rest);
  if (node.state != PgState::kStopped) {
    stopped_timeline_.reset();
    return node;
  }
  // A stopped node's timeline is its last checkpoint's: read once per stop (pg_controldata is a
  // program to run; the cycle gives it 2 s and goes on without).
  if (!stopped_timeline_) {
    auto control = programs_.control_data(self_, std::chrono::seconds(2));
    if (control) stopped_timeline_ = control->checkpoint_timeline;
  }
  node.timeline = stopped_timeline_.value_or(0);
  return node;
}

Status PgLocalNode::initialize() { return init_primary(context_, self_); }

Status PgLocalNode::clone(const std::string& leader) {
  return clone_standby(context_, self_, leader);
}

Status PgLocalNode::start_primary(const std::function<Status()>& may_spawn,
                                  const std::vector<std::string>& synchronous_standbys) {
  if (auto ok = write_node_files(context_.config, context_.os_user, self_, nullptr,
                                 ServerRole::kPrimary, synchronous_standbys);
      !ok) {
    return ok;
  }
  if (auto ok = may_spawn(); !ok) return ok;
  return controller_.spawn(self_);
}

Status PgLocalNode::start_standby(const std::string& leader) {
  if (auto ok = write_node_files(context_.config, context_.os_user, self_, node(leader),
                                 ServerRole::kStandby);
      !ok) {
    return ok;
  }
  return controller_.spawn(self_);
}

Status PgLocalNode::follow(const std::string& leader) {
  if (leader.empty()) {
    // A freeze (quorum commit): no primary_conninfo, so the startup process stops the WAL
    // receiver and starts none.
    if (auto ok = write_node_files(context_.config, context_.os_user, self_, nullptr,
                                   ServerRole::kStandby);
        !ok) {
      return ok;
    }
    return controller_.reload(self_);
  }
  auto upstream = leader_node(leader);
  if (!upstream) return std::unexpected(upstream.error());
  if (auto ok = write_node_files(context_.config, context_.os_user, self_, *upstream); !ok) {
    return ok;
  }
  return controller_.reload(self_);
}

Result<Connection*> PgLocalNode::admin_session(std::optional<Connection>& own, bool may_borrow) {
  if (may_borrow) {
    if (Connection* session = observer_.session()) return session;
  }
  auto opened = connect_local_admin(config_, self_);
  if (!opened) return std::unexpected(opened.error());
  own.emplace(std::move(*opened));
  return &*own;
}

Result<Promotion> PgLocalNode::promote(TimelineId target) {
  // One session asks for the promotion and watches it — the observations' own when it stands: a
  // connection to open is a process for the server to start, tens of milliseconds on a loaded
  // machine.
  std::optional<Connection> own;
  auto session = admin_session(own, true);
  if (session) {
    auto timeline = standby_timeline(**session);
    // The observations' session may be dead unnoticed (a cycle at rest asks nothing): the timeline
    // is read again on a connection of its own, or a claim past the newest reserves nothing.
    if (!timeline && !own) {
      session = admin_session(own, false);
      if (session) timeline = standby_timeline(**session);
    }
    if (timeline && target > *timeline + 1) {
      if (auto ok = reserve_timelines(**session, self_.data_dir, *timeline + 1, target - 1); !ok) {
        return std::unexpected(ok.error());
      }
    }
  }
  Connection* asked_on = session ? *session : nullptr;
  Status promoted = promote_in_place(context_, self_, asked_on);
  if (asked_on == nullptr || !asked_on->usable()) session = admin_session(own, false);
  if (!session) return std::unexpected(promoted ? session.error() : promoted.error());
  // A step after the promotion itself may fail (a slot, say); a node that now takes writes is
  // the new primary all the same.
  auto timeline = primary_timeline(**session);
  if (!timeline) {
    return std::unexpected(promoted ? timeline.error() : promoted.error());
  }
  return Promotion{*timeline, promoted};
}

bool PgLocalNode::switched_to(TimelineId timeline) {
  return switched_to_timeline(self_.data_dir, timeline);
}

Status PgLocalNode::restart(const std::function<Status()>& stopped,
                            const std::function<void()>& spawned) {
  if (auto ok = controller_.stop(self_, StopMode::kFast); !ok) return ok;
  if (auto ok = stopped(); !ok) return ok;
  if (auto ok = controller_.spawn(self_); !ok) return ok;
  spawned();
  return controller_.start(self_);  // spawned already: waits until it accepts connections
}

Status PgLocalNode::rejoin() {
  auto outcome = rejoin_node(context_, self_);
  if (!outcome) return std::unexpected(outcome.error());
  return {};
}

Status PgLocalNode::reclone(const std::string& leader) {
  auto upstream = leader_node(leader);
  if (!upstream) return std::unexpected(upstream.error());
  auto aside = reinitialize_standby(context_, self_, **upstream);
  if (!aside) return std::unexpected(aside.error());
  return {};
}

Status PgLocalNode::checkpoint(milliseconds limit) {
  std::optional<Connection> own;
  auto session = admin_session(own, true);
  if (!session) return std::unexpected(session.error());
  return checkpoint_within(**session, limit);
}

Result<Lsn> PgLocalNode::shutdown_checkpoint() {
  auto control = programs_.control_data(self_);
  if (!control) return std::unexpected(control.error());
  return control->checkpoint;
}

PgLocalNode::~PgLocalNode() {
  if (inotify_fd_ >= 0) close(inotify_fd_);
}

void PgLocalNode::wait_for_exit(milliseconds timeout, int wake_fd) {
  if (timeout <= milliseconds(0)) return;
  // Sleeping on the postmaster's pidfd: its exit ends the wait at once; so does a wake, and, in
  // a sleep at rest (one that can be woken), a file removed from the data directory.
  pollfd entries[3];
  nfds_t count = 0;
  if (int exit_fd = process_.exit_fd(); exit_fd >= 0) entries[count++] = {exit_fd, POLLIN, 0};
  int removals = -1;
  if (wake_fd >= 0) {
    entries[count++] = {wake_fd, POLLIN, 0};
    removals = removal_watch();
    if (removals >= 0) entries[count++] = {removals, POLLIN, 0};
  }
  poll(entries, count, static_cast<int>(timeout.count()));
  if (removals >= 0) drain_removals();
}

int PgLocalNode::removal_watch() {
  if (inotify_fd_ < 0) inotify_fd_ = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
  if (inotify_fd_ >= 0 && removals_ < 0) {
    removals_ = inotify_add_watch(inotify_fd_, self_.data_dir.c_str(),
                                  IN_DELETE | IN_MOVED_FROM | IN_DELETE_SELF | IN_MOVE_SELF);
  }
  return removals_ >= 0 ? inotify_fd_ : -1;
}

// A data directory moved aside (a reclone) or removed is watched afresh at the next sleep.
void PgLocalNode::drain_removals() {
  alignas(inotify_event) char buffer[4096];
  ssize_t length = 0;
  while ((length = read(inotify_fd_, buffer, sizeof buffer)) > 0) {
    for (ssize_t at = 0; at < length;) {
      const auto* event = reinterpret_cast<const inotify_event*>(buffer + at);
      if ((event->mask & (IN_IGNORED | IN_DELETE_SELF | IN_MOVE_SELF)) != 0 && removals_ >= 0) {
        (void)inotify_rm_watch(inotify_fd_, removals_);
        removals_ = -1;
      }
      at += static_cast<ssize_t>(sizeof(inotify_event) + event->len);
    }
  }
}

// The former primary's agent fences it when its lease runs out — unless that agent (and its
// watchdog) is frozen while its PostgreSQL still serves. Nodes on this machine can be fenced
// from here: any other postmaster that runs as a primary is shut down before this node
// promotes. A fast shutdown first: its WAL senders pass every record it flushed — every commit
// it acknowledged — to the standbys before it exits, and this node waits (bounded) until it has
// received them, so such a failover loses nothing. An immediate shutdown if that takes too long.
// A former primary its own watchdog stopped cleanly moments ago shipped its last WAL on the
// way out too: this node waits for that as well.
void PgLocalNode::fence_others(const std::string& claimant) {
  for (const NodeConfig& other : config_.nodes) {
    if (other.name == self_.name) continue;
    if (std::filesystem::exists(other.data_dir + "/standby.signal")) {
      if (other.name == claimant && running_postmaster(other.data_dir)) fence_primary(other);
      continue;
    }
    if (running_postmaster(other.data_dir)) {
      fence_primary(other);
      continue;
    }
    auto control = programs_.control_data(other);
    if (control && control->cleanly_shut_down()) await_wal_of(other);
  }
}

void PgLocalNode::fence_primary(const NodeConfig& other) {
  auto pid = running_postmaster(other.data_dir);
  if (!pid) return;
  bool was_primary = !std::filesystem::exists(other.data_dir + "/standby.signal");
  kill(*pid, SIGINT);  // fast shutdown: no new work, sessions end, WAL sent, then exit
  auto gone = [&] { return kill(*pid, 0) != 0; };
  bool clean = poll_until(clock_, std::chrono::seconds(1), milliseconds(5), gone);
  if (!clean) {
    kill(*pid, SIGQUIT);  // immediate shutdown: every backend is told to exit at once
    if (!poll_until(clock_, milliseconds(500), milliseconds(5), gone)) kill(*pid, SIGKILL);
  }
  context_.report(
      fmt::format("fenced {}: its PostgreSQL ran {} without the lease ({} shutdown)", other.name,
                  was_primary ? "as a primary" : "as the claimant of the newest timeline",
                  clean ? "fast" : "immediate"));
  if (clean && was_primary) await_wal_of(other);
}

Status PgLocalNode::apply_settings(const ClusterSettings& settings) {
  std::string path = self_.data_dir + "/" + kSettingsConfName;
  if (auto ok = write_owned_file(path, render_settings_conf(settings.values, settings.revision),
                                 context_.os_user, 0600);
      !ok) {
    return fail_with_context(ok.error(), "writing " + path);
  }
  pid_t postmaster = process_.running() ? process_.pid() : 0;
  if (postmaster <= 0) return {};  // read when it starts
  // SIGHUP, as pg_ctl reload sends it: no connection needed, a starting server too.
  if (kill(postmaster, SIGHUP) != 0) {
    return fail(ErrorCode::kFailed,
                fmt::format("telling PostgreSQL to read its configuration again: {}",
                            std::strerror(errno)));
  }
  observer_.configuration_reloaded();
  return {};
}

// After a clean shutdown of `other`, waits (at most a second) until this standby has received
// its WAL up to its shutdown checkpoint.
void PgLocalNode::await_wal_of(const NodeConfig& other) {
  auto control = programs_.control_data(other);
  if (!control) return;
  auto admin = connect_local_admin(config_, self_);
  if (!admin) return;
  bool received = poll_until(clock_, std::chrono::seconds(1), milliseconds(10), [&] {
    auto lsn = received_wal(*admin);
    return lsn && *lsn > control->checkpoint;
  });
  context_.report(fmt::format("{} WAL of {} up to its shutdown checkpoint {}",
                              received ? "received the" : "did not receive all", other.name,
                              control->checkpoint.str()));
}

}  // namespace tandem
