// A deterministic simulation of a tandem cluster: N real Agents (the production code: decide(),
// the executor, the LeaseKeeper, timeline claims) against one MemoryStore, a simulated clock,
// and a model of PostgreSQL per node (its WAL as a list of records, its timeline, whether it
// runs, as what, streaming from whom). Time moves only through the event queue; a seed fixes
// every choice, so a failing seed replays exactly.
//
// Two modes. One machine: the embedded store, no quorum fencing. Several machines (multi_host):
// the store behaves as etcd (TTLs in whole seconds, at least 2 s; calls that time out when it is
// out of reach), the agents run with quorum fencing and ping each other (SimPings) over a
// network between the hosts and the store that faults partition (SimNetwork); replication and
// the synchronous standby's acknowledgements cross that network too.
//
// Concurrency is modelled by nesting: an operation that takes time in the real world (a
// promotion, a clone, a rewind) runs the event queue until it is done, with its own agent
// marked busy — meanwhile the other agents cycle, every LeaseKeeper renews (a thread of its own
// in the real agent), watchdogs watch, faults strike.
#pragma once

#include <spdlog/logger.h>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <queue>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "agent/agent.h"
#include "agent/fencing_watchdog.h"
#include "agent/local_node.h"
#include "agent/store_lock_watch.h"
#include "common/clock.h"
#include "core/sync_plan.h"
#include "dcs/cluster_layout.h"
#include "dcs/memory_store.h"
#include "sim_fibers.h"
#include "sim_network.h"
#include "sim_pings.h"

namespace tandem::sim {

class SimClock final : public Clock {
 public:
  std::chrono::system_clock::time_point wall_now() const override {
    return std::chrono::system_clock::time_point(std::chrono::hours(24 * 365 * 50) + now);
  }
  std::chrono::steady_clock::time_point steady_now() const override {
    return std::chrono::steady_clock::time_point(std::chrono::hours(1) + now);
  }
  void sleep_for(std::chrono::milliseconds duration) override { now += duration; }
  SimTime now{0};
};

// One host's clock, as its agent and watchdog read it. tandem reads CLOCK_BOOTTIME, which goes
// on while the host is suspended; the canary's agent (ScenarioSettings::monotonic_clock) reads
// one that stands still meanwhile, as CLOCK_MONOTONIC does, and after a resume believes that
// no time passed since its last renewal.
class HostClock final : public Clock {
 public:
  HostClock(SimClock& world, bool stops_in_suspend)
      : world_(world), stops_in_suspend_(stops_in_suspend) {}
  std::chrono::system_clock::time_point wall_now() const override { return world_.wall_now(); }
  std::chrono::steady_clock::time_point steady_now() const override;
  void sleep_for(std::chrono::milliseconds duration) override { world_.sleep_for(duration); }
  // The host is suspended from `from` until `until`.
  void suspend(SimTime from, SimTime until) { suspends_.emplace_back(from, until); }

 private:
  SimClock& world_;
  bool stops_in_suspend_;
  std::vector<std::pair<SimTime, SimTime>> suspends_;
};

// The store's own clock, for the TTLs of its keys: it stands still while the store is stopped,
// as etcd's leases do (a new etcd leader extends every lease on taking office).
class StoreClock final : public Clock {
 public:
  explicit StoreClock(const SimClock& world) : world_(world) {}
  std::chrono::system_clock::time_point wall_now() const override { return world_.wall_now(); }
  std::chrono::steady_clock::time_point steady_now() const override;
  void sleep_for(std::chrono::milliseconds) override {}
  // The store is stopped from `from` until `until`.
  void stop(SimTime from, SimTime until) { stops_.emplace_back(from, until); }
  bool stopped() const;

 private:
  const SimClock& world_;
  std::vector<std::pair<SimTime, SimTime>> stops_;
};

struct Record {
  std::uint64_t id = 0;
  TimelineId timeline = 1;
};

// The model of one node's PostgreSQL.
struct Pg {
  bool data = false;
  bool running = false;
  bool standby_signal = false;
  SimTime ready_at{0};  // a started server answers from then on
  std::vector<Record> wal;
  std::string upstream;  // primary_conninfo: the node it streams from
  SyncNames sync_names;  // synchronous_standby_names in effect (a primary): it waits for each
  SyncNames sync_file;   // ...and as tandem.conf says, which a reload (or a start) puts in effect
  // Quorum commit: 'ANY sync_any (sync_names)' in effect, and in tandem.conf; 0: every one.
  int sync_any = 0;
  int sync_file_any = 0;
  // A standby pointed at nobody (a freeze): since when it has had no WAL receiver.
  std::optional<SimTime> receiver_stopped_since;
  // A WAL receiver has run since the server started (pg_last_wal_receive_lsn() not NULL).
  bool receiver_ran = false;
  // The canary's freeze: since when it says it streams from nobody, streaming on.
  std::optional<SimTime> pretends_frozen_since;
  std::optional<SimTime> not_streaming_since;
  // The promotion was asked for and PostgreSQL has not finished promoting: it goes on by itself,
  // whatever its agent does meanwhile (frozen, say), until it promotes or is stopped.
  bool promote_pending = false;
  // Its recovery needs WAL that no node has any more (a rewind whose source had removed the
  // segments before the fork, say): it starts as a standby and never becomes consistent. Only a
  // fresh copy ends it.
  bool wal_gap = false;
  SimTime waiting_since{0};  // such a node's recovery has waited since (its agent counts afresh
                             // once it is pointed elsewhere, or restarted)

  TimelineId timeline() const;
  bool primary() const { return data && running && !standby_signal; }
};

// What a scenario found wrong; empty when every invariant held.
struct Verdict {
  std::vector<std::string> violations;
  int promotions = 0;  // bootstrap included
  int acknowledged = 0;
  int lost_async = 0;  // acknowledged writes missing on the final primary, asynchronous mode
  SimTime recovered_after{0};  // from the last fault to a healthy cluster
  // The longest time without a writable primary while a majority could have had one (see
  // kLivenessBound).
  SimTime longest_leaderless_while_able{0};
  // The agents' looks at a running server that answered, and how many of them took the last
  // answer again at rest (core/observe_rest.h).
  long answers = 0;
  long answers_at_rest = 0;
  // Cycles, how many of them slept past a loop interval at rest (rest_sleep), and the wakes
  // sent to agents (a lease handed over or released, a request to its API) and lost.
  long cycles = 0;
  long rest_sleeps = 0;
  long primary_rest_sleeps = 0;  // of those, a primary's (one machine, asynchronous mode)
  long wakes = 0;
  long wakes_lost = 0;
};

struct ScenarioSettings {
  int nodes = 3;
  bool synchronous = false;
  int faults = 3;
  SimTime promotion_latency_max{3000};  // promotions take up to this long
  // The round-1 agent, to show what the simulation catches: no lease keeper (only the cycle
  // renews), no watchdog on one machine, and no timeline claims (acknowledged, not kept).
  bool round_one = false;
  // Nodes on several machines: etcd, quorum fencing, pings, network partitions.
  bool multi_host = false;
  // The canary of suspended hosts: agents (and watchdogs) whose clock stops while their host is
  // suspended, as CLOCK_MONOTONIC does.
  bool monotonic_clock = false;
  // The canary of the `sync` record: a primary that never makes a standby synchronous.
  bool never_names_sync = false;
  // Synchronous mode: ha.synchronous_node_count.
  int sync_count = 1;
  // Synchronous mode: ha.synchronous_quorum (commits wait for any sync_count of the standbys).
  bool sync_quorum = false;
  // The canary of quorum commit: a freeze that leaves the WAL receiver running (the server
  // says it streams from nobody while it goes on acknowledging).
  bool freeze_keeps_streaming = false;
  // Beyond tandem's model, for that canary: a thawed host's PostgreSQL takes a write, and its
  // standbys' replies, before its watchdog stops it (two writers for that instant).
  bool thaw_writes_first = false;
  // The canary of several synchronous standbys: PostgreSQL waits for the first of those it
  // names only (FIRST 1), while the record names them all.
  bool waits_for_first_only = false;
  // The canary of a failed reload: the leader believes what it last configured with success
  // and reads the server only when it starts leading, not after a failure (SyncManager before
  // the review), so tandem.conf may hold a list the server has not taken.
  bool no_sync_settle = false;
  // The canary of the store's write lock: agents that never look for a process stopped holding
  // it (no StoreLockWatch).
  bool no_lock_watch = false;
  // Agents built again at random moments between two cycles, as a change of the members does
  // (Agent::retire, AgentCarry): PostgreSQL, the watchdog, the board and the pings run on.
  bool rebuilds = false;
  // One machine: the clients' writes pause now and then (0.3-2 s after 1-4 s of writes), so
  // that the standbys' answers repeat and they rest (core/observe_rest.h) while faults strike.
  bool quiet_load = false;
  // A second before the first fault, every watchdog is killed (World::kill_watchdogs);
  // `watchdogs_refused`:
  // no agent can start its own again for 3 s.
  bool watchdogs_killed = false;
  bool watchdogs_refused = false;
  // Multi-host, three nodes or more: a person changes the members now and then, as `tandem
  // member` does — a standby removed, a node removed earlier added back — one change at a time,
  // each written only once every agent runs the list before it (core/member_change.h).
  bool member_changes = false;
  // The canary of member changes: agents that count over a new list alone at once, not over
  // both lists while the change is under way (ContactBook::set_members).
  bool count_new_list_alone = false;
  // Multi-host: the cluster begins as servers built by hand and taken over as `tandem adopt
  // --node` does (local/adopt.cc): the first node's server runs as primary under no agent (so
  // under no watchdog), the store knows it leads — a lease without a TTL and the `adopting`
  // mark — and the standbys' agents start first, each restarting its server; the primary's
  // starts seconds later, restarting it in place, and the mark goes once it runs it (the
  // person's adopt, on the primary's host, reaching the store).
  bool adopted = false;
  // The canary of adoption: the store is told without the mark (the adoption as first written).
  bool adopt_without_mark = false;
};

class World;

// The LocalNode of one simulated node.
class SimNode final : public LocalNode {
 public:
  SimNode(World& world, int index) : world_(world), index_(index) {}
  NodeObservation observe(bool at_rest) override;
  std::optional<PrimaryDetails> primary_details() override { return std::nullopt; }
  Status initialize() override;
  Status clone(const std::string& leader) override;
  Status start_primary(const std::function<Status()>& may_spawn,
                       const SyncNames& synchronous_standbys) override;
  Status start_standby(const std::string& leader) override;
  Status follow(const std::string& leader) override;
  Result<Promotion> promote(TimelineId target) override;
  bool switched_to(TimelineId timeline) override;
  Status stop(StopMode mode) override;
  Status checkpoint(std::chrono::milliseconds limit) override;
  Status restart(const std::function<Status()>& stopped,
                 const std::function<void()>& spawned) override;
  Status rejoin() override;
  Status reclone(const std::string& leader) override;
  Result<Lsn> shutdown_checkpoint() override;
  pid_t postmaster() const override;
  void wait_for_exit(std::chrono::milliseconds, int) override {}
  void fence_others(const std::string& claimant) override;
  Result<std::string> update_sync(const ClusterView& view) override;
  void reset_sync() override {
    sync_memory_ = {};
    sync_believed_.reset();
    sync_believed_any_ = 0;
  }
  // The simulation's store holds no settings: never asked.
  Status apply_settings(const ClusterSettings&) override { return {}; }

 private:
  Pg& pg();
  Status usable();
  // An adopted server still running as started by hand: stopped cleanly first, as the agent's
  // node controller stops a postmaster it did not start before it spawns its own.
  void stop_foreign();
  std::string config_name(int index) const;
  World& world_;
  int index_;
  SyncMemory sync_memory_;
  // What the leader believes PostgreSQL waits for (SyncManager's); nullopt: read it again.
  std::optional<SyncNames> sync_believed_;
  int sync_believed_any_ = 0;
  // The server's last answer, as a real agent keeps it for a cycle at rest (core/observe_rest.h):
  // what it said and what stood for it then — the postmaster (its start count), standby.signal,
  // how much WAL there was and on which timeline.
  struct Answer {
    NodeObservation said;
    bool streaming = false;
    int postmaster = 0;
    bool standby_signal = false;
    std::size_t wal = 0;
    TimelineId timeline = 0;
  };
  std::optional<Answer> answer_;
  bool answer_stands(const Pg& server) const;
};

// The store as one agent reaches it: unavailable during its outages and once it is dead.
class SimStore final : public Store {
 public:
  SimStore(World& world, int index, Store& inner) : world_(world), index_(index), inner_(inner) {}
  using Store::read;
  Result<StoreSnapshot> read(std::string_view prefix, std::string_view except) override;
  Result<Revision> create(const std::string& key, const std::string& value, Ttl ttl) override;
  Result<Revision> compare_and_set(const std::string& key, const std::string& value,
                                   Revision expected, Ttl ttl) override;
  Result<Revision> put(const std::string& key, const std::string& value, Ttl ttl) override;
  Status remove(const std::string& key, std::optional<Revision> expected) override;
  Result<Revision> wait(std::string_view, Revision, std::chrono::milliseconds) override {
    return fail(ErrorCode::kUnavailable, "not simulated");
  }

 private:
  Status reachable() const;
  Status write_lock() const;
  bool answer_lost();
  Ttl ttl_of(Ttl ttl) const;
  bool forgets(const std::string& key) const;
  template <typename T>
  Result<T> answer(Result<T> result, bool conditional, const std::string& key);
  World& world_;
  int index_;
  Store& inner_;
};

// The embedded store's write lock as one agent watches it (one machine): held by an agent
// frozen inside a store write (Slot::store_lock_until).
class SimLockWatch final : public StoreLockWatch {
 public:
  explicit SimLockWatch(World& world) : world_(world) {}
  std::optional<std::int64_t> stopped_holder() override;
  Status unblock(std::int64_t pid, bool kill) override;

 private:
  World& world_;
};

// Wakes another agent's rest (Agent::wake_others) as POST /wake would: a moment later, or lost.
class SimWaker final : public PeerWaker {
 public:
  SimWaker(World& world, int from) : world_(world), from_(from) {}
  std::vector<std::string> wake(const std::vector<std::string>& nodes) override;

 private:
  World& world_;
  int from_;
};

class SimWatchdog final : public Watchdog {
 public:
  void watch(pid_t postmaster) override { watched = writable = postmaster; }
  void keep_alive(SteadyTime at) override {
    if (!confirmed || at > *confirmed) confirmed = at;
  }
  // As the real one: the agents' answers never bring back a right that has lapsed.
  void keep_alive_by_peers(SteadyTime at) override {
    bool lapsed = watched != 0 && clock != nullptr &&
                  (!confirmed || clock->steady_now() - *confirmed >= deadline);
    if (!lapsed) keep_alive(at);
  }
  const Clock* clock = nullptr;
  std::chrono::milliseconds deadline{0};
  std::optional<SteadyTime> fenced_at() const override { return fenced; }
  std::optional<std::string> gone() override {
    if (!killed) return std::nullopt;
    return "it was killed by signal 9";
  }
  Status restart() override {
    if (killed && restart_refused) {
      return fail(ErrorCode::kFailed, "watchdog: fork: Resource temporarily unavailable");
    }
    killed = false;
    return {};
  }
  // Killed (by hand, the OOM killer): it stops nothing until its agent starts it again, which
  // fails while `restart_refused`.
  bool killed = false;
  bool restart_refused = false;
  pid_t watched = 0;   // rests (0) once it fenced, until the agent watches again
  pid_t writable = 0;  // what the agent last said may accept writes: what a lost lease stops
  std::optional<SteadyTime> confirmed;
  std::optional<SteadyTime> fenced;
};

// One node: its PostgreSQL model, its agent (while the agent process lives) and its faults.
struct Slot {
  Pg pg;
  std::unique_ptr<HostClock> clock;  // its host's: outlives its agents
  std::unique_ptr<SimNode> local;
  std::unique_ptr<SimStore> store;
  std::unique_ptr<SimWatchdog> watchdog;
  std::unique_ptr<ContactBook> contacts;  // multi-host: the answers of the other agents
  std::unique_ptr<AgentBoard> board;      // its API: ping answers (multi-host) and requests
  std::unique_ptr<Agent> agent;
  // The config its agent runs: multi-host, with the member list it took from the store.
  std::unique_ptr<ClusterConfig> config;
  std::uint64_t generation = 0;  // of the agent process, counted at each start
  // A standby at rest sleeps past a loop interval (rest_sleep): its next cycle is due then, by
  // the event of this token; a wake (PeerWaker, a request to its API) brings it forward.
  SimTime rest_until{0};
  std::uint64_t rest_token = 0;
  SimTime cycle_started{0};         // its last cycle's start
  bool wake_pending = false;        // woken while awake: its next sleep ends at once
  EarlyCycles early_cycles;         // its cycles a wake started early, within a lease
  SimTime deaf_until{0};            // its sleep ignores wakes until then (plan_sleep)
  std::unique_ptr<SimWaker> waker;  // one per slot: an agent being destroyed may still call it
  bool alive = false;               // the agent process (and its watchdog) runs
  int busy = 0;                     // inside a long operation of its cycle
  bool keeper_busy = false;         // the lease keeper's thread is inside a (slow) store call
  bool destroy_pending = false;
  SimTime agent_frozen_from{0};  // SIGSTOP of the agent (its threads, not its watchdog)
  SimTime agent_frozen_until{0};
  // One thread stalled: the agent's cycle (a call that hangs, a page fault on a slow disk) while
  // its lease keeper, pinger and API threads run on.
  SimTime cycle_stalled_until{0};
  // One machine: the agent frozen inside a store write holds the store's write lock (every
  // other agent's writes wait, then fail) until then — its thaw — or until it is resumed or
  // dies; `lock_traced`:
  // frozen by a debugger, which a SIGCONT does not end.
  SimTime store_lock_until{0};
  bool lock_traced = false;
  std::unique_ptr<SimLockWatch> lock_watch;
  // A freeze ended early (SIGCONT): its cycle and keeper parked until the freeze's end run now.
  std::uint64_t thaw_epoch = 0;
  bool cycle_parked = false;
  bool rebuild_waiting = false;  // a rebuild scheduled by a cycle has not run yet
  bool keeper_parked = false;
  struct Wait {  // a call of its agent waiting in World::spend
    Fibers::Fiber* fiber = nullptr;
    bool woken = false;
  };
  std::vector<std::shared_ptr<Wait>> waits;
  SimTime host_frozen_from{0};  // everything of the node, PostgreSQL included (or suspended)
  SimTime host_frozen_until{0};
  bool thaw_pending = false;  // multi-host: the watchdog checks first when the host thaws
  bool reloads_fail = false;  // pg_ctl reload fails (its server is unaffected)
  SimTime store_down_until{0};
  // Its connection to the store ended by a request left unanswered: a new one needs the link
  // both ways (see SimStore::answer_lost).
  bool store_connection_dropped = false;
  SimTime store_slow_until{0};  // every store call takes up to store_slow_max
  SimTime store_slow_max{1500};
  SimTime pg_broken_until{0};  // PostgreSQL dies as soon as it starts (a bad setting, say)
  bool gone_for_good = false;  // a host that never returns: the others must go on without it
  // Counted at every start of its PostgreSQL: each postmaster has a pid of its own, as on a
  // machine (with one pid per node, a restarted standby kept the watch of a promotion that had
  // failed — PostgreSQL stopped under it — and answered "may write" for good: seed 10000555).
  int postmaster_starts = 0;
  // A server started by hand (ScenarioSettings::adopted), not by its agent: the agent sees it
  // stopped (it is not its child), stops it before it starts its own, and no watchdog can fence
  // it (its pid is not the agent's to watch). Cleared when it stops.
  bool foreign_postmaster = false;
};

class World {
 public:
  World(std::uint64_t seed, ScenarioSettings settings);
  long answers = 0, answers_at_rest = 0;  // Verdict::answers, Verdict::answers_at_rest
  // A wake from node `from`'s agent to `node`'s (SimWaker): lost now and then, else delivered a
  // moment later.
  bool send_wake(int from, const std::string& node);
  void wake_after_request(const std::string& first);
  ~World();
  // Runs the scenario: bootstrap, faults, then quiet until the cluster is healthy (bounded).
  Verdict run();

  // For scripted scenarios (no random faults): starts every agent and lets 3 s pass; whether
  // the cluster is healthy then. advance() lets simulated time pass, checking every invariant.
  bool start_cluster();
  // For ScenarioSettings::adopted: the servers as built by hand, the store told, the agents
  // started as the adoption starts them. `primary_agent_at`: when the primary's host runs adopt
  // again (it waits for the standbys), its agent started then.
  void start_adopted(SimTime primary_agent_at);
  // The adoption has not ended: the primary's agent does not run its server yet, or the mark is
  // still in the store. Failover is not expected meanwhile (nobody may prove it fenced).
  bool adoption_pending() const { return adoption_pending_; }
  void advance(SimTime until) { run_until(until); }
  // The one node that accepts writes now; -1 for none (or several).
  int writable_primary() const;
  // How many acknowledged commits the node's WAL lacks.
  std::size_t acknowledged_missing_on(int index) const;
  // The store as every agent reads it (the history left out).
  ClusterView store_view() const;
  const Verdict& verdict() const { return verdict_; }
  // One primary holding the lease, every other node streaming from it.
  bool healthy() const;
  // A node is gone for good and every other member needs WAL only it had (seed 3100001054);
  // a node outside the member list counts for nothing.
  bool only_an_operator_can_recover() const;
  // A person asks the leader to hand over (to `to`, or to the best standby when empty).
  void request_switchover(const std::string& to = "");
  // A person's `tandem failover --to NAME` (forced, without --allow-data-loss).
  void request_failover(const std::string& to);
  // Called the moment a node's PostgreSQL is asked to promote (pg_promote()), with that
  // node: where a script strikes.
  std::function<void(int)> on_promote_requested;
  // The first node asked to promote has its agent frozen from that moment for `how_long`
  // (PostgreSQL promotes on meanwhile); frozen_promoter names it (-1 until then).
  void freeze_first_promoter(SimTime how_long);
  int frozen_promoter = -1;
  // The node's agent (its threads, not its watchdog nor PostgreSQL) frozen for `how_long`.
  void freeze_agent(int index, SimTime how_long);
  // A person reloads the node's PostgreSQL (pg_ctl reload, or `tandem config set`): tandem.conf
  // as it stands takes effect.
  void reload_by_hand(int index);

  // For SimNode, SimStore.
  SimClock clock;
  std::mt19937_64 rng;
  // Which wakes are lost, and their delays: drawn apart from rng, so that a scenario where no
  // agent rests (several machines) draws its faults as before.
  std::mt19937_64 wake_rng;
  std::mt19937_64 load_rng;  // ScenarioSettings::quiet_load's pauses
  SimTime writes_until_{0}, quiet_until_{0};
  ScenarioSettings settings;
  ClusterConfig config;
  std::vector<Slot> slots;
  SimNetwork network;  // multi-host: cut links; always whole on one machine
  int index_of(const std::string& name) const;
  bool multi_host() const { return settings.multi_host; }
  // Runs `call` at `when` (for SimPings).
  void at(SimTime when, int node, std::function<void()> call) {
    schedule(when, Kind::kCall, node, std::move(call));
  }
  // Lets `ms` of simulated time pass while `busy` is inside an operation: every other event
  // runs meanwhile. A call on a fiber (every cycle and keeper tick) steps aside until then, and
  // for as long as its thread is frozen or stalled after.
  void spend(int busy, SimTime ms);
  SimTime random_ms(SimTime low, SimTime high);
  bool host_frozen(int index) const { return slots[index].host_frozen_until > clock.now; }
  // One machine: the node whose agent holds the store's write lock while frozen, if any.
  std::optional<int> store_lock_holder() const;
  // The pid of the node's agent process (one per start).
  std::int64_t agent_pid(int index) const;
  // The node's agent frozen for `length` inside a store write, holding the store's write lock
  // (one machine), by SIGSTOP or by a debugger (`traced`: a SIGCONT does not end it).
  void freeze_in_store_write(int index, SimTime length, bool traced);
  // SIGCONT to a frozen agent: its freeze ends now, unless a debugger holds it.
  void resume_agent(int index);
  // SIGKILL to it; its service starts it again 2 s later.
  void kill_stopped_agent(int index);
  // The node's agent built again in its process (see ScenarioSettings::rebuilds); waits for a
  // cycle or a renewal under way to end, as the real one waits for its cycle to return.
  // `generation`: a rebuild a cycle asked for, which a new process (a restart) does not take.
  void rebuild_agent(int index, std::optional<std::uint64_t> generation = std::nullopt);
  // The agent's sleep after a cycle, until `at` unless a wake ends it (wake_agent).
  void sleep_until(int index, SimTime at);
  // The agent's process gone (a crash, a clean stop): its parked chains and rest end with it.
  void end_chains(int index);
  // A person's `tandem member add|remove` (see ScenarioSettings::member_changes); refused as
  // the CLI refuses, then tried again a second later, `tries` times in all.
  void change_members(int tries = 5);
  // One such change: the node added (its agent started a moment later) or removed.
  Status change_member(int target, bool add);
  void start_added_agent(int index);
  // Whether the node is on the cluster's member list now (the store's; every node without one).
  bool listed(int index) const;
  // Multi-host: the host suspended for `length` (see HostClock).
  void suspend_host(int index, SimTime length);
  // The agent's threads (pinger and API included) are stopped: by SIGSTOP or with the host.
  bool agent_frozen(int index) const { return thaw_of(index) > clock.now; }
  bool agent_frozen_at(int index, SimTime when) const;
  SimTime thaw_of(int index) const {
    return std::max(slots[index].agent_frozen_until, slots[index].host_frozen_until);
  }
  // Whether `a` reaches `b`'s PostgreSQL (replication, pg_rewind, a copy): a link, a live host.
  bool reaches(int a, int b) const { return network.connected(a, b) && !host_frozen(b); }
  // The node's PostgreSQL accepts writes now: a primary, cut off or not. A frozen host's
  // accepts none while frozen (multi-host; on one machine the next node fences it first).
  bool writable(int index) const;
  void promoted(int index, TimelineId timeline);
  void became_primary(int index);
  // PostgreSQL ends a promotion it was asked for (its agent may be frozen meanwhile).
  void finish_promotion(int index, TimelineId target);
  void stop_pg(int index, bool clean);
  void violation(const std::string& what);
  // A started server that is broken dies when it would have become ready.
  void start_pg(int index);
  void note(const std::string& what);
  bool trace = false;  // the agents' log lines and the world's events on stderr
  // Sets `trace` and makes every log line go to stderr with the simulated time and the node
  // whose call wrote it (the default logger: one world at a time).
  void trace_to_stderr();
  // A scripted case traces its seed `seed` when TANDEM_SIM_TRACE_SCRIPT names it.
  void trace_if_asked(std::uint64_t seed);
  int current = -1;  // the node whose cycle runs, for the trace

 private:
  enum class Kind { kCycle, kKeeper, kWatchdog, kReplicate, kWrite, kCall };
  struct Event {
    SimTime at;
    std::uint64_t sequence;
    Kind kind;
    int node;
    std::function<void()> call;
    bool operator>(const Event& other) const {
      return at != other.at ? at > other.at : sequence > other.sequence;
    }
  };
  void schedule(SimTime at, Kind kind, int node, std::function<void()> call = {});
  void run_until(SimTime until);
  void dispatch(Event event);
  // The node's cycle (or keeper) waits for its agent's freeze to end at `frozen`; a resume
  // ends the wait early.
  void park(int index, SimTime frozen, bool keeper);
  void wake(int index, const std::shared_ptr<Slot::Wait>& wait);
  // The agent's freeze (and its hold on the store's lock) ends now: its parked calls go on.
  void end_freeze(int index);
  void start_agent(int index);
  // The agent of a slot whose watchdog, board, contacts and node are there: a new one, or one
  // built again with what the old one passed on.
  void build_agent(int index, const AgentCarry* carry);
  void kill_agent(int index);
  // A wake reaches the node's agent: a rest ends a loop interval after its last cycle began at
  // the earliest; one awake makes its next sleep a loop interval.
  void wake_agent(int index);
  void cycle(int index);
  void run_cycle(int index);
  void keeper_tick(int index);
  // The agent of a killed node goes once none of its calls is under way.
  void destroy_if_pending(int index);
  void watchdog(int index);
  void watchdog_check(int index);
  void thaw_hosts(SimTime until);
  void lease_lost(int index);
  void inject_partition(int target, int fault, SimTime back);
  void inject_request(int target);
  void replicate();
  void write();
  void inject_fault();
  void kill_watchdogs();
  void check_invariants();
  // Liveness during faults, every 100 ms: see kLivenessBound.
  void check_liveness();
  bool able_to_lead() const;
  bool up(int index) const;
  void check_sync_record();

 public:
  // A host crash: the agent and its PostgreSQL die together (for scripts).
  void crash_host(int index) { kill_agent(index); }

 private:
  std::string fingerprint(const std::vector<Record>& wal, std::size_t length) const;

  std::priority_queue<Event, std::vector<Event>, std::greater<>> events_;
  // The agents' calls under way (declared after the slots: destroyed first, once finished).
  Fibers fibers_;
  bool finishing_ = false;                               // the world goes: a spend returns at once
  std::shared_ptr<spdlog::logger> logger_before_trace_;  // put back when the world goes

 public:
  StoreClock store_clock{clock};  // the store (etcd) is stopped while this clock stands still

 private:
  std::uint64_t sequence_ = 0;
  MemoryStore store_{store_clock};
  ClusterLayout layout_;
  Verdict verdict_;
  std::uint64_t next_record_ = 1;
  std::set<std::uint64_t> acknowledged_;
  std::map<std::uint64_t, std::string> pending_acks_;  // record -> primary waiting for its sync
  std::map<TimelineId, std::string> timelines_;        // number -> where it forked
  SimPings pings_{*this};
  bool split_brain_ = false;  // two writable primaries now: reported when it began
  SimTime last_fault_{0};
  SimTime last_heal_{0};               // of the store's outages (the network keeps its own)
  int promotion_budget_ = 1;           // the bootstrap, then one per fault that may move the lead
  std::optional<SimTime> able_since_;  // since when able_to_lead() has held without a break
  // The last moment with no writable primary and none able to lead (a hung node that alone may
  // lead in synchronous mode, say): the final bound counts from it too.
  SimTime unable_at_{0};
  bool liveness_reported_ = false;             // once per episode
  std::optional<SimTime> sync_unnamed_since_;  // see check_sync_record
  bool sync_reported_ = false;
  bool adoption_pending_ = false;
  void adopt_primary();
  void watch_adoption_end();
};

// Liveness during faults, not only after they heal: whenever, for this long without a break,
// a majority of the nodes are up and connected — agent alive and not frozen, PostgreSQL able to
// start, the store reached and answering promptly, every link among them and to the store
// whole — and one of them may lead (synchronous mode: it has every acknowledged commit;
// asynchronous: it has data), one of them runs as the only writable primary. The bound, for
// the slowest path: a switchover's target whose PostgreSQL dies mid-promotion and then does
// not come back (a bad setting) learns it after the promotion's time (at most 3 s here), then
// restarts it for kFailingBeforeEscalating (10 s) before it releases the lease; a failover then
// takes the proof that it fenced itself (1.1 s; or the lease's lapse, 1 s, 2 s as etcd's whole
// seconds), a cycle or two and a promotion (3 s): about 19 s, seen up to 19.8 s. 25 s.
inline constexpr SimTime kLivenessBound{25000};

// Synchronous mode: a standby streaming from the primary is named in the `sync` record within
// this long (both up and connected): a cycle to make it synchronous, one to see it flushed past
// that point and name it; 5 s leaves room for slow cycles.
inline constexpr SimTime kSyncNamingBound{5000};

// Runs one seeded scenario; the seed also chooses its settings.
// `rebuilds` false: never rebuild an agent, whatever the seed draws (the seeds that found bugs
// before rebuilds were modelled replay their schedules).
// `member_changes` false: never change the members, whatever the seed draws (the same for the
// seeds found before they were modelled).
// `adopted` false: always a cluster bootstrapped by its agents (ScenarioSettings::adopted).
Verdict run_scenario(std::uint64_t seed, bool multi_host = false, bool rebuilds = true,
                     bool member_changes = true, bool adopted = true);
ScenarioSettings settings_for(std::uint64_t seed, bool multi_host = false);

}  // namespace tandem::sim
