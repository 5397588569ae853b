#include "agent/agent.h"

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <signal.h>
#include <spdlog/spdlog.h>

#include <algorithm>

#include "core/member_change.h"
#include "core/reload_plan.h"
#include "core/role_transitions.h"
#include "ops/timeline_claim.h"
#include "pg/postmaster.h"

namespace tandem {
namespace {

using std::chrono::milliseconds;

milliseconds since(std::chrono::steady_clock::time_point then, Clock& clock) {
  return std::chrono::duration_cast<milliseconds>(clock.steady_now() - then);
}

milliseconds steady_ms(Clock& clock) {
  return std::chrono::duration_cast<milliseconds>(clock.steady_now().time_since_epoch());
}

}  // namespace

HaConfig ha_config_for(const ClusterConfig& config, const NodeConfig& self) {
  return {.self = self.name,
          .loop_interval = config.ha.loop_interval,
          .ttl = config.ha.ttl,
          .renew_deadline = config.ha.renew_deadline,
          .cycle_stall_limit = effective_stall_limit(config.ha),
          .maximum_lag_on_failover = config.ha.maximum_lag_on_failover,
          .nofailover = self.nofailover,
          .synchronous_mode = config.ha.synchronous_mode,
          .synchronous_quorum = config.ha.synchronous_mode && config.ha.synchronous_quorum,
          .freeze_settle = config.replication.wal_retrieve_retry_interval + config.ha.loop_interval,
          .quorum_fencing = config.on_several_machines(),
          .backup_schedule =
              // With a repository host, backups are taken there (tandem repository).
          config.backup.enabled() && !config.backup.remote() ? config.backup.schedule
                                                             : std::chrono::milliseconds(0),
          .backup_full_every = config.backup.full_every,
          .backup_repository = config.backup.enabled()};
}

Agent::Agent(const AgentParts& parts)
    : config_(parts.config),
      self_(parts.self),
      ha_(ha_config_for(parts.config, parts.self)),
      running_config_(parts.config),
      reload_requested_(parts.reload_requested),
      read_config_(parts.read_config),
      node_(parts.node),
      store_(parts.store),
      layout_(parts.layout != nullptr ? *parts.layout : ClusterLayout(parts.config.name)),
      clock_(parts.clock),
      watchdog_(parts.watchdog),
      contacts_(parts.contacts),
      board_(parts.board),
      store_lock_(parts.store_lock),
      callbacks_(parts.callbacks),
      service_(parts.service),
      lease_store_(parts.lease_store != nullptr ? *parts.lease_store : parts.store),
      lease_(lease_store_, layout_.leader(), parts.self.name, ha_.ttl, parts.clock) {
  backups_ = parts.backups;
  waker_ = parts.waker;
  wakeable_ = parts.wakeable && board_ != nullptr && board_->wake_fd() >= 0;
  next_sleep_ = ha_.loop_interval;
  if (parts.carry != nullptr) {
    settled_role_ = parts.carry->settled_role;
    last_leader_ = parts.carry->last_leader;
    promoting_postmaster_ = parts.carry->promoting_postmaster;
    unrecorded_promotion_ = parts.carry->unrecorded_promotion;
    writable_postmaster_ = parts.carry->writable_postmaster;
    watchdog_gone_since_ = parts.carry->watchdog_gone_since;
    if (parts.carry->lease) lease_.resume(*parts.carry->lease);
  }
  // A renewal that finds another holder stops a writable PostgreSQL at once, from the keeper's
  // thread: a promotion or a checkpoint in the cycle must not delay it.
  lease_.on_lost([this] {
    pid_t postmaster = writable_postmaster_.load();
    if (postmaster <= 0) return;
    spdlog::warn(
        "a renewal found the lease held by another node (or could not read it back): "
        "PostgreSQL stopped at once");
    kill(postmaster, SIGQUIT);
  });
  // The watchdog stops PostgreSQL renew_deadline after the last confirmed renewal, however
  // slowly the store answers; on several machines, after the later of that and the last
  // majority of the agents' answers (the pinger feeds those).
  lease_.on_renewed([this](std::chrono::steady_clock::time_point at) {
    if (watchdog_ != nullptr) watchdog_->keep_alive(at);
  });
  lease_.on_answered([this](milliseconds round_trip) { note_renewal_round_trip(round_trip); });
  // A cycle that never returns (a call stuck in the kernel, a deadlock) does not keep the lease
  // for good through the keeper: its PostgreSQL is stopped, the lease left to lapse.
  lease_.set_stall_limit(ha_.cycle_stall_limit);
  lease_.on_stalled([this](milliseconds silent) { return cycle_stalled(silent); });
  // Renewals every quarter TTL leave several chances before renew_deadline.
  if (parts.keeper_thread) lease_.start(ha_.ttl / 4);
}

Agent::~Agent() { lease_.stop(); }

AgentCarry Agent::retire() {
  lease_.stop();
  return {.settled_role = settled_role_,
          .last_leader = last_leader_,
          .promoting_postmaster = promoting_postmaster_,
          .unrecorded_promotion = unrecorded_promotion_,
          .lease = lease_.kept(),
          .writable_postmaster = writable_postmaster_.load(),
          .watchdog_gone_since = watchdog_gone_since_};
}

bool Agent::others_may_lead() {
  if (!ha_.synchronous_mode) return true;
  // The cycle that hung may have named the synchronous standby after it read the store: a
  // leader restarted in place unnamed it, named it again in its last cycle before the hang, and
  // kept its lease — its PostgreSQL crashed meanwhile — for the whole 30 s hang, the named
  // standby able to take over all along (seed 277724970).
  // Read at most every ttl / 2: the keeper asks every tick while the lease is kept, and a slow
  // store must not hold up its renewals.
  auto now = std::chrono::duration_cast<milliseconds>(clock_.steady_now().time_since_epoch());
  std::int64_t last = sync_read_at_ms_.load();
  if (last < 0 || now.count() - last >= (ha_.ttl / 2).count()) {
    sync_read_at_ms_ = now.count();
    if (auto sync = lease_store_.read(layout_.sync())) {
      others_may_lead_ = tandem::others_may_lead(layout_.view(*sync), ha_);
    }
  }
  return others_may_lead_.load();
}

// From the keeper's thread: the cycle has not run for ha.cycle_stall_limit. Unless nobody else
// may lead (synchronous mode without a synchronous standby: this primary goes on serving),
// the writable postmaster is stopped at once, the keeper stops renewing and, once the
// postmaster is gone, the pings are answered "stopped, leading nobody": the others take over
// as from any primary that died. Asked once a stall, with the lease held or not.
bool Agent::cycle_stalled(milliseconds silent) {
  if (!others_may_lead()) {
    if (!stall_said_.exchange(true)) {
      spdlog::error(
          "the agent's cycle has not run for {} ms (ha.cycle_stall_limit {} ms), but no "
          "synchronous standby could take over: the lease is kept",
          silent.count(), ha_.cycle_stall_limit.count());
    }
    return false;
  }
  if (lease_.held() || writable_postmaster_.load() > 0) {
    spdlog::error(
        "the agent's cycle has not run for {} ms (ha.cycle_stall_limit {} ms): a writable "
        "PostgreSQL is stopped and the lease left to lapse, so that another node leads; the "
        "pings say this node leads nothing until the cycle runs again",
        silent.count(), ha_.cycle_stall_limit.count());
  } else {  // a long copy or rewind of a standby, say: nothing to stop
    spdlog::info(
        "the agent's cycle has been in one step for {} ms (ha.cycle_stall_limit {} ms): the "
        "pings say this node leads nothing until the cycle runs again",
        silent.count(), ha_.cycle_stall_limit.count());
  }
  if (pid_t postmaster = writable_postmaster_.load(); postmaster > 0) {
    kill(postmaster, SIGQUIT);
    for (int waited = 0; waited < 300 && process_alive(postmaster); ++waited) {
      clock_.sleep_for(milliseconds(10));
    }
    if (process_alive(postmaster)) kill(postmaster, SIGKILL);
    for (int waited = 0; waited < 300 && process_alive(postmaster); ++waited) {
      clock_.sleep_for(milliseconds(10));
    }
    if (process_alive(postmaster)) return true;  // still "may write": nobody takes over
  }
  if (board_ != nullptr) board_->set_stalled_out();
  return true;
}

Status Agent::still_keeping_lease() const {
  if (lease_.held()) return {};
  return fail(ErrorCode::kConflict,
              "the lease was given up meanwhile (this step hung past ha.cycle_stall_limit)");
}

// A store that takes a third of renew_deadline to answer a write of the lease leaves little
// room: one slower answer and the watchdog stops PostgreSQL. Said at most every ten seconds.
void Agent::note_renewal_round_trip(milliseconds round_trip) {
  renewal_round_trip_ms_.store(round_trip.count());
  if (round_trip < ha_.renew_deadline / 3) return;
  std::int64_t now_ms =
      std::chrono::duration_cast<milliseconds>(clock_.steady_now().time_since_epoch()).count();
  std::int64_t last = slow_renewal_warned_ms_.load();
  if (last != 0 && now_ms - last < 10000) return;
  if (!slow_renewal_warned_ms_.compare_exchange_strong(last, now_ms)) return;
  spdlog::warn(
      "the store took {} ms to answer a write of the lease; the watchdog stops PostgreSQL when "
      "no renewal is confirmed for {} ms (ha.renew_deadline): if this repeats, raise ha.ttl or "
      "speed up the store (etcd wants fast disks)",
      round_trip.count(), ha_.renew_deadline.count());
}

Decision Agent::cycle() {
  cycle_started_ = clock_.steady_now();
  lease_.cycle_ran(cycle_started_);
  stall_said_ = false;
  // The store first: its read may wait for seconds (etcd out of reach), and a decision must rest
  // on what the node is NOW — its watchdog may have stopped it meanwhile, another may have
  // promoted. (The store's side is checked again by every compare-and-set.)
  // Before the store: a backup that ends meanwhile has written "done" before it stops running.
  bool backup_running = backups_ != nullptr && backups_->running();
  std::int64_t backup_finished = backups_ != nullptr ? backups_->finished_ms() : 0;
  auto snapshot = layout_.read_state(store_);
  store_error_ = snapshot ? "" : snapshot.error().message;
  std::optional<ClusterView> view;
  if (snapshot) view = layout_.view(*snapshot);
  std::optional<RestFacts> rest = rest_facts(view);
  NodeObservation node = node_.observe(rest && may_rest(*rest, ha_));
  node.backup_running = backup_running;
  node.backup_finished_ms = backup_finished;
  node.settings_applied = settings_applied_;
  // This observation read the server's configuration state since the last apply (the observer
  // reads it at once after one): its record may say so.
  settings_confirmed_ = settings_applied_;
  log_configuration_errors(node);
  if (node.state != PgState::kPrimary) node_.reset_sync();
  refresh_primary_details(node);
  node.lease_renewed_at = lease_.confirmed_at();
  attempts_.observe(node, clock_.steady_now());
  add_quorum_facts(node);
  watch_store_lock(node);
  watch_watchdog(node);
  node.settled_role_before = settled_role_;
  if (auto role = settled_role(node.state)) settled_role_ = role;
  node.wall_ms =
      std::chrono::duration_cast<milliseconds>(clock_.wall_now().time_since_epoch()).count();

  bool act = true;  // false while the members change under it (follow_member_list)
  if (view) {
    act = follow_member_list(*view, *snapshot);
    others_may_lead_ = tandem::others_may_lead(*view, ha_);
    take_stored_promise(*view);
    // This cycle's own facts beat the record published a cycle ago.
    view->members[self_.name] = member_record(node);
    // The last OTHER leader: a lease handed to this node names this node before it promotes.
    if (view->leader && !view->leader_is(self_.name)) last_leader_ = view->leader->name;
    note_leader_archived(*view);
    track_lease(*view, node);
  }
  watch_what_may_write(view, node);
  Decision decision =
      act ? decide(view, node, ha_, clock_.steady_now())
          : Decision{.reason = "the member list in the store changed: taken before deciding"};
  // Kept as it was when decide did not run (no store, or the member list changing).
  if (view && act) keep_promise(decision);
  say_ready(view, node, decision);
  if (decision.callback && callbacks_ != nullptr) callbacks_->fire(*decision.callback);
  Status result = execute(decision, node, view);
  if (decision.action == Action::kClone || decision.action == Action::kRejoin ||
      decision.action == Action::kReclone || decision.action == Action::kBootstrap) {
    // The copy or rewind brought the source's tandem.settings.conf, perhaps a revision older:
    // written again next cycle.
    settings_applied_ = 0;
  }
  if (decision.backup && backups_ != nullptr && result) start_backup(*decision.backup);
  if (decision.read_repository && backups_ != nullptr && result) backups_->read_repository(self_);
  attempts_.record(decision, static_cast<bool>(result), view && view->leader_is(self_.name),
                   clock_.steady_now());
  remember_for_rest(node, decision, result);
  next_sleep_ = next_sleep(view, !rest || rest->holder_changed);
  if (view) publish(node);
  log_cycle(decision, result);
  report(node, view, decision, !result);
  return decision;
}

// A promotion that failed for its agent, once PostgreSQL shows it went through (its timeline's
// history file): recorded, as any promotion is.
// The service manager hears READY once this node's record is in the store: published before
// the first cycle's step, which may be a copy of the primary taking hours (boot waits for a
// Type=notify unit's READY).
void Agent::say_ready(const std::optional<ClusterView>& view, const NodeObservation& node,
                      const Decision& decision) {
  if (service_ == nullptr || ready_said_ || !view) return;
  publish(node);
  if (!published_record_) return;
  service_->ready(fmt::format("{}: {}", action_name(decision.action), decision.reason));
  ready_said_ = true;
}

// What the old primary may have died before archiving, marked for this node's archiver while it
// is a standby still (Decision::archive_received_wal): a few milliseconds, before a promotion.
void Agent::mark_received_wal(const Decision& decision) {
  if (decision.archive_received_wal && backups_ != nullptr) {
    backups_->mark_received_wal(self_, leader_archived_);
  }
}

// The last segment the other leader's primary was seen to archive: what a promotion of this
// node need not archive again (Decision::archive_received_wal).
void Agent::note_leader_archived(const ClusterView& view) {
  if (!view.leader || view.leader_is(self_.name)) return;
  auto record = view.members.find(view.leader->name);
  if (record == view.members.end() || !record->second.primary ||
      !record->second.primary->archiver) {
    return;
  }
  leader_archived_ = record->second.primary->archiver->last_archived_wal;
}

void Agent::record_finished_promotion(const ClusterView* view) {
  if (!unrecorded_promotion_ || !node_.switched_to(unrecorded_promotion_->timeline)) return;
  // A forced failover to this node is carried out: it ran as a primary. Kept, it would be
  // carried out again after the failovers that followed this node's fencing (fresh seed
  // 204529234: the target frozen mid-promotion, two take-overs, then the same failover again).
  // Removed (by its revision) whether or not the history can be written now.
  if (view != nullptr && view->switchover && view->switchover->force &&
      view->switchover->from != self_.name && view->switchover->to == self_.name) {
    remove_request(*view);
  }
  const HistoryEntry& record = *unrecorded_promotion_;
  (void)mark_claim_promoted(store_, layout_, self_.name, record.timeline);
  if (!store_.put(layout_.history(record.time_ms), encode_history(record), std::nullopt)) return;
  spdlog::warn("PostgreSQL promoted onto timeline {} although its promotion failed: recorded",
               record.timeline);
  unrecorded_promotion_.reset();
}

void Agent::remember_for_rest(const NodeObservation& node, const Decision& decision,
                              const Status& result) {
  last_cycle_ = RestFacts{.state = node.state,
                          .action = decision.action,
                          // A cycle that found its watchdog gone looks again a loop interval
                          // later: a restart that failed fences there.
                          .failed = !result || decision.restart_watchdog,
                          .answer_repeated = node.answer_repeated};
  answered_at_ = node.answered_at;
}

// The facts that say whether this cycle may take the server's last answer again
// (core/observe_rest.h), from the last cycle and the lease as this cycle reads it.
std::optional<RestFacts> Agent::rest_facts(const std::optional<ClusterView>& view) const {
  if (!view || !last_cycle_ || !answered_at_) return std::nullopt;
  RestFacts facts = *last_cycle_;
  facts.answer_age = since(*answered_at_, clock_);
  facts.leads = view->leader_is(self_.name);
  facts.someone_leads = view->leader.has_value();
  if (auto confirmed = lease_.confirmed_at()) facts.renewed_ago = since(*confirmed, clock_);
  if (view->leader) {
    facts.holder_changed = !seen_lease_ || seen_lease_->holder != view->leader->name;
    if (!facts.holder_changed && seen_lease_->revision == view->leader->revision) {
      facts.lease_unchanged_for = since(seen_lease_->since, clock_);
    }
    // Where the store says when the lease lapses, it says how old the renewal is too (written
    // with a lease's TTL): a standby that saw it first well after it was written (it slept)
    // counts from the write, so that a lease half old ends its rest all the same.
    if (view->leader->lapses_at) {
      facts.lease_lapses_in =
          std::chrono::floor<milliseconds>(*view->leader->lapses_at - clock_.steady_now());
      facts.lease_unchanged_for =
          std::max(facts.lease_unchanged_for, ha_.ttl - *facts.lease_lapses_in);
    }
  }
  facts.request_pending = view->switchover.has_value();
  return facts;
}

std::chrono::milliseconds Agent::next_sleep(const std::optional<ClusterView>& view,
                                            bool holder_changed) const {
  std::optional<RestFacts> facts = rest_facts(view);
  if (!facts) return ha_.loop_interval;
  facts->holder_changed = facts->holder_changed || holder_changed;
  facts->wakeable = wakeable_;
  // The sleep counts from the cycle's start (sleep_from): so does the lease's time left, or every
  // rest would end early by the cycle's own length, and the cycle a loop interval after it come
  // just before the lapse — its sight a loop interval late.
  if (facts->lease_lapses_in) {
    *facts->lease_lapses_in +=
        std::chrono::floor<milliseconds>(clock_.steady_now() - cycle_started_);
  }
  return rest_sleep(*facts, ha_);
}

void Agent::sleep_from(std::chrono::steady_clock::time_point start) {
  // plan_sleep (core/observe_rest.h): until the rest's end, which a wake or the postmaster's exit
  // ends at once; deaf to wakes for a loop interval once kEarlyCycles came early within a lease.
  int wake_fd = board_ != nullptr ? board_->wake_fd() : -1;
  SleepPlan plan =
      plan_sleep(next_sleep_, early_cycles_.within(steady_ms(clock_), ha_.ttl), ha_.loop_interval);
  if (wake_fd < 0) plan.deaf_until = plan.until;  // nothing can wake it
  node_.wait_for_exit(plan.deaf_until - since(start, clock_), -1);
  if (wake_fd >= 0) {
    node_.wait_for_exit(plan.until - since(start, clock_), wake_fd);
    board_->clear_wake();
  }
  early_cycles_.after_sleep(since(start, clock_), steady_ms(clock_), ha_.loop_interval);
}

void Agent::watch_store_lock(NodeObservation& node) {
  if (store_lock_ == nullptr) return;
  auto pid = store_lock_->stopped_holder();
  if (!pid) {
    stopped_holder_.reset();
    return;
  }
  auto now = clock_.steady_now();
  // Counted afresh for another process, or after a gap longer than a lease (this cycle hung,
  // say): the limit is for one stop seen without a break, its SIGCONT sent at the start.
  if (!stopped_holder_ || stopped_holder_->pid != *pid ||
      now - stopped_holder_->last_seen > ha_.ttl) {
    stopped_holder_ = {*pid, now, now};
  }
  stopped_holder_->last_seen = now;
  node.store_lock_held_stopped = NodeObservation::StoppedLockHolder{
      .pid = *pid,
      .stopped_for =
          std::chrono::duration_cast<std::chrono::milliseconds>(now - stopped_holder_->since)};
}

void Agent::unblock_store(const Decision::UnblockStore& unblock) {
  Status sent = store_lock_ == nullptr ? Status{} : store_lock_->unblock(unblock.pid, unblock.kill);
  spdlog::warn(
      "process {} has held the store's write lock while stopped for {} ms: every write "
      "waits on it; {} it{}",
      unblock.pid, unblock.stopped_for.count(), unblock.kill ? "killed" : "resumed",
      sent ? "" : " failed: " + sent.error().message);
}

void Agent::watch_watchdog(NodeObservation& node) {
  std::optional<std::string> gone = watchdog_ != nullptr ? watchdog_->gone() : std::nullopt;
  if (!gone) {
    watchdog_gone_since_.reset();
    return;
  }
  auto now = clock_.steady_now();
  if (!watchdog_gone_since_) watchdog_gone_since_ = now;
  node.watchdog_gone = NodeObservation::WatchdogGone{
      .why = *gone,
      .gone_for = std::chrono::duration_cast<milliseconds>(now - *watchdog_gone_since_)};
}

void Agent::restart_watchdog() {
  Status restarted = watchdog_->restart();
  if (restarted) {
    spdlog::warn("the fencing watchdog was not running: started again");
    watchdog_failure_said_.reset();
    return;
  }
  // Said when it first fails, then every ten seconds while it goes on failing (each cycle tries).
  auto now = clock_.steady_now();
  if (watchdog_failure_said_ && now - *watchdog_failure_said_ < std::chrono::seconds(10)) return;
  watchdog_failure_said_ = now;
  spdlog::error(
      "the fencing watchdog is not running and could not be started again ({}): this node is "
      "made writable by nothing until it runs",
      restarted.error().message);
}

void Agent::add_quorum_facts(NodeObservation& node) {
  if (contacts_ == nullptr) return;
  // A ping answered within two cycles is a peer's word now (docs/ARCHITECTURE.md, "Several
  // machines", for the arithmetic).
  QuorumFacts facts =
      contacts_->facts(clock_.steady_now(), proof_of_fencing(ha_), 2 * ha_.loop_interval);
  node.majority_contact_age = facts.majority_contact_age;
  node.proven_fenced = std::move(facts.proven_fenced);
  node.takeover_blockers = std::move(facts.takeover_blockers);
}

// Counted from the first cycle that read the revision: a renewal confirmed to its holder before
// that read shows here as a change, so its holder's confirmation is older than what is counted.
void Agent::track_lease(const ClusterView& view, NodeObservation& node) {
  if (!view.leader) {
    seen_lease_.reset();
    return;
  }
  if (!seen_lease_ || seen_lease_->holder != view.leader->name ||
      seen_lease_->revision != view.leader->revision) {
    seen_lease_ = SeenLease{view.leader->name, view.leader->revision, clock_.steady_now()};
  }
  node.lease_unchanged_for = since(seen_lease_->since, clock_);
}

void Agent::note_watchdog_fence() {
  if (watchdog_ == nullptr) return;
  auto fenced = watchdog_->fenced_at();
  if (!fenced || fenced == watchdog_fenced_at_) return;
  watchdog_fenced_at_ = fenced;
  spdlog::warn(
      "the watchdog stopped PostgreSQL: its right to write was not confirmed for {} ms ({})",
      ha_.renew_deadline.count(),
      ha_.quorum_fencing ? "no lease renewal and no answer from a majority of the agents"
                         : "no lease renewal");
}

// A primary that ran for ten seconds came back for good; until then its restarts count.
void Agent::watch_postmaster(bool writable) {
  pid_t postmaster = writable ? node_.postmaster() : 0;
  writable_postmaster_ = postmaster;
  if (watchdog_ != nullptr) watchdog_->watch(postmaster);
}

void Agent::refresh_primary_details(const NodeObservation& node) {
  if (node.state != PgState::kPrimary) {
    primary_details_.reset();
    return;
  }
  if (primary_details_ && since(primary_details_at_, clock_) < std::chrono::seconds(1)) return;
  primary_details_ = node_.primary_details();
  primary_details_at_ = clock_.steady_now();
}

void Agent::report(const NodeObservation& node, const std::optional<ClusterView>& view,
                   const Decision& decision, bool failed) {
  ++cycles_;
  if (board_ == nullptr) return;
  // A holder of the lease whose PostgreSQL is down may not write again without renewing the
  // lease by compare-and-set first (rule 5): it answers "may not write", so that a primary cut
  // off from etcd whose postmaster died does not keep the others from taking over once its
  // lease expires there (issue 16.4: nobody wrote for the whole cut).
  board_->set_may_write((lease_.held() && node.state != PgState::kStopped) ||
                        node.state == PgState::kPrimary ||
                        (node.state == PgState::kStarting && node.data_was_primary) ||
                        (view && view->leader_is(self_.name)) ||
                        // A step that may have made it writable answers "may write" even
                        // when it failed: a promotion that timed out may finish all the same
                        // (found by the simulation: a take-over whose history write timed out
                        // answered "standby" while it ran as a primary, and another took over).
                        may_make_writable(decision.action) || writable_postmaster_.load() > 0);
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
    if (std::int64_t round_trip = renewal_round_trip_ms_.load(); round_trip >= 0) {
      snapshot.lease_round_trip = milliseconds(round_trip);
    }
  }
  board_->publish(std::move(snapshot), wall_ms_of(clock_));
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
  auto snapshot = layout_.read_state(store_);
  if (!snapshot) return fail_with_context(snapshot.error(), "reading the store");
  ClusterView view = layout_.view(*snapshot);
  if (request == NodeRequest::kRestart) {
    // Restarted in its role, a primary without the lease would write unwatched beside the
    // leader (the simulation, seed 2768: a restart requested of the leader, served after a slow
    // read of the store had seen its lease lapse); one behind another's claim beside the
    // claimant (fresh seed 540497786959). Refused before the lease is renewed for it.
    NodeObservation now = node_.observe(false);
    watch_watchdog(now);
    if (auto refused = restart_refusal(view, now, self_.name)) {
      return fail(ErrorCode::kConflict, *refused);
    }
    if (view.leader_is(self_.name)) {
      // The keeper renews throughout the restart; a fresh renewal proves the lease first.
      Status renewed =
          proof_to_write(lease_.held() ? lease_.renew() : lease_.adopt(view.leader->revision));
      if (!renewed) {
        return fail_with_context(renewed.error(), "renewing the lease before the restart");
      }
    }
    // The watchdog goes on watching a leader throughout (the keeper renews meanwhile, so a
    // slow restart is no reason to fence): its old postmaster until it stops, the new one
    // from the moment it is spawned — a node cut off in the middle of a restart must not write
    // unwatched (issue 16.5: it did, for 12 s, while another node led).
    // And a leader proves its lease again between the stop and the start: a slow stop (or a
    // store slow to answer the keeper meanwhile) may have outlasted it, and another node may
    // lead now (the simulation, seed 2768: two primaries).
    bool leader = view.leader_is(self_.name);
    Status restarted = node_.restart(
        [this, leader]() -> Status {
          if (!leader) return {};
          return proof_to_write(lease_.renew());
        },
        [this, leader] { watch_postmaster(leader); });
    if (restarted && callbacks_ != nullptr && settled_role_) {
      callbacks_->fire({CallbackEvent::kRestart, *settled_role_});
    }
    return restarted;
  }
  if (auto refused = reinitialize_refusal(view, self_.name)) {
    return fail(ErrorCode::kConflict, *refused);
  }
  // Its own claim, should its server run on it, is marked used first (as a cycle would): the
  // copy replaces that history.
  if (auto ok = mark_claim_promoted(store_, layout_, self_.name, node_.observe(false).timeline);
      !ok) {
    return ok;
  }
  return node_.reclone(view.leader->name);
}

Status Agent::execute(const Decision& decision, const NodeObservation& node,
                      const std::optional<ClusterView>& view) {
  if (decision.unblock_store) unblock_store(*decision.unblock_store);
  if (decision.restart_watchdog) restart_watchdog();
  if (decision.mark_claim_promoted) {
    Status marked = mark_claim_promoted(store_, layout_, self_.name, node.timeline);
    if (!marked && (decision.action == Action::kRejoin || decision.action == Action::kReclone)) {
      return marked;
    }
  }
  if (decision.end_adoption && view) {
    (void)store_.remove(layout_.adopting(), view->adopting_revision);
  }
  if (decision.apply_settings && view && view->settings) apply_settings(*view->settings);
  if (decision.action == Action::kNone) return {};
  if (find_transition(node.state, decision.action) == nullptr) {
    return fail(ErrorCode::kConflict,
                fmt::format("refusing {} from state {}: not in the transition table",
                            action_name(decision.action), pg_state_name(node.state)));
  }
  if (board_ != nullptr && may_make_writable(decision.action)) board_->set_may_write(true);
  switch (decision.action) {
    case Action::kNone:
      return {};
    case Action::kBootstrap:
      return bootstrap();
    case Action::kClone:
      return node_.clone(decision.source);
    case Action::kStartPrimary:
      return start_primary(*view, node, decision);
    case Action::kStartStandby:
      return node_.start_standby(decision.source);
    case Action::kRenewLease:
      if (decision.remove_request) remove_request(*view);
      return renew_or_fence(*view, node, decision.on_renewal_failure);
    case Action::kAcquireLease:
      if (decision.unname_sync) {
        // Quorum commit: the record anew before the lease, so that a standby counting freezes
        // on the old one writes nothing, and the frozen ones see a newer revision.
        auto unnamed =
            write_sync_if_unchanged(store_, layout_, view->sync_revision, self_.name, {});
        if (!unnamed) return fail_with_context(unnamed.error(), "writing the sync record anew");
      }
      return lease_.acquire();
    case Action::kTakeOver:
      return take_over(*view, node, decision);
    case Action::kPromote:
      // The lease was handed over: confirm it is still this node's before writing.
      if (auto ok = proof_to_write(renew_lease(*view, node)); !ok) return ok;
      return promote(*view, node, decision);
    case Action::kHandOver:
      return hand_over(*view, decision.target);
    case Action::kFollow:
      return node_.follow(decision.source);
    case Action::kFence:
    case Action::kDemote: {
      // PostgreSQL first, the watchdog still armed: dropping the lease waits for a renewal the
      // keeper has under way — up to the store's timeout — and a watchdog told to rest before
      // it let the primary write on past its deadline while another took over (fresh
      // multi-host seed 2596154221: two writable primaries for 237 ms).
      Status stopped = node_.stop(StopMode::kImmediate);
      watch_postmaster(false);
      lease_.drop();
      return stopped;
    }
    case Action::kRejoin:
      return node_.rejoin();
    case Action::kReclone:
      return node_.reclone(decision.source);
    case Action::kReleaseLease:
      if (!lease_.held()) {
        if (auto ok = lease_.adopt(view->leader->revision); !ok) return ok;
      }
      if (auto released = lease_.release(); !released) return released;
      wake_others("");
      return {};
  }
  return {};
}

// The lease ended before its time (handed to `target`, or released: ""): the agents at rest
// sleep until it would have lapsed (rest_sleep), so they are told — the target first, then the
// others, which follow it.
void Agent::wake_others(const std::string& target) {
  if (waker_ == nullptr) return;
  std::vector<std::string> order;
  if (!target.empty()) order.push_back(target);
  for (const NodeConfig& node : running_config_.nodes) {
    if (node.name != self_.name && node.name != target) order.push_back(node.name);
  }
  std::vector<std::string> woken = waker_->wake(order);
  std::vector<std::string> not_woken;
  for (const std::string& name : order) {
    if (std::ranges::find(woken, name) == woken.end()) not_woken.push_back(name);
  }
  if (!woken.empty()) {
    spdlog::info("woke the agent of {}: the lease ended early", fmt::join(woken, ", "));
  }
  if (!not_woken.empty()) {
    spdlog::info(
        "could not wake the agent of {}: it finds the lease ended at its next cycle, within {} ms",
        fmt::join(not_woken, ", "), longest_rest(ha_).count());
  }
}

// The leader renews (the keeper does, and the cycle makes sure) and in synchronous mode keeps
// its synchronous standby named.
Status Agent::renew_or_fence(const ClusterView& view, const NodeObservation& node,
                             RenewalFailure on_failure) {
  if (auto ok = renew_lease(view, node); !ok) {
    // What the plan says a failure means (complete_plan in core/decide.cc); the deadline is
    // read after the renewal, which may have taken long, so that no cycle waits past it.
    if (on_failure == RenewalFailure::kFenceIfTakenOver &&
        ok.error().code == ErrorCode::kConflict) {
      (void)node_.stop(StopMode::kImmediate);
      return fail_with_context(ok.error(), "the lease was taken over; fenced");
    }
    auto renewed_at = lease_.confirmed_at();
    bool late = !renewed_at || since(*renewed_at, clock_) >= ha_.renew_deadline;
    if (on_failure == RenewalFailure::kFenceIfPastDeadline && late) {
      lease_.drop();
      (void)node_.stop(StopMode::kImmediate);
      return fail_with_context(ok.error(), "renewal failed past the deadline; fenced");
    }
    return ok;
  }
  if (!ha_.synchronous_mode || node.state != PgState::kPrimary) return {};
  auto changed = node_.update_sync(view);
  if (!changed) return std::unexpected(changed.error());
  if (!changed->empty()) spdlog::info("  {}", *changed);
  return {};
}

// The lease holder's PostgreSQL is down: started again as the primary, in place.
Status Agent::start_primary(const ClusterView& view, const NodeObservation& node,
                            const Decision& decision) {
  // The record is unnamed before the renewal that proves the lease, by a compare-and-set: a
  // slow write between that proof and the start let a standby take over meanwhile (two
  // primaries).
  if (decision.unname_sync) {
    auto unnamed = write_sync_if_unchanged(store_, layout_, view.sync_revision, self_.name, {});
    if (!unnamed) return fail_with_context(unnamed.error(), "unnaming the synchronous standby");
  }
  // The lease is proven first: a standby that has just taken it over must win.
  if (auto ok = proof_to_write(renew_lease(view, node)); !ok) return ok;
  Status started =
      node_.start_primary([this] { return still_keeping_lease(); }, decision.keep_sync_standbys);
  if (started) watch_postmaster(true);
  return started;
}

Status Agent::take_over(const ClusterView& view, const NodeObservation& node,
                        const Decision& decision) {
  if (auto ok = still_on_member_list(); !ok) return ok;
  ClusterView named_view = view;
  if (decision.name_in_sync_first) {
    // Quorum commit: the freezes counted were promised for this revision of the record; one of
    // them may have thawed since only through a newer one, and then this write fails and the
    // node takes nothing. The promotion checks the record again against this write's revision:
    // a leader that retook its lease meanwhile may have written it (review).
    auto named = write_sync_if_unchanged(store_, layout_, view.sync_revision, self_.name, {});
    if (!named) return fail_with_context(named.error(), "naming this node in sync");
    named_view.sync_revision = *named;
    named_view.sync_leader = self_.name;
    named_view.sync_standbys = std::vector<std::string>();
    named_view.sync_quorum.reset();
  }
  if (!decision.remove_lease_of.empty() && view.leader_is(decision.remove_lease_of)) {
    // Quorum fencing: the former leader is proven fenced but its lease lives on. Removing it
    // only if unchanged: had that leader renewed meanwhile, it would keep it.
    if (auto ok = store_.remove(layout_.leader(), view.leader->revision); !ok) {
      return fail_with_context(ok.error(), "removing the lease of " + decision.remove_lease_of);
    }
  }
  if (auto ok = lease_.acquire(); !ok) return ok;
  if (!ha_.quorum_fencing) {
    // The newest claimant may be promoting still, whatever its record says.
    bool claimed_by_other = view.timeline_claim && view.timeline_claim->by != self_.name;
    node_.fence_others(claimed_by_other ? view.timeline_claim->by : std::string());
  }
  if (!decision.remove_lease_of.empty()) {
    // Claimed as decided: on the view without the fenced leader whose lease was removed (with
    // it, a claim it left would still count, and the claim would be refused).
    ClusterView taken = named_view;
    taken.leader.reset();
    taken.members.erase(decision.remove_lease_of);
    return promote(taken, node, decision);
  }
  return promote(named_view, node, decision);  // watched from the promotion on
}

Status Agent::bootstrap() {
  auto won = store_.create(layout_.initialize(), self_.name, std::nullopt);
  if (!won && won.error().code == ErrorCode::kConflict) {
    // Ours already: a creation whose answer was lost, or a bootstrap that did not finish.
    auto key = store_.read(layout_.initialize());
    if (!key) return std::unexpected(key.error());
    const StoredValue* winner = key->find(layout_.initialize());
    if (winner == nullptr || winner->value != self_.name) {
      return fail(ErrorCode::kConflict, "another agent won the initialize key first");
    }
  } else if (!won) {
    return std::unexpected(won.error());
  }
  spdlog::info("won the initialize key: bootstrapping the cluster");
  // Nobody else has data to take over with, so the lease is taken once PostgreSQL is up.
  if (auto ok = node_.initialize(); !ok) return ok;
  if (auto ok = lease_.acquire(); !ok) return ok;
  (void)store_.create(layout_.timeline(), encode_timeline_claim(1, self_.name), std::nullopt);
  std::int64_t now = wall_ms_of(clock_);
  auto written = store_.put(
      layout_.history(now),
      encode_history(
          {.time_ms = now, .to = self_.name, .timeline = 1, .reason = "bootstrapped the cluster"}),
      std::nullopt);
  if (!written) return std::unexpected(written.error());
  return {};
}

// A renewal proves the lease as of when it was sent: the store may have let it lapse and given
// it to another node by the time a slow answer arrives. One confirmed so late that the
// watchdog's deadline from its sending has passed is no ground to make PostgreSQL writable (the
// simulation, seed 2768: a restart through the API renewed through a store slow to answer,
// 1159 ms, and started a primary while another node had taken the lease meanwhile).
Status Agent::proof_to_write(Status renewed) {
  if (!renewed) return renewed;
  auto confirmed = lease_.confirmed_at();
  auto age = confirmed ? since(*confirmed, clock_) : ha_.renew_deadline;
  if (age >= ha_.renew_deadline) {
    return fail(ErrorCode::kUnavailable,
                fmt::format("the store confirmed the lease {} ms after the renewal was sent, past "
                            "ha.renew_deadline ({} ms): no proof to write on",
                            age.count(), ha_.renew_deadline.count()));
  }
  return {};
}

Status Agent::renew_lease(const ClusterView& view, const NodeObservation& node) {
  // The keeper renews every quarter TTL on its own; the cycle renews only a lease it does not
  // keep yet (handed over, or held before this agent started) or one the keeper let age.
  Status renewed = lease_.held() ? lease_.renew(ha_.ttl / 4) : lease_.adopt(view.leader->revision);
  if (!renewed) return renewed;
  publish_optime(node);
  return {};
}

void Agent::remove_request(const ClusterView& view) {
  if (!view.switchover) return;
  std::optional<std::int64_t> revision;
  if (view.switchover->revision != 0) revision = view.switchover->revision;
  (void)store_.remove(layout_.switchover(), revision);
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
                      const Decision& decision) {
  std::string former = last_leader_;
  if (view.switchover && !view.switchover->from.empty()) former = view.switchover->from;
  // Only a holder of the lease claims a timeline or names itself in sync: a claim or a sync
  // record left by a node that then could not promote keeps the others from leading (found by
  // the simulation: an agent frozen between taking the lease and promoting claimed timeline 2
  // when it thawed, long after the old leader had restarted in place and taken commits, and
  // then led as "the last leader" without them).
  if (auto ok = proof_to_write(lease_.renew()); !ok) {
    return fail_with_context(ok.error(), "confirming the lease before claiming a timeline");
  }
  // No timeline number serves two histories: the new one is claimed first. A failover the
  // operator forced with --allow-data-loss to a node behind the newest claim claims the one
  // after that claim: its promotion skips the numbers between.
  auto claimed =
      claim_timeline(store_, layout_, self_.name, node.timeline, decision.claim_past_newest);
  if (!claimed) return std::unexpected(claimed.error());
  // A request that brought the lease here is carried out from the claim on, whatever becomes
  // of the promotion: a failover after it must not carry it out a second time (found by the
  // simulation: a switchover's target frozen mid-promotion, fenced, a failover, and then the
  // same switchover again, on a third timeline).
  // A forced failover stays until its target runs as primary: without it, a target behind
  // a newer claim would not be retried once a first attempt failed.
  if (view.switchover && !view.switchover->force && view.switchover->from != self_.name &&
      (view.switchover->to.empty() || view.switchover->to == self_.name)) {
    remove_request(view);
  }
  if (ha_.synchronous_mode) {
    // From here on only this node is sure to have every acknowledged commit; the last leader
    // and its synchronous standby no longer are. A compare-and-set against the record this
    // decision read: a renewal answered late (a slow store) proves the lease only as of when it
    // was sent, and the old leader may have retaken the lease since, restarted in place and
    // unnamed its standby — taking commits alone. Overwriting that record named this node the
    // last leader, without those commits (fresh seed 901962: 1 acknowledged commit lost).
    auto named = write_sync_if_unchanged(store_, layout_, view.sync_revision, self_.name, {});
    if (!named) return fail_with_context(named.error(), "naming this node in sync");
  }
  mark_received_wal(decision);
  // The steps before (fencing other primaries, the claim) may have taken long enough for the
  // lease to go elsewhere — to the former primary restarting in place, say: a renewal confirms
  // it now, after the claim, so that from here on nobody else can restart as the newest
  // (found by the simulation: an agent frozen while it fenced the old primary).
  if (auto ok = proof_to_write(lease_.renew()); !ok) {
    return fail_with_context(ok.error(), "confirming the lease before promoting");
  }
  // Watched from before the promotion is asked for: PostgreSQL finishes promoting by itself, and an
  // agent frozen meanwhile (SIGSTOP, a stalled VM) must not leave a writable primary that
  // nobody fences (found by the simulation once promotions ran on PostgreSQL's time).
  watch_postmaster(true);
  promoting_postmaster_ = node_.postmaster();
  HistoryEntry record{.time_ms = wall_ms_of(clock_),
                      .from = former,
                      .to = self_.name,
                      .timeline = *claimed,
                      .switch_lsn = node.replayed_lsn,
                      .lost_bytes = decision.lost_bytes,
                      .reason = decision.reason};
  auto promoted = node_.promote(*claimed);
  if (!promoted) {
    // PostgreSQL may have finished promoting all the same — while this agent was frozen, say —
    // and accepted writes before it was fenced, or may finish after its agent gave up waiting:
    // that timeline goes to the history too, dated when it was asked for (it was missing: a
    // frozen promoter's timeline 2 between 1 and 3). Looked for again every cycle while this
    // postmaster runs.
    record.reason += fmt::format(" (promotion: {})", promoted.error().message);
    unrecorded_promotion_ = record;
    record_finished_promotion(&view);
    return std::unexpected(promoted.error());
  }
  if (promoted->timeline != *claimed) {
    spdlog::error("promoted to timeline {}, not the claimed {}", promoted->timeline, *claimed);
  }
  if (auto ok = record_promotion(record, promoted->timeline); !ok) return ok;
  return promoted->later_steps;
}

Status Agent::record_promotion(HistoryEntry record, TimelineId timeline) {
  record.timeline = timeline;
  record.time_ms = wall_ms_of(clock_);
  auto written = store_.put(layout_.history(record.time_ms), encode_history(record), std::nullopt);
  if (!written) return std::unexpected(written.error());
  // Used: marked at once rather than at the next cycle's sight of it (a crash before the first
  // checkpoint on the new timeline leaves pg_control naming the old one).
  (void)mark_claim_promoted(store_, layout_, self_.name, timeline);
  last_leader_.clear();  // this node leads now; the next other leader will be seen
  return {};
}

Status Agent::hand_over(const ClusterView& view, const std::string& target) {
  // A clean stop: the WAL senders pass every record, the shutdown checkpoint included, to the
  // standbys before PostgreSQL exits, so the target loses nothing and this node can follow it
  // without a rewind. The watchdog rests: a clean stop may take longer than its deadline; the
  // keeper renews the lease meanwhile.
  if (!lease_.held()) {
    if (auto ok = lease_.adopt(view.leader->revision); !ok) return ok;
  }
  // A CHECKPOINT first, while PostgreSQL still takes writes and the watchdog watches it: the
  // shutdown checkpoint, which writes stop for, then has little left to write (on a loaded
  // machine it took 116 ms of a 0.3 s write gap, with a fresh cluster's writes behind it).
  // Waited for a lease at most: the hand-over acts on what this cycle read before it, and one
  // that outlasts it goes on in the checkpointer while the stop waits. Its failure costs only
  // that time.
  if (auto ok = node_.checkpoint(ha_.ttl); !ok) {
    spdlog::warn("no checkpoint before the clean stop: {}", ok.error().message);
  }
  watch_postmaster(false);
  if (auto ok = node_.stop(StopMode::kFast); !ok) return ok;
  auto checkpoint = node_.shutdown_checkpoint();
  bool published = checkpoint && store_.put(layout_.optime(), checkpoint->str(), std::nullopt);
  if (ha_.synchronous_quorum && !published) {
    // Quorum commit: the target promotes only once it has this far (decide.cc,
    // quorum_hand_over_wait); without it, the lease stays and the server restarts in place.
    return fail(ErrorCode::kUnavailable,
                "the shutdown checkpoint is not in the store: no hand-over under quorum commit");
  }
  Status handed = lease_.held() ? lease_.hand_over(target)
                                : fail(ErrorCode::kConflict, "the lease is no longer held");
  if (!handed) return fail_with_context(handed.error(), "handing the lease to " + target);
  wake_others(target);
  return {};
}

// A primary restarted in place is watched while it starts: it may accept writes before the
// next cycle observes it. So is a postmaster asked to promote, until it exits: PostgreSQL may
// finish a promotion its agent gave up waiting for, and an unwatched one would answer pings "may
// not write" while it does (found by review).
void Agent::watch_what_may_write(const std::optional<ClusterView>& view, NodeObservation& node) {
  record_finished_promotion(view ? &*view : nullptr);
  if (node.state == PgState::kStopped || node_.postmaster() != promoting_postmaster_) {
    promoting_postmaster_ = 0;
    unrecorded_promotion_.reset();  // a new postmaster does not finish the old one's promotion
  }
  watch_postmaster(node.state == PgState::kPrimary ||
                   (node.state == PgState::kStarting && node.data_was_primary) ||
                   promoting_postmaster_ != 0);
  node.postmaster_watched = writable_postmaster_ != 0;
  note_watchdog_fence();
}

void Agent::keep_promise(const Decision& decision) {
  frozen_for_ = decision.frozen_for;
  frozen_at_ = decision.frozen_at;
}

// A promise this agent did not make (its predecessor's, before a restart) still binds it.
void Agent::take_stored_promise(const ClusterView& view) {
  auto stored = view.members.find(self_.name);
  if (!published_record_ && stored != view.members.end() && stored->second.frozen_for) {
    frozen_for_ = stored->second.frozen_for;
    frozen_at_ = stored->second.frozen_at;
  }
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
      .nofailover = ha_.nofailover,
      .unwatched = node.watchdog_gone.has_value(),
      .primary = primary_details_,
      .settings_revision = settings_confirmed_,
      .pending_restart = node.pending_restart,
      .configuration_errors = node.configuration_errors,
      .frozen_for = frozen_for_,
      .frozen_at = frozen_at_};
}

void Agent::apply_settings(const ClusterSettings& settings) {
  // The store may hold what `tandem config set` would never have written.
  if (auto ok = check_stored_settings(settings.values); !ok) {
    if (refused_settings_ != settings.revision) {
      spdlog::error("the cluster's settings (revision {}) are not applied: {}", settings.revision,
                    ok.error().message);
      refused_settings_ = settings.revision;
    }
    return;
  }
  if (auto ok = node_.apply_settings(settings); !ok) {
    spdlog::warn("the cluster's settings (revision {}) were not applied: {}", settings.revision,
                 ok.error().message);
    return;
  }
  settings_applied_ = settings.revision;
  std::vector<std::string> names;  // not their values: one may be a secret
  for (const auto& [name, value] : settings.values) names.push_back(name);
  spdlog::info("applied the cluster's settings (revision {}): {}", settings.revision,
               names.empty() ? "none" : fmt::format("{}", fmt::join(names, ", ")));
}

void Agent::log_configuration_errors(const NodeObservation& node) {
  if (node.configuration_errors == logged_configuration_errors_) return;
  logged_configuration_errors_ = node.configuration_errors;
  for (const std::string& error : node.configuration_errors) {
    spdlog::warn("PostgreSQL did not apply a line of its configuration: {}", error);
  }
}

void Agent::publish(const NodeObservation& node) {
  MemberRecord record = member_record(node);
  // Again when it changed, or when by the next cycle's start less than two thirds of a lease of
  // it would be left; with a TTL that spans the rest after this cycle (core/observe_rest.h).
  if (record == published_record_ &&
      !record_due(since(published_at_, clock_), next_sleep_, published_ttl_, ha_)) {
    return;
  }
  milliseconds ttl = record_ttl(next_sleep_, ha_);
  if (store_.put(layout_.member(self_.name), encode_member(record), ttl)) {
    published_record_ = std::move(record);
    published_at_ = clock_.steady_now();
    published_ttl_ = ttl;
  }
}

void Agent::log_cycle(const Decision& decision, const Status& result) {
  std::string line = fmt::format("{}: {}", action_name(decision.action), decision.reason);
  if (!store_error_.empty()) line += fmt::format(" [{}]", store_error_);
  if (!result) line += fmt::format(" -- failed: {}", result.error().message);
  // One line per cycle, but ten identical lines a second help nobody: a repeat is logged once
  // every ten seconds with its count.
  if (service_ != nullptr && ready_said_ && line != last_line_) service_->status(line);
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

RunEnd Agent::run(const std::atomic<bool>& stop) {
  spdlog::info("agent of {} starting (loop {} ms, lease {} ms, fence after {} ms)", self_.name,
               ha_.loop_interval.count(), ha_.ttl.count(), ha_.renew_deadline.count());
  while (!stop.load() && !removed_) {
    auto start = clock_.steady_now();
    if (reload_requested_ != nullptr && reload_requested_->exchange(false) && read_config_) {
      reload(read_config_());
    }
    if (removed_) break;
    if (rebuild_with_) {
      spdlog::info("the members changed: the agent is built again on them, PostgreSQL runs on");
      return RunEnd::kRebuild;
    }
    serve_request();
    cycle();
    sleep_from(start);
  }
  if (service_ != nullptr) {
    service_->stopping("stopping: PostgreSQL is shut down cleanly and the lease handed over");
  }
  shut_down();
  return RunEnd::kStopped;
}

void Agent::reload(const Result<ClusterConfig>& fresh) {
  if (!fresh) {
    spdlog::error("reload refused, the running config kept: {}", fresh.error().message);
    return;
  }
  ReloadPlan plan = plan_reload(running_config_, *fresh, self_.name);
  if (with_running_members(*fresh, running_config_).find_node(self_.name) == nullptr) {
    if (!plan.nodes) {
      spdlog::error("reload refused, the running config kept: the new config has no node {}",
                    self_.name);
      return;
    }
    spdlog::warn(
        "reload: {} is no longer a member: its agent stops (PostgreSQL shut down cleanly, its "
        "data kept)",
        self_.name);
    removed_ = true;
    if (contacts_ != nullptr) contacts_->leave();  // it backs nobody while it stops
    return;
  }
  spdlog::info("reload: {}", describe_reload(plan, running_config_, self_.name));
  if (plan.maximum_lag_on_failover) {
    ha_.maximum_lag_on_failover = *plan.maximum_lag_on_failover;
    running_config_.ha.maximum_lag_on_failover = *plan.maximum_lag_on_failover;
  }
  if (plan.callbacks) {
    running_config_.callbacks = *plan.callbacks;
    if (callbacks_ != nullptr) callbacks_->reconfigure(*plan.callbacks);
  }
  if (plan.nofailover) {
    ha_.nofailover = *plan.nofailover;
    for (NodeConfig& node : running_config_.nodes) {
      if (node.name == self_.name) node.nofailover = *plan.nofailover;
    }
  }
  if (plan.nodes) {
    rebuild_with_ = running_config_;
    rebuild_with_->nodes = *plan.nodes;
  }
}

// Several machines: the agent runs the member list in the store, once there is one (`tandem
// member`), and says which list it runs — the next change waits for every agent's word
// (core/member_change.h, every_agent_took). Returns whether this cycle may act on its view:
// not when the store's list is not the one it runs. A new list is taken between two cycles
// (kRebuild); a list without this node stops the agent as a reload removing it would. Once
// every member says it runs the list, and proof_of_fencing later, the contact book counts over
// it alone (ContactBook::end_change).
//
// The records of agents outside the lists are not its members: a removed node whose agent has
// not read the store yet is no candidate, no synchronous standby.
bool Agent::follow_member_list(ClusterView& view, const StoreSnapshot& snapshot) {
  if (!running_config_.on_several_machines()) return true;
  std::uint64_t running = running_config_.member_list;
  std::uint64_t stored = view.member_list ? view.member_list->version : 0;
  const MemberList* newer = stored > running ? &*view.member_list : nullptr;
  auto listed = [](const std::vector<NodeConfig>& nodes, const std::string& name) {
    return std::any_of(nodes.begin(), nodes.end(),
                       [&](const NodeConfig& node) { return node.name == name; });
  };
  std::erase_if(view.members, [&](const auto& member) {
    return running_config_.find_node(member.first) == nullptr ||
           (newer != nullptr && !listed(newer->nodes, member.first));
  });
  if (removed_ || rebuild_with_) return false;
  if (newer != nullptr) {
    if (!listed(newer->nodes, self_.name)) {
      spdlog::warn(
          "{} is no longer a member (member list {}): its agent stops (PostgreSQL shut down "
          "cleanly, its data kept)",
          self_.name, stored);
      removed_ = true;
      // It backs nobody from now on, then gives its word that it left: it counts over no list
      // any more (see end_change_when_taken). In that order: the others end the change on its
      // word, once what they counted before it has lapsed.
      if (contacts_ != nullptr) contacts_->leave();
      ClusterConfig left = with_member_list(running_config_, *newer);
      (void)store_.put(layout_.list_ack(self_.name), encode_list_ack(ack_of(left)), std::nullopt);
      return false;
    }
    if (auto ok = takes_member_list(running_config_, *newer); !ok) {
      if (refused_list_ != stored) spdlog::error("member list not taken: {}", ok.error().message);
      refused_list_ = stored;
      return true;  // it runs on with its own list, and says so: no acknowledgement
    }
    spdlog::info("member list {} in the store: {} members, taken between two cycles", stored,
                 newer->nodes.size());
    rebuild_with_ = with_member_list(running_config_, *newer);
    return false;
  }
  if (stored != running) return true;  // an older list, or none: its own list, unacknowledged
  if (!list_acked_) {
    auto written = store_.put(layout_.list_ack(self_.name),
                              encode_list_ack(ack_of(running_config_)), std::nullopt);
    if (written) list_acked_ = true;
  }
  if (contacts_ != nullptr && contacts_->changing()) end_change_when_taken(snapshot);
  return true;
}

void Agent::end_change_when_taken(const StoreSnapshot& snapshot) {
  if (!previous_list_left(running_config_, layout_.list_acks(snapshot))) {
    all_took_at_.reset();
    return;
  }
  auto now = clock_.steady_now();
  if (!all_took_at_) all_took_at_ = now;
  if (now - *all_took_at_ < proof_of_fencing(ha_)) return;
  contacts_->end_change();
  spdlog::info("member list {}: the agents have left list {}; counting over list {} alone",
               running_config_.member_list, running_config_.member_list - 1,
               running_config_.member_list);
}

// The scheduled backup decide() planned, from the standby it named (as this agent's config says
// it now: the members may have changed since the runner was made).
void Agent::start_backup(const ScheduledBackup& backup) {
  std::optional<NodeConfig> standby;
  if (const NodeConfig* named = running_config_.find_node(backup.from)) standby = *named;
  backups_->start(backup, self_, standby);
}

// Several machines: a takeover decided on a member list the store has meanwhile replaced (the
// cycle stalled between its read and now) would count over a list others no longer run.
Status Agent::still_on_member_list() {
  if (!running_config_.on_several_machines()) return {};
  auto key = store_.read(layout_.member_list());
  if (!key) return std::unexpected(key.error());
  const StoredValue* stored = key->find(layout_.member_list());
  auto list = stored != nullptr ? decode_member_list(stored->value) : std::nullopt;
  std::uint64_t version = list ? list->version : 0;
  if (version != running_config_.member_list) {
    return fail(ErrorCode::kConflict,
                fmt::format("the member list changed ({} -> {}) since this cycle read it",
                            running_config_.member_list, version));
  }
  return {};
}

void Agent::shut_down() {
  std::optional<ClusterView> view;
  if (auto snapshot = layout_.read_state(store_)) view = layout_.view(*snapshot);
  if (view && view->leader_is(self_.name) && !lease_.held()) {
    (void)lease_.adopt(view->leader->revision);
  }
  // A clean stop sends every WAL record to the standbys before the lease is handed over.
  watch_postmaster(false);
  if (auto ok = node_.stop(StopMode::kFast); !ok) {
    spdlog::warn("stopping PostgreSQL: {}", ok.error().message);
  } else if (callbacks_ != nullptr && settled_role_ && *settled_role_ != "stopped") {
    callbacks_->fire({CallbackEvent::kStop, *settled_role_});  // run before the agent exits
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
    if (released) wake_others("");
    return released;
  }
  if (auto checkpoint = node_.shutdown_checkpoint()) {
    (void)store_.put(layout_.optime(), checkpoint->str(), std::nullopt);
  }
  auto handed = lease_.hand_over(candidates.front());
  if (handed) spdlog::info("lease handed over to {}", candidates.front());
  if (handed) wake_others(candidates.front());
  return handed;
}

}  // namespace tandem
