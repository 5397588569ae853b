// The agent of one node: every cycle it observes its PostgreSQL, reads the cluster from the
// store, lets decide() choose one action, executes it, publishes the node's record, and logs
// one line saying what it did and why.
//
// It is built from interfaces — its node (LocalNode), the store, the clock, and optionally a
// watchdog and the other agents' answers — so that a test process can run many agents against
// a simulated clock and a model of PostgreSQL (tests/sim).
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "agent/agent_board.h"
#include "agent/backup_runner.h"
#include "agent/callback_runner.h"
#include "agent/contact_book.h"
#include "agent/fencing_watchdog.h"
#include "agent/lease_keeper.h"
#include "agent/local_node.h"
#include "agent/peer_waker.h"
#include "agent/store_lock_watch.h"
#include "core/attempts.h"
#include "core/decide.h"
#include "core/observe_rest.h"
#include "dcs/cluster_layout.h"
#include "dcs/store.h"
#include "proc/service_notify.h"

namespace tandem {

// What an agent passes on to the one built in its place when the members change (see
// Agent::run): what it has seen of its own role and of the leaders before it.
struct AgentCarry {
  std::optional<std::string> settled_role;
  std::string last_leader;
  // A postmaster asked to promote, still watched, and a promotion not yet in the history.
  pid_t promoting_postmaster = 0;
  std::optional<HistoryEntry> unrecorded_promotion;
  // The lease as its keeper held it (renewed on by the next keeper without a gap), and the
  // postmaster a lost lease stops at once.
  std::optional<LeaseKeeper::Kept> lease;
  pid_t writable_postmaster = 0;
  // Since when its watchdog has been seen gone: a restart that failed before the rebuild still
  // counts as failed after it.
  std::optional<std::chrono::steady_clock::time_point> watchdog_gone_since;
};

// What an agent is built from. Everything referenced outlives the agent.
struct AgentParts {
  const ClusterConfig& config;
  const NodeConfig& self;
  LocalNode& node;
  Store& store;
  Clock& clock;
  // A store connection of its own for the LeaseKeeper, so that its renewals never wait behind
  // a read of the cycle; the cycle's store when null.
  Store* lease_store = nullptr;
  // Stops PostgreSQL when its right to write lapses (a process of its own); optional.
  Watchdog* watchdog = nullptr;
  // Quorum fencing: what the agent hears from the others (required with ha.quorum_fencing).
  ContactBook* contacts = nullptr;
  // Where the agent reports each cycle and takes requests from its API; optional.
  AgentBoard* board = nullptr;
  // The service manager (systemd, Type=notify): told READY once this node's first record is
  // published, each new cycle line as the status, and STOPPING at shutdown; optional.
  const ServiceNotifier* service = nullptr;
  // Renew the lease from a thread of its own (false: the caller ticks lease_keeper()).
  bool keeper_thread = true;
  // The layout to read the store with; a copy shares its cache of decoded member records, so
  // that agents in one process (the simulation's) decode each record once. A fresh one if null.
  const ClusterLayout* layout = nullptr;
  // A reload (SIGHUP, `tandem reload`): when the flag is set, run() clears it between two
  // cycles, reads the config again with read_config and applies what it can at once (see
  // core/reload_plan.h); both optional.
  std::atomic<bool>* reload_requested = nullptr;
  std::function<Result<ClusterConfig>()> read_config;
  // The embedded store's write lock (one machine): a process stopped while holding it is
  // resumed, then killed (Decision::unblock_store); optional.
  StoreLockWatch* store_lock = nullptr;
  // The callbacks of tandem.yaml, run beside the cycle (Decision::callback); optional.
  CallbackRunner* callbacks = nullptr;
  // From the agent this one replaces (the members changed); optional.
  const AgentCarry* carry = nullptr;
  // Scheduled backups (backup.schedule), taken beside the cycle (Decision::backup); optional.
  BackupRunner* backups = nullptr;
  // Wakes the agent a lease is handed to (a switchover, a clean stop); optional.
  PeerWaker* waker = nullptr;
  // Another agent handing this node the lease can wake its sleep (its API serves POST /wake on
  // the board's wake): only then may it sleep past a loop interval at rest (rest_sleep).
  bool wakeable = false;
};

// Why Agent::run returned.
enum class RunEnd {
  kStopped,  // asked to stop, or this node was removed: PostgreSQL shut down, lease handed over
  kRebuild,  // the members changed: build the agent again on rebuild_config(), PostgreSQL runs on
};

class Agent {
 public:
  explicit Agent(const AgentParts& parts);
  ~Agent();

  // Runs cycles until `stop` becomes true, then shuts down: the leader stops PostgreSQL
  // cleanly and hands the lease over at once; the member record is withdrawn. So too when a
  // reload finds this node removed. When a reload adds or removes other members, returns
  // kRebuild between two cycles without shutting anything down: the
  // caller builds a new agent (and what else was made from the member list) on
  // rebuild_config(), passing carry() on; its PostgreSQL runs on and its lease is adopted.
  RunEnd run(const std::atomic<bool>& stop);
  const ClusterConfig& rebuild_config() const { return *rebuild_with_; }
  // After run() returned kRebuild: stops the lease keeper's thread (the lease stays in the
  // store, untouched) and returns what the agent built in this one's place takes on.
  AgentCarry retire();
  // The shutdown run() ends with. Public for the simulation.
  void shut_down();

  // One cycle; returns the decision it executed. Public for tests.
  Decision cycle();
  // Whether another node could take over from this one (false in synchronous mode while no
  // standby is synchronous): a hung cycle gives up the lease only then. Read from the store
  // now, on the keeper's connection (the last cycle's view may predate its own write of `sync`);
  // the last cycle's answer if the store does not answer. Called from the keeper's thread,
  // holding its write lock when free (not when a stalled cycle holds it). Public for the
  // simulation.
  bool others_may_lead();
  // Carries out a request the API passed through the board, if any (run() does before each
  // cycle). Public for the simulation.
  void serve_request();

  LeaseKeeper& lease_keeper() { return lease_; }
  // How long run() sleeps after the last cycle, counted from its start (rest_sleep): one loop
  // interval but at rest. Public for the simulation.
  std::chrono::milliseconds sleep_after_cycle() const { return next_sleep_; }

  // tandem.yaml read again: settings the cycle reads are applied at once; the others are named
  // as waiting for a restart of the agent; a config with an error changes nothing. Logs one
  // line. Called between two cycles (run() does it when asked).
  void reload(const Result<ClusterConfig>& fresh);
  // A reload or the store's member list (several machines) removed this node (run() stops),
  // or changed the members (run() returns kRebuild). Public for the simulation.
  bool removed() const { return removed_; }
  bool wants_rebuild() const { return rebuild_with_.has_value(); }

 private:
  bool follow_member_list(ClusterView& view, const StoreSnapshot& snapshot);
  void end_change_when_taken(const StoreSnapshot& snapshot);
  Status still_on_member_list();
  void start_backup(const ScheduledBackup& backup);
  Status execute(const Decision& decision, const NodeObservation& node,
                 const std::optional<ClusterView>& view);
  Status bootstrap();
  Status renew_lease(const ClusterView& view, const NodeObservation& node);
  // `renewed` unless the renewal it reports is too old to start writing on.
  Status proof_to_write(Status renewed);
  Status renew_or_fence(const ClusterView& view, const NodeObservation& node,
                        RenewalFailure on_failure);
  void publish_optime(const NodeObservation& node);
  // Removes the switchover or failover request read in `view`, by its revision.
  void remove_request(const ClusterView& view);
  Status start_primary(const ClusterView& view, const NodeObservation& node,
                       const Decision& decision);
  Status take_over(const ClusterView& view, const NodeObservation& node, const Decision& decision);
  Status promote(const ClusterView& view, const NodeObservation& node, const Decision& decision);
  // A finished promotion onto `timeline`: its history written, its claim marked promoted.
  Status record_promotion(HistoryEntry record, TimelineId timeline);
  void record_finished_promotion(const ClusterView* view);
  void note_leader_archived(const ClusterView& view);
  void mark_received_wal(const Decision& decision);
  void say_ready(const std::optional<ClusterView>& view, const NodeObservation& node,
                 const Decision& decision);
  Status hand_over(const ClusterView& view, const std::string& target);
  void wake_others(const std::string& target);
  MemberRecord member_record(const NodeObservation& node) const;
  void publish(const NodeObservation& node);
  void log_cycle(const Decision& decision, const Status& result);
  Status release_lease(const std::optional<ClusterView>& view);
  // The watchdog watches the postmaster while it may accept writes, and rests otherwise.
  void watch_postmaster(bool writable);
  void note_watchdog_fence();
  bool cycle_stalled(std::chrono::milliseconds silent);
  Status still_keeping_lease() const;
  void note_renewal_round_trip(std::chrono::milliseconds round_trip);
  void add_quorum_facts(NodeObservation& node);
  // The facts of rest (core/observe_rest.h) from the last cycle and the lease in `view`.
  std::optional<RestFacts> rest_facts(const std::optional<ClusterView>& view) const;
  // After this cycle: how long until the next (rest_sleep). `holder_changed`: as the cycle's
  // start saw it, before it took the lease in.
  std::chrono::milliseconds next_sleep(const std::optional<ClusterView>& view,
                                       bool holder_changed) const;
  // run()'s sleep between two cycles (plan_sleep): a wake ends it at once, unless kEarlyCycles
  // came early within a lease.
  void sleep_from(std::chrono::steady_clock::time_point start);
  void remember_for_rest(const NodeObservation& node, const Decision& decision,
                         const Status& result);
  void watch_store_lock(NodeObservation& node);
  // Carries out Decision::unblock_store.
  void unblock_store(const Decision::UnblockStore& unblock);
  // Whether the watchdog's process still runs (NodeObservation::watchdog_gone), and
  // Decision::restart_watchdog carried out.
  void watch_watchdog(NodeObservation& node);
  void restart_watchdog();
  void track_lease(const ClusterView& view, NodeObservation& node);
  Status carry_out(NodeRequest request);
  void refresh_primary_details(const NodeObservation& node);
  // Decision::apply_settings carried out; its outcome logged, never the cycle's.
  void apply_settings(const ClusterSettings& settings);
  void log_configuration_errors(const NodeObservation& node);
  void report(const NodeObservation& node, const std::optional<ClusterView>& view,
              const Decision& decision, bool failed);

  const ClusterConfig& config_;
  const NodeConfig& self_;
  HaConfig ha_;
  // What reloads compare with: the config the agent started with, and what they applied since.
  ClusterConfig running_config_;
  std::atomic<bool>* reload_requested_;
  std::function<Result<ClusterConfig>()> read_config_;
  LocalNode& node_;
  Store& store_;
  ClusterLayout layout_;
  Clock& clock_;
  Watchdog* watchdog_;
  ContactBook* contacts_;
  AgentBoard* board_;
  StoreLockWatch* store_lock_;
  struct StoppedHolder {  // the store's write lock held by a stopped process, seen since
    std::int64_t pid = 0;
    std::chrono::steady_clock::time_point since{};
    std::chrono::steady_clock::time_point last_seen{};
  };
  std::optional<StoppedHolder> stopped_holder_;
  // Since when this agent has seen its watchdog's process gone; reset once it runs again.
  std::optional<std::chrono::steady_clock::time_point> watchdog_gone_since_;
  std::optional<std::chrono::steady_clock::time_point> watchdog_failure_said_;
  CallbackRunner* callbacks_;
  std::optional<std::string> settled_role_;  // as the last cycle saw it (node_callbacks.h)
  // The cluster's settings: the revision last applied, and the server's configuration errors
  // as last logged (logged again only when they change).
  std::int64_t settings_applied_ = 0;
  std::int64_t settings_confirmed_ = 0;  // applied, and the server's answer observed since
  std::vector<std::string> logged_configuration_errors_;
  std::int64_t refused_settings_ = 0;  // the revision last refused (logged once)
  const ServiceNotifier* service_;
  bool ready_said_ = false;
  Store& lease_store_;                             // the keeper's connection
  std::atomic<std::int64_t> sync_read_at_ms_{-1};  // others_may_lead's last read of `sync`
  LeaseKeeper lease_;
  // The postmaster while it may accept writes (0: none): what a lost lease stops at once.
  std::atomic<pid_t> writable_postmaster_{0};
  std::atomic<bool> others_may_lead_{true};
  std::atomic<bool> stall_said_{false};
  // A postmaster asked to promote (pg_promote() or pg_ctl promote), watched until it exits (0:
  // none).
  pid_t promoting_postmaster_ = 0;
  // A promotion that failed for its agent, to record once PostgreSQL shows it went through.
  std::optional<HistoryEntry> unrecorded_promotion_;
  // The last confirmed renewal's round trip (-1: none yet), and when a slow one was last said.
  std::atomic<std::int64_t> renewal_round_trip_ms_{-1};
  std::atomic<std::int64_t> slow_renewal_warned_ms_{0};

  std::optional<Lsn> published_optime_;
  std::string last_leader_;      // the last other leader seen, for the history
  std::string leader_archived_;  // the last segment it was seen to archive (backup:)
  std::optional<MemberRecord> published_record_;
  // Quorum commit: the promise this node's record carries (Decision::frozen_for, frozen_at), or
  // the one its record in the store carried when this agent started.
  void take_stored_promise(const ClusterView& view);
  void keep_promise(const Decision& decision);
  void watch_what_may_write(const std::optional<ClusterView>& view, NodeObservation& node);
  std::optional<std::int64_t> frozen_for_;
  std::optional<Lsn> frozen_at_;
  std::chrono::steady_clock::time_point published_at_{};
  std::chrono::milliseconds published_ttl_{0};  // the TTL it was written with (publish)
  std::optional<std::chrono::steady_clock::time_point> watchdog_fenced_at_;
  std::uint64_t cycles_ = 0;
  Attempts attempts_;  // escalation: the rejoins and restarts in place that failed in a row
  std::optional<PrimaryDetails> primary_details_;
  std::chrono::steady_clock::time_point primary_details_at_{};
  std::string store_error_;  // why the last read of the store failed, "" when it did not
  struct SeenLease {         // the leader's lease as last read, and since when unchanged
    std::string holder;
    std::int64_t revision = 0;
    std::chrono::steady_clock::time_point since{};
  };
  std::optional<SeenLease> seen_lease_;
  // The last cycle, as the next one's rest is judged (rest_facts): its node's state, step, outcome
  // and whether the server's answer repeated; when the server gave the answer it carried.
  std::optional<RestFacts> last_cycle_;
  std::optional<std::chrono::steady_clock::time_point> answered_at_;
  std::string last_line_;
  int repeats_ = 0;
  std::optional<ClusterConfig> rebuild_with_;  // the members changed: the config to rebuild on
  BackupRunner* backups_ = nullptr;            // scheduled backups, if configured
  PeerWaker* waker_ = nullptr;
  bool wakeable_ = false;
  std::chrono::milliseconds next_sleep_;
  // This cycle's start, which the sleep after it counts from (sleep_from).
  std::chrono::steady_clock::time_point cycle_started_{};
  EarlyCycles early_cycles_;        // cycles that came early, within a lease (sleep_from)
  bool list_acked_ = false;         // several machines: the store knows which member list this runs
  std::uint64_t refused_list_ = 0;  // a list in the store not taken, said once
  std::optional<SteadyTime> all_took_at_;  // when every member was first seen running the list
  bool removed_ = false;                   // a reload found this node removed
};

// The agent's HaConfig from the cluster config.
HaConfig ha_config_for(const ClusterConfig& config, const NodeConfig& self);

}  // namespace tandem
