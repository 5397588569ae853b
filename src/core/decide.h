// decide(): the whole HA policy as one pure function. The agent observes, calls decide, executes
// the one action it returns, and logs the reason. No I/O, no clock reads: `now` is an argument.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "core/backup_schedule.h"
#include "core/cluster_config.h"
#include "core/cluster_view.h"
#include "core/node_callbacks.h"

namespace tandem {

enum class Action {
  kNone,          // healthy, or nothing this node may do; the reason says which
  kBootstrap,     // win the initialize key, initdb, start as primary, take the lease
  kClone,         // copy the leader into the empty data directory, start as standby
  kStartPrimary,  // holds the lease, PostgreSQL down: restart in place (no new timeline)
  kStartStandby,  // PostgreSQL down and not the leader: start it read-only
  kRenewLease,    // the primary keeps its lease
  kAcquireLease,  // a running primary whose lease lapsed retakes it if still free
  kTakeOver,      // the lease is free and this standby is the best: win it, then promote
  kPromote,       // holds the lease but still in recovery
  kFollow,        // a standby pointed at the wrong upstream: repoint at the leader
  kFence,         // a primary that cannot renew in time: stop accepting writes now
  kDemote,        // a primary while another holds the lease: stop at once
  kRejoin,        // a stopped former primary: rewind (or reclone) to follow the leader
  kHandOver,      // a requested switchover: stop cleanly, give the lease to the target
  kReclone,       // a standby that cannot rejoin: move its data aside, copy the leader afresh
  kReleaseLease,  // the leader whose PostgreSQL cannot start: give the lease up to a standby
};

// After this many failures in a row, over at least this long (a passing condition — a
// postmaster still on its way out, say — fails several times in a second), a rejoin becomes a
// reclone and a restart in place a release of the lease.
inline constexpr int kAttemptsBeforeEscalating = 3;
inline constexpr std::chrono::milliseconds kFailingBeforeEscalating{10'000};

// A standby not yet consistent whose recovery has waited this long for one WAL segment while
// pointed at the leader needs WAL that nobody streams to it any more (removed on the leader
// once a rewind or an old copy fell behind it): it would start for ever, so it is copied
// afresh (the old data moved aside). The WAL receiver asks again every 5 s
// (wal_retrieve_retry_interval): six refusals, never a recovery that moves.
inline constexpr std::chrono::milliseconds kRecoveryStuckBeforeReclone{30'000};

// Whether `failures` in a row over `failing_for` call for the next step.
inline bool should_escalate(int failures, std::chrono::milliseconds failing_for) {
  return failures >= kAttemptsBeforeEscalating && failing_for >= kFailingBeforeEscalating;
}
std::string_view action_name(Action action);
// The steps after which the node may accept writes: from the moment one is decided, the node
// answers the other agents "may write", even if the step fails (a promotion that timed out may
// finish all the same).
bool may_make_writable(Action action);

// What a running primary's failed renewal of its lease means (Action::kRenewLease).
enum class RenewalFailure {
  kRetry,                // nothing yet: the next cycle, or the watchdog, sees to it
  kFenceIfTakenOver,     // quorum fencing: stop at once if another node holds the lease now
  kFenceIfPastDeadline,  // stop at once if no renewal was confirmed within renew_deadline
};

// The whole plan of one cycle: the agent carries it out and decides nothing of its own.
struct Decision {
  Action action = Action::kNone;
  std::string reason;  // one sentence, logged every cycle
  // kClone, kStartStandby, kFollow, kReclone: the node to copy or stream from (also said, for
  // the log, with kNone and kDemote: the leader).
  std::string source;
  // kHandOver: the standby the lease goes to.
  std::string target;
  // kTakeOver under quorum fencing: the fenced former leader whose lease is removed first (the
  // timeline is then claimed on the view without it).
  std::string remove_lease_of;
  // kRenewLease by a running primary: what a failed renewal means...
  RenewalFailure on_renewal_failure = RenewalFailure::kRetry;
  // ...and whether the pending switchover or failover request is done with (removed by its
  // revision before the renewal).
  bool remove_request = false;
  // kTakeOver, kPromote: claim the timeline after the newest claim rather than after this
  // node's own (a failover forced with --allow-data-loss to a node behind that claim, or a
  // claim its claimant left behind)...
  bool claim_past_newest = false;
  // ...and the WAL the last leader published that this node never received, for the history.
  std::optional<std::int64_t> lost_bytes;
  // kStartPrimary in synchronous mode with standbys named in `sync`: PostgreSQL restarts
  // waiting for those standbys when the record is this node's own (it stays true, and they
  // may take over should this node hang: fresh seed 270247736150)...
  std::vector<std::string> keep_sync_standbys;
  // ...or, when another leader wrote it (or there is none), the record is first rewritten as
  // this node's own naming nobody, by a compare-and-set on the revision read, before the renewal
  // that proves the lease: from then on only this node has every acknowledged commit.
  bool unname_sync = false;
  // Any action: a process seen holding the embedded store's write lock while stopped
  // (NodeObservation::store_lock_held_stopped) is resumed (SIGCONT) at once, and killed if it
  // is still stopped holding it stopped_lock_holder_limit later (a debugger's, or one stopped
  // again); carried out before the action, which may need to write.
  struct UnblockStore {
    std::int64_t pid = 0;
    bool kill = false;
    std::chrono::milliseconds stopped_for{0};
  };
  std::optional<UnblockStore> unblock_store;
  // kRejoin of a leader that does not run as a primary (not promoted yet, or restarting): a
  // failure does not count towards a fresh copy. Rejoins fail then for want of a primary, and
  // counted, the first one to fail after the leader's promotion would already be the copy.
  bool uncounted_rejoin = false;
  // Any action: the fencing watchdog's process is not running (NodeObservation::watchdog_gone):
  // it is started again, before the action. Until it runs, nothing makes this node writable, and
  // a primary whose watchdog could not be restarted stops writes and gives its lease up.
  bool restart_watchdog = false;
  // Any action: the callback the node's observed change calls for (role_callback), handed to
  // the callback runner before the action; it runs beside the cycle, never in it.
  std::optional<Callback> callback;
  // The leader's running primary: a scheduled backup to start beside the cycle (the backup
  // runner takes it from a streaming standby; core/backup_schedule.h).
  std::optional<ScheduledBackup> backup;
  // The node the store's `adopting` mark names runs a postmaster its agent started (a primary
  // it watches, or a standby): the mark removed (ClusterView::adopting); adopt waits for that.
  // The leader's running primary, backup: configured: the repository read for its newest
  // backup beside the cycle (last_backup), when due and no backup runs here.
  bool read_repository = false;
  // A promotion (a take-over or a handed-over lease), backup: configured: before it, the WAL
  // this standby received that the old primary may have died before archiving is marked for
  // its own archiver (ops/wal_archive.h).
  bool archive_received_wal = false;
  bool end_adoption = false;
  // A node with data, any action but those a failover waits on (take-over, promotion, fencing,
  // demotion, hand-over: a cycle later): the cluster's settings (ClusterView::settings) changed
  // since this agent applied them — written into the data directory (a running server told to
  // read them), before the action.
  bool apply_settings = false;
  // Any action: the newest timeline claim is this node's own, unmarked, and its server runs on
  // that timeline (core/timeline_claim.h, claim_to_mark): it is marked promoted before the
  // action. A rejoin or a reclone waits until the mark is written: its data replaced first, the
  // node would take its used claim for an unfinished promotion and use the number again.
  bool mark_claim_promoted = false;
  // Quorum commit (HaConfig::synchronous_quorum): the promise this standby publishes in its
  // member record (MemberRecord::frozen_for, frozen_at): its WAL receiver stopped there, settled
  // (receiver_stopped_for), and it stays so until the lease holder writes `sync` anew.
  std::optional<std::int64_t> frozen_for;
  std::optional<Lsn> frozen_at;
  // kTakeOver under quorum commit: the `sync` record is written first, naming this node, by a
  // compare-and-set on the revision the freezes it counted were published for; lost, nothing
  // else is done (no lease is taken).
  bool name_in_sync_first = false;
};

// How long a process resumed while it held the embedded store's write lock stopped may stay so
// before the agents kill it: a third of renew_deadline. A SIGCONT ends any stop but a
// debugger's, and one that stops again at once holds the lock as long.
std::chrono::milliseconds stopped_lock_holder_limit(const HaConfig& ha);

// Quorum fencing: how long a primary must have been neither heard from by a majority of the
// agents nor seen to renew its lease before it counts as fenced. Its watchdog stops it
// renew_deadline (+10 ms) after the later of its last majority of answers and its last
// confirmed renewal; a witness's word may be a ping's timeout (a cycle) plus its freshness (two
// cycles) old, and the primary's last answer a ping's timeout older than the silence it ends:
// renew_deadline + 4 cycles + 10 ms are needed; renew_deadline + 5 cycles are taken (1.1 s with
// the defaults).
std::chrono::milliseconds proof_of_fencing(const HaConfig& ha);

// A restart requested through the API (or `tandem restart`), from a view read after the
// request came: why the node must not be restarted in its role, if it must not. Its data is a
// primary's and it does not hold the lease (it would write unwatched beside the leader), or it
// holds the lease but another node claimed a newer timeline (a claimant that promoted while this
// node's decision to take the lease back was made on an older view: the fresh seed
// 540497786959 restarted the old primary beside it), or its fencing watchdog is not running
// (NodeObservation::watchdog_gone: it would write with nothing to stop it).
std::optional<std::string> restart_refusal(const ClusterView& view, const NodeObservation& now,
                                           const std::string& self);

// A fresh copy requested through the API (reinitialize), from a view read after the request
// came: why this node must not be copied afresh, if it must not. Only a standby is, and only
// from a leader that runs as a primary: a lease holder still in recovery may release the lease
// without promoting, and this node's data, replaced by its copy, may have been the one with
// every acknowledged commit (the rule decide()'s own copies follow, seed 910011382).
std::optional<std::string> reinitialize_refusal(const ClusterView& view, const std::string& self);

// `tandem promote NODE` by hand, in synchronous mode: why NODE may lack acknowledged commits by
// the store's `sync` record, if it may. Without a record (the agents never ran in synchronous
// mode) nothing is known and nothing refused. Quorum commit asks for the others' freezes, as a
// takeover does.
std::optional<std::string> manual_promotion_refusal(const ClusterView& view,
                                                    const std::string& node);

// REQUIRES: `view` is nullopt when the store could not be read this cycle.
Decision decide(const std::optional<ClusterView>& view, const NodeObservation& node,
                const HaConfig& config, std::chrono::steady_clock::time_point now);

// The standbys that may take over, best first: alive, running as standby, not nofailover,
// within maximum_lag_on_failover of the last leader position, on the newest timeline; ranked
// by received WAL, then name.
// `planned`: for a hand-over by a leader that stops cleanly first (quorum commit needs no freeze).
std::vector<std::string> failover_candidates(const ClusterView& view, const HaConfig& config,
                                             bool planned = false);

// Whether any node but this one could lead at all: always in asynchronous mode; in synchronous
// mode while `sync` names a standby, or names another node as the leader (this node then has no
// acknowledged commit the others lack: seed 163652320, a primary whose cycle hung after another
// took over answered "may write" for 30 s and blocked every takeover). Otherwise the leader
// alone has every acknowledged commit. A leader whose cycle hangs past ha.cycle_stall_limit gives
// up its lease only then; `view` must be the store as it is now, not as a cycle read it before
// naming or unnaming a standby (seed 277724970).
bool others_may_lead(const ClusterView& view, const HaConfig& config);

// For each member that is not a candidate (the leader aside), why not.
// `planned` as for failover_candidates.
std::vector<std::string> ineligibility_reasons(const ClusterView& view, const HaConfig& config,
                                               bool planned = false);

// Why the node a person's switchover or failover names (request.to, not empty) may not take the
// lead, or nullopt when it may: the one rule of the CLI, the API and decide(). A switchover goes
// only to a standby that may take over (failover_candidates); a failover forced to a node goes
// past nofailover too, and with allow_data_loss past the rules that guard acknowledged commits
// (synchronous standby, timeline, lag) — never to a node that is not a running standby.
std::optional<std::string> request_refusal(const ClusterView& view,
                                           const SwitchoverRequest& request,
                                           const HaConfig& config);

// The settings of the cluster those rules read (synchronous mode, maximum_lag_on_failover), for
// whoever judges a request or a candidate without being an agent (the CLI, the API).
HaConfig eligibility_rules(const ClusterConfig& config);

}  // namespace tandem
