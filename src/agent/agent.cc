#include "agent/agent.h"

#include <fmt/format.h>
#include <poll.h>
#include <signal.h>
#include <spdlog/spdlog.h>

#include <filesystem>

#include "core/role_transitions.h"
#include "ops/node_ops.h"
#include "ops/role_ops.h"
#include "ops/servers.h"
#include "ops/timeline_claim.h"

namespace tandem {
namespace {

using std::chrono::milliseconds;

milliseconds since(std::chrono::steady_clock::time_point then, Clock& clock) {
  return std::chrono::duration_cast<milliseconds>(clock.steady_now() - then);
}

}  // namespace

HaConfig ha_config_for(const ClusterConfig& config, const NodeConfig& self) {
  return {.self = self.name,
          .loop_interval = config.ha.loop_interval,
          .ttl = config.ha.ttl,
          .renew_deadline = config.ha.renew_deadline,
          .maximum_lag_on_failover = config.ha.maximum_lag_on_failover,
          .nofailover = self.nofailover,
          .synchronous_mode = config.ha.synchronous_mode,
          .quorum_fencing = config.etcd.enabled()};
}

Agent::Agent(const ClusterConfig& config, const NodeConfig& self, const OsUser& os_user,
             const PgBinaries& binaries, ProcessRunner& runner, Store& store, Clock& clock,
             Store* lease_store)
    : config_(config),
      self_(self),
      ha_(ha_config_for(config, self)),
      store_(store),
      layout_(config.name),
      clock_(clock),
      programs_(config, binaries, runner),
      process_(config.log_dir + "/" + self.name + ".log", binaries, os_user),
      controller_(config, self.name, programs_, process_),
      observer_(config, self, process_, clock),
      context_{.config = config,
               .os_user = os_user,
               .controller = controller_,
               .clock = clock,
               .report = [](const std::string& line) { spdlog::info("  {}", line); }},
      sync_(context_, self, store, layout_),
      lease_(lease_store != nullptr ? *lease_store : store, layout_.leader(), self.name, ha_.ttl,
             clock) {
  // A renewal that finds another holder stops a writable PostgreSQL at once, from the keeper's
  // thread: a promotion or a checkpoint in the cycle must not delay it.
  lease_.on_lost([this] {
    pid_t postmaster = writable_postmaster_.load();
    if (postmaster > 0) kill(postmaster, SIGQUIT);
  });
  // One machine: the watchdog stops PostgreSQL renew_deadline after the last confirmed
  // renewal, however slowly the store answers. (Several machines: the agents' answers do.)
  lease_.on_renewed([this](std::chrono::steady_clock::time_point at) {
    if (watchdog_ != nullptr && !ha_.quorum_fencing) watchdog_->keep_alive(at);
  });
  // Renewals every quarter TTL leave several chances before renew_deadline.
  lease_.start(ha_.ttl / 4);
}

Agent::~Agent() { lease_.stop(); }

std::chrono::milliseconds proof_of_fencing(const HaConfig& ha) {
  return ha.renew_deadline + 5 * ha.loop_interval;
}

const NodeConfig* Agent::leader_node(const std::string& name) const {
  return name.empty() ? nullptr : config_.find_node(name);
}

Decision Agent::cycle() {
  NodeObservation node = observer_.observe();
  if (node.state != PgState::kPrimary) sync_.reset();
  refresh_primary_details(node);
  node.lease_renewed_at = lease_.confirmed_at();
  count_attempts(node);
  if (contacts_ != nullptr) {
    // A ping answered within two cycles is a peer's word now (docs/ARCHITECTURE.md,
    // "Several machines", for the arithmetic).
    QuorumFacts facts =
        contacts_->facts(clock_.steady_now(), proof_of_fencing(ha_), 2 * ha_.loop_interval);
    node.majority_contact_age = facts.majority_contact_age;
    node.proven_fenced = std::move(facts.proven_fenced);
    node.takeover_blockers = std::move(facts.takeover_blockers);
  }
  std::optional<ClusterView> view;
  auto snapshot = store_.read(layout_.prefix());
  store_error_ = snapshot ? "" : snapshot.error().message;
  if (snapshot) {
    view = layout_.view(*snapshot);
    // This cycle's own facts beat the record published a cycle ago.
    view->members[self_.name] = member_record(node);
    // The last OTHER leader: a lease handed to this node names this node before it promotes.
    if (view->leader && !view->leader_is(self_.name)) last_leader_ = view->leader->name;
    last_optime_ = view->last_leader_lsn;
  }
  watch_postmaster(node.state == PgState::kPrimary);
  if (watchdog_ != nullptr) {
    auto fenced = watchdog_->fenced_at();
    if (fenced && fenced != watchdog_fenced_at_) {
      watchdog_fenced_at_ = fenced;
      spdlog::warn(
          "the watchdog stopped PostgreSQL: its right to write was not confirmed for {} ms "
          "({})",
          ha_.renew_deadline.count(),
          ha_.quorum_fencing ? "no answer from a majority of the agents" : "no lease renewal");
    }
  }
  Decision decision = decide(view, node, ha_, clock_.steady_now());
  Status result = execute(decision, node, view);
  record_attempt(decision.action, result);
  if (view) publish(node);
  log_cycle(decision, result);
  report(node, view, decision, !result);
  return decision;
}

// A primary that ran for ten seconds came back for good; until then its restarts count.
void Agent::count_attempts(NodeObservation& node) {
  if (node.state != PgState::kPrimary) {
    primary_since_.reset();
  } else if (!primary_since_) {
    primary_since_ = clock_.steady_now();
  } else if (since(*primary_since_, clock_) >= std::chrono::seconds(10)) {
    start_failures_ = 0;
  }
  node.rejoin_failures = rejoin_failures_;
  node.start_failures = start_failures_;
}

void Agent::record_attempt(Action action, const Status& result) {
  switch (action) {
    case Action::kRejoin:
      rejoin_failures_ = result ? 0 : rejoin_failures_ + 1;
      break;
    case Action::kReclone:
      if (result) rejoin_failures_ = 0;
      break;
    case Action::kStartPrimary:
      ++start_failures_;
      break;
    case Action::kReleaseLease:
      if (result) start_failures_ = 0;
      break;
    default:
      break;
  }
}

void Agent::watch_postmaster(bool writable) {
  pid_t postmaster = writable ? process_.pid() : 0;
  writable_postmaster_ = postmaster;
  if (watchdog_ != nullptr) watchdog_->watch(postmaster);
}

void Agent::refresh_primary_details(const NodeObservation& node) {
  if (node.state != PgState::kPrimary) {
    primary_details_.reset();
    return;
  }
  if (primary_details_ && since(primary_details_at_, clock_) < std::chrono::seconds(1)) return;
  primary_details_ = observer_.primary_details();
  primary_details_at_ = clock_.steady_now();
}

void Agent::report(const NodeObservation& node, const std::optional<ClusterView>& view,
                   const Decision& decision, bool failed) {
  ++cycles_;
  if (board_ == nullptr) return;
  AgentSnapshot snapshot{.node = node,
                         .view = view,
                         .decision = decision,
                         .decision_failed = failed,
                         .cycles = cycles_,
                         .at = clock_.steady_now()};
  snapshot.node.lease_renewed_at = lease_.confirmed_at();
  if (view && view->leader_is(self_.name) && snapshot.node.lease_renewed_at) {
    snapshot.lease_remaining =
        std::max(milliseconds(0), ha_.ttl - since(*snapshot.node.lease_renewed_at, clock_));
  }
  auto wall = std::chrono::duration_cast<milliseconds>(clock_.wall_now().time_since_epoch());
  board_->publish(std::move(snapshot), wall.count());
}

void Agent::serve_request() {
  if (board_ == nullptr) return;
  auto request = board_->take_request();
  if (!request) return;
  Status result = carry_out(*request);
  spdlog::info("{} requested through the API: {}",
               *request == NodeRequest::kRestart ? "restart" : "reinitialize",
               result ? "done" : "failed: " + result.error().message);
  board_->finish(std::move(result));
}

Status Agent::carry_out(NodeRequest request) {
  auto snapshot = store_.read(layout_.prefix());
  if (!snapshot) return fail_with_context(snapshot.error(), "reading the store");
  ClusterView view = layout_.view(*snapshot);
  if (request == NodeRequest::kRestart) {
    if (view.leader_is(self_.name)) {
      // The keeper renews throughout the restart; a fresh renewal proves the lease first.
      Status renewed = lease_.held() ? lease_.renew() : lease_.adopt(view.leader->revision);
      if (!renewed)
        return fail_with_context(renewed.error(), "renewing the lease before the restart");
    }
    watch_postmaster(false);  // a restart may take longer than the watchdog's deadline
    if (auto ok = controller_.stop(self_, StopMode::kFast); !ok) return ok;
    return controller_.start(self_);
  }
  if (!view.leader || view.leader_is(self_.name)) {
    return fail(ErrorCode::kConflict,
                view.leader ? self_.name + " is the leader: only a standby is reinitialized"
                            : "nobody leads: there is no primary to copy");
  }
  const NodeConfig* leader = leader_node(view.leader->name);
  if (leader == nullptr)
    return fail(ErrorCode::kNotFound, view.leader->name + " is not configured");
  auto aside = reinitialize_standby(context_, self_, *leader);
  if (!aside) return std::unexpected(aside.error());
  return {};
}

Status Agent::execute(const Decision& decision, const NodeObservation& node,
                      const std::optional<ClusterView>& view) {
  if (decision.action == Action::kNone) return {};
  if (find_transition(node.state, decision.action) == nullptr) {
    return fail(ErrorCode::kConflict,
                fmt::format("refusing {} from state {}: not in the transition table",
                            action_name(decision.action), pg_state_name(node.state)));
  }
  switch (decision.action) {
    case Action::kNone:
      return {};
    case Action::kBootstrap:
      return bootstrap();
    case Action::kClone:
      return clone_standby(context_, self_, decision.leader);
    case Action::kStartPrimary: {
      // The lease is proven first: a standby that has just taken it over must win.
      if (auto ok = renew_lease(*view, node); !ok) return ok;
      if (auto ok = write_node_files(context_, self_, nullptr); !ok) return ok;
      Status spawned = controller_.spawn(self_);
      if (spawned) watch_postmaster(true);
      return spawned;
    }
    case Action::kStartStandby:
      return start_standby(decision.leader);
    case Action::kRenewLease: {
      if (auto ok = renew_lease(*view, node); !ok) {
        if (ha_.quorum_fencing) {
          // The agents, not the store, keep this primary: an unreachable store changes nothing.
          // But a lost compare-and-set means another node holds the lease now.
          if (ok.error().code == ErrorCode::kConflict && node.state == PgState::kPrimary) {
            (void)controller_.stop(self_, StopMode::kImmediate);
            return fail_with_context(ok.error(), "the lease was taken over; fenced");
          }
          return ok;
        }
        // The one place the executor fences on its own: a failed renewal past the deadline
        // leaves no cycle to wait for.
        auto renewed_at = lease_.confirmed_at();
        bool late = !renewed_at || since(*renewed_at, clock_) >= ha_.renew_deadline;
        if (late && node.state == PgState::kPrimary) {
          lease_.drop();
          (void)controller_.stop(self_, StopMode::kImmediate);
          return fail_with_context(ok.error(), "renewal failed past the deadline; fenced");
        }
        return ok;
      }
      if (!ha_.synchronous_mode || node.state != PgState::kPrimary) return {};
      auto changed = sync_.update(*view);
      if (!changed) return std::unexpected(changed.error());
      if (!changed->empty()) context_.report(*changed);
      return {};
    }
    case Action::kAcquireLease:
      return lease_.acquire();
    case Action::kTakeOver:
      if (!decision.leader.empty() && view->leader_is(decision.leader)) {
        // Quorum fencing: the former leader is proven fenced but its lease lives on. Removing
        // it only if unchanged: had that leader renewed meanwhile, it would keep it.
        if (auto ok = store_.remove(layout_.leader(), view->leader->revision); !ok) {
          return fail_with_context(ok.error(), "removing the lease of " + decision.leader);
        }
      }
      if (auto ok = lease_.acquire(); !ok) return ok;
      if (!ha_.quorum_fencing) {
        fence_other_primaries();
        await_stopped_primaries();
      }
      return promote(*view, node, decision.reason);  // watched from promote_in_place on
    case Action::kPromote:
      // The lease was handed over: confirm it is still this node's before writing.
      if (auto ok = renew_lease(*view, node); !ok) return ok;
      return promote(*view, node, decision.reason);
    case Action::kHandOver:
      return hand_over(*view, decision.leader);
    case Action::kFollow: {
      if (auto ok = write_node_files(context_, self_, leader_node(decision.leader)); !ok) return ok;
      return controller_.reload(self_);
    }
    case Action::kFence:
    case Action::kDemote:
      watch_postmaster(false);
      lease_.drop();
      return controller_.stop(self_, StopMode::kImmediate);
    case Action::kRejoin: {
      auto outcome = rejoin_node(context_, self_);
      if (!outcome) return std::unexpected(outcome.error());
      return {};
    }
    case Action::kReclone: {
      const NodeConfig* leader = leader_node(decision.leader);
      if (leader == nullptr)
        return fail(ErrorCode::kNotFound, decision.leader + " is not configured");
      auto aside = reinitialize_standby(context_, self_, *leader);
      if (!aside) return std::unexpected(aside.error());
      return {};
    }
    case Action::kReleaseLease: {
      if (!lease_.held()) {
        if (auto ok = lease_.adopt(view->leader->revision); !ok) return ok;
      }
      return lease_.release();
    }
  }
  return {};
}

Status Agent::bootstrap() {
  auto won = store_.create(layout_.initialize(), self_.name, std::nullopt);
  if (!won) {
    if (won.error().code == ErrorCode::kConflict) {
      return fail(ErrorCode::kConflict, "another agent won the initialize key first");
    }
    return std::unexpected(won.error());
  }
  spdlog::info("won the initialize key: bootstrapping the cluster");
  // Nobody else has data to take over with, so the lease is taken once PostgreSQL is up.
  if (auto ok = init_primary(context_, self_); !ok) return ok;
  if (auto ok = lease_.acquire(); !ok) return ok;
  auto now = std::chrono::duration_cast<milliseconds>(clock_.wall_now().time_since_epoch());
  auto written = store_.put(layout_.history(now.count()),
                            encode_history({.time_ms = now.count(),
                                            .to = self_.name,
                                            .timeline = 1,
                                            .reason = "bootstrapped the cluster"}),
                            std::nullopt);
  if (!written) return std::unexpected(written.error());
  return {};
}

Status Agent::renew_lease(const ClusterView& view, const NodeObservation& node) {
  // A request this node has carried out (or that named an old leader) is done with.
  if (view.switchover && view.switchover->from != self_.name &&
      (view.switchover->to.empty() || view.switchover->to == self_.name) &&
      node.state == PgState::kPrimary) {
    (void)store_.remove(layout_.switchover(), std::nullopt);
  }
  // The keeper renews every quarter TTL on its own; the cycle renews only a lease it does not
  // keep yet (handed over, or held before this agent started) or one the keeper let age.
  Status renewed = lease_.held() ? lease_.renew(ha_.ttl / 4) : lease_.adopt(view.leader->revision);
  if (!renewed) return renewed;
  publish_optime(node);
  return {};
}

void Agent::publish_optime(const NodeObservation& node) {
  if (node.state != PgState::kPrimary || !node.received_lsn ||
      node.received_lsn == published_optime_) {
    return;
  }
  if (store_.put(layout_.optime(), node.received_lsn->str(), std::nullopt)) {
    published_optime_ = node.received_lsn;
  }
}

Status Agent::promote(const ClusterView& view, const NodeObservation& node,
                      const std::string& reason) {
  std::string former = last_leader_;
  if (view.switchover && !view.switchover->from.empty()) former = view.switchover->from;
  std::optional<std::int64_t> lost_bytes;
  if (last_optime_ && node.received_lsn) {
    lost_bytes = std::max<std::int64_t>(0, last_optime_->bytes_after(*node.received_lsn));
  }
  // No timeline number serves two histories: the new one is claimed first.
  auto claimed = claim_timeline(store_, layout_, self_.name, node.timeline);
  if (!claimed) return std::unexpected(claimed.error());
  if (ha_.synchronous_mode) {
    // From here on only this node is sure to have every acknowledged commit; the last leader
    // and its synchronous standby no longer are.
    auto put = store_.put(layout_.sync(), encode_sync(self_.name, ""), std::nullopt);
    if (!put) return fail_with_context(put.error(), "naming this node in sync");
  }
  Status promoted = promote_in_place(context_, self_);
  auto rows = connect_local_admin(config_, self_);
  if (!promoted) {
    // A step after the promotion itself may fail (a slot, say); a node that now takes writes is
    // the new primary all the same, and its history must say so.
    auto writable = rows ? rows->query("SELECT (NOT pg_is_in_recovery())::text AS w")
                         : Result<QueryResult>(std::unexpected(rows.error()));
    if (!writable || writable->text(0, "w") != "true") return promoted;
  }
  watch_postmaster(true);
  TimelineId timeline = *claimed;
  if (rows) {
    auto tli = rows->query(
        "SELECT (('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::int)"
        "::text AS tli");
    if (tli) timeline = std::stoul(tli->text(0, "tli"));
  }
  if (timeline != *claimed) {
    spdlog::error("promoted to timeline {}, not the claimed {}", timeline, *claimed);
  }
  auto now = std::chrono::duration_cast<milliseconds>(clock_.wall_now().time_since_epoch());
  auto written = store_.put(layout_.history(now.count()),
                            encode_history({.time_ms = now.count(),
                                            .from = former,
                                            .to = self_.name,
                                            .timeline = timeline,
                                            .switch_lsn = node.replayed_lsn,
                                            .lost_bytes = lost_bytes,
                                            .reason = reason}),
                            std::nullopt);
  if (!written) return std::unexpected(written.error());
  last_leader_.clear();  // this node leads now; the next other leader will be seen
  return promoted;
}

// The former primary's agent fences it when its lease runs out — unless that agent is frozen
// (stopped, swapped out) while its PostgreSQL still serves. Nodes on this machine can be
// fenced from here: any other postmaster that runs as a primary is shut down before this node
// promotes. A fast shutdown first: its WAL senders pass every record it flushed — every commit
// it acknowledged — to the standbys before it exits, and this node waits (bounded) until it has
// received them, so such a failover loses nothing. An immediate shutdown if that takes too long.
// Nodes elsewhere rely on their own agent (and, with etcd, on more).
void Agent::fence_other_primaries() {
  for (const NodeConfig& other : config_.nodes) {
    if (other.name == self_.name) continue;
    auto pid = running_postmaster(other.data_dir);
    if (!pid || std::filesystem::exists(other.data_dir + "/standby.signal")) continue;
    kill(*pid, SIGINT);  // fast shutdown: no new work, sessions end, WAL sent, then exit
    auto gone = [&] { return kill(*pid, 0) != 0; };
    bool clean = poll_until(clock_, std::chrono::seconds(1), milliseconds(5), gone);
    if (!clean) {
      kill(*pid, SIGQUIT);  // immediate shutdown: every backend is told to exit at once
      if (!poll_until(clock_, milliseconds(500), milliseconds(5), gone)) kill(*pid, SIGKILL);
    }
    context_.report(
        fmt::format("fenced {}: its PostgreSQL ran as a primary without the lease "
                    "({} shutdown)",
                    other.name, clean ? "fast" : "immediate"));
    if (clean) await_wal_of(other);
  }
}

// A former primary on this machine that its own watchdog stopped cleanly moments ago shipped
// its last WAL on the way out: wait (bounded) until this node has it, before promoting.
void Agent::await_stopped_primaries() {
  for (const NodeConfig& other : config_.nodes) {
    if (other.name == self_.name || running_postmaster(other.data_dir) ||
        std::filesystem::exists(other.data_dir + "/standby.signal")) {
      continue;
    }
    auto control = programs_.control_data(other);
    if (control && control->cleanly_shut_down()) {
      await_wal_of(other);
    }
  }
}

// After a clean shutdown of `other`, waits (at most a second) until this standby has received
// its WAL up to its shutdown checkpoint.
void Agent::await_wal_of(const NodeConfig& other) {
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

Status Agent::hand_over(const ClusterView& view, const std::string& target) {
  // A clean stop: the WAL senders pass every record, the shutdown checkpoint included, to the
  // standbys before PostgreSQL exits, so the target loses nothing and this node can follow it
  // without a rewind. The watchdog rests: a clean stop may take longer than its deadline; the
  // keeper renews the lease meanwhile.
  if (!lease_.held()) {
    if (auto ok = lease_.adopt(view.leader->revision); !ok) return ok;
  }
  watch_postmaster(false);
  if (auto ok = controller_.stop(self_, StopMode::kFast); !ok) return ok;
  auto control = programs_.control_data(self_);
  if (control) (void)store_.put(layout_.optime(), control->checkpoint.str(), std::nullopt);
  Status handed = lease_.held() ? lease_.hand_over(target)
                                : fail(ErrorCode::kConflict, "the lease is no longer held");
  if (!handed) return fail_with_context(handed.error(), "handing the lease to " + target);
  return {};
}

Status Agent::start_standby(const std::string& leader) {
  const NodeConfig* upstream = leader_node(leader);
  if (auto ok = write_node_files(context_, self_, upstream, ServerRole::kStandby); !ok) return ok;
  return controller_.spawn(self_);
}

MemberRecord Agent::member_record(const NodeObservation& node) const {
  return {
      .name = self_.name,
      .state = node.state,
      .timeline = node.timeline,
      .received_lsn = node.received_lsn,
      .replayed_lsn = node.replayed_lsn,
      .upstream = node.upstream,
      .api_address = self_.api_port != 0 ? fmt::format("{}:{}", self_.host, self_.api_port) : "",
      .nofailover = self_.nofailover,
      .primary = primary_details_};
}

void Agent::publish(const NodeObservation& node) {
  std::string encoded = encode_member(member_record(node));
  if (encoded == published_record_ && since(published_at_, clock_) < ha_.ttl / 3) return;
  if (store_.put(layout_.member(self_.name), encoded, ha_.ttl)) {
    published_record_ = encoded;
    published_at_ = clock_.steady_now();
  }
}

void Agent::log_cycle(const Decision& decision, const Status& result) {
  std::string line = fmt::format("{}: {}", action_name(decision.action), decision.reason);
  if (!store_error_.empty()) line += fmt::format(" [{}]", store_error_);
  if (!result) line += fmt::format(" -- failed: {}", result.error().message);
  // One line per cycle, but ten identical lines a second help nobody: a repeat is logged once
  // every ten seconds with its count.
  int repeats_per_log = static_cast<int>(std::chrono::seconds(10) / ha_.loop_interval);
  if (line == last_line_ && ++repeats_ % repeats_per_log != 0) return;
  if (line == last_line_) {
    spdlog::info("{} (x{})", line, repeats_);
  } else {
    spdlog::info("{}", line);
    repeats_ = 0;
  }
  last_line_ = line;
}

void Agent::wait_for_next_cycle(std::chrono::steady_clock::time_point cycle_start) {
  auto left = ha_.loop_interval - since(cycle_start, clock_);
  if (left <= milliseconds(0)) return;
  // Sleeping on the postmaster's pidfd: its exit ends the wait at once.
  pollfd entry{process_.exit_fd(), POLLIN, 0};
  poll(&entry, entry.fd >= 0 ? 1 : 0, static_cast<int>(left.count()));
}

void Agent::run(const std::atomic<bool>& stop) {
  spdlog::info("agent of {} starting (loop {} ms, lease {} ms, fence after {} ms)", self_.name,
               ha_.loop_interval.count(), ha_.ttl.count(), ha_.renew_deadline.count());
  while (!stop.load()) {
    auto start = clock_.steady_now();
    serve_request();
    cycle();
    wait_for_next_cycle(start);
  }
  shut_down();
}

void Agent::shut_down() {
  std::optional<ClusterView> view;
  if (auto snapshot = store_.read(layout_.prefix())) view = layout_.view(*snapshot);
  if (view && view->leader_is(self_.name) && !lease_.held()) {
    (void)lease_.adopt(view->leader->revision);
  }
  // A clean stop sends every WAL record to the standbys before the lease is handed over.
  watch_postmaster(false);
  if (auto ok = controller_.stop(self_, StopMode::kFast); !ok) {
    spdlog::warn("stopping PostgreSQL: {}", ok.error().message);
  }
  Status released = release_lease(view);
  lease_.stop();
  spdlog::info("stopped: PostgreSQL shut down cleanly{}",
               released ? "" : "; the lease: " + released.error().message);
  (void)store_.remove(layout_.member(self_.name), std::nullopt);
}

// A leader that stops cleanly hands its lease to the best standby at once (it has every
// record, the shutdown checkpoint included); with none eligible, it removes the lease.
Status Agent::release_lease(const std::optional<ClusterView>& view) {
  if (!lease_.held() || !view) return {};
  std::vector<std::string> candidates = failover_candidates(*view, ha_);
  std::erase(candidates, self_.name);
  if (candidates.empty()) {
    auto released = lease_.release();
    if (released) spdlog::info("no standby is eligible: lease released");
    return released;
  }
  if (auto control = programs_.control_data(self_)) {
    (void)store_.put(layout_.optime(), control->checkpoint.str(), std::nullopt);
  }
  auto handed = lease_.hand_over(candidates.front());
  if (handed) spdlog::info("lease handed over to {}", candidates.front());
  return handed;
}

}  // namespace tandem
