// What the agents publish in the coordination store, as read back in one snapshot, and what an
// agent observes of its own node. The inputs of decide().
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "core/cluster_config.h"
#include "core/cluster_settings.h"
#include "core/lsn.h"
#include "core/timeline.h"

namespace tandem {

// What the PostgreSQL of a node is doing right now.
enum class PgState {
  kNoData,    // no data directory yet
  kStopped,   // data, no postmaster
  kStarting,  // a postmaster that does not answer queries yet (recovery, startup)
  kPrimary,   // accepts writes
  kStandby,   // in recovery
};
std::string_view pg_state_name(PgState state);
std::optional<PgState> parse_pg_state(std::string_view name);

// A replication slot of the primary, as its agent last saw it.
struct PublishedSlot {
  std::string name;
  bool active = false;
  std::string wal_status;  // reserved, extended, unreserved, lost
  std::optional<std::int64_t> retained_bytes;
  bool operator==(const PublishedSlot&) const = default;
};

// What only the primary knows, refreshed about once a second: its slots and, per standby
// (application_name), the replay lag pg_stat_replication measures.
using WallTime = std::chrono::system_clock::time_point;

// The primary's WAL archiver (pg_stat_archiver), when the cluster archives (backup:).
struct ArchiverRow {
  std::int64_t archived_count = 0;
  std::string last_archived_wal;
  std::optional<WallTime> last_archived_at;
  std::int64_t failed_count = 0;
  std::string last_failed_wal;
  std::optional<WallTime> last_failed_at;
  // Failing now: its last attempt failed (no success since the last failure).
  bool failing() const {
    return last_failed_at && (!last_archived_at || *last_failed_at > *last_archived_at);
  }
  bool operator==(const ArchiverRow&) const = default;
};

struct PrimaryDetails {
  std::vector<PublishedSlot> slots;
  std::map<std::string, double> replay_lag_s;
  // Its WAL archiver, once it archived or failed to (backup:): status, /cluster and /metrics.
  std::optional<ArchiverRow> archiver;
  bool operator==(const PrimaryDetails&) const = default;
};

// members/<name>: published by each agent every cycle, with a TTL — present means alive.
struct MemberRecord {
  std::string name;
  PgState state = PgState::kStopped;
  TimelineId timeline = 0;
  std::optional<Lsn> received_lsn;  // standby: last WAL received; primary: current WAL end
  std::optional<Lsn> replayed_lsn;
  std::string upstream;     // the node it streams from, if any
  std::string api_address;  // host:port of its agent's HTTP API, "" without one
  bool nofailover = false;
  // Its fencing watchdog's process is not running (NodeObservation::watchdog_gone): it may not
  // take over, be handed the lease, nor keep other candidates waiting, until it runs again.
  bool unwatched = false;
  std::optional<PrimaryDetails> primary;  // the primary's record only
  // The cluster's settings: the revision this agent applied (0: none), and the settings its
  // server waits to restart for (pg_settings.pending_restart).
  std::int64_t settings_revision = 0;
  std::vector<std::string> pending_restart;
  std::vector<std::string> configuration_errors;  // pg_file_settings' errors: "file:line name: why"
  // Quorum commit, a promise: this standby's WAL receiver is stopped at frozen_at and stays so
  // until the lease holder writes a `sync` record of a newer revision than frozen_for.
  std::optional<std::int64_t> frozen_for;
  std::optional<Lsn> frozen_at;
  bool operator==(const MemberRecord&) const = default;
};

// leader: the lease. Whoever's name it holds may run a writable PostgreSQL, and nobody else.
struct LeaderRecord {
  std::string name;
  std::int64_t revision = 0;  // for compare-and-set renewals
  // When the store lets the lease lapse unless renewed, on this agent's steady clock, where the
  // store can say (SQLite: one machine's clock); nullopt for etcd. A standby at rest sleeps
  // until a cycle before it (core/observe_rest.h).
  std::optional<std::chrono::steady_clock::time_point> lapses_at;
};

// switchover: a person asked the leadership to move. Planned (the leader hands over cleanly)
// or forced (`failover`: taken even without a leader).
struct SwitchoverRequest {
  std::string from;  // the leader when asked; empty for a forced failover without one
  std::string to;    // empty: the best candidate
  bool force = false;
  bool allow_data_loss = false;  // a forced failover may ignore maximum_lag_on_failover
  std::int64_t revision = 0;     // of the request as read: it is removed by this revision
};

// timeline: the newest timeline number any node claimed for a promotion. A node claims its new
// timeline by compare-and-set before it promotes, so no number is used by two histories.
struct TimelineClaim {
  TimelineId timeline = 0;
  std::string by;             // the node that claimed it
  std::int64_t revision = 0;  // for the next claim's compare-and-set
  // Its claimant's server was seen on it: the promotion happened (its agent marks it at the
  // first sight, a cycle after it at most). A claim not so marked may be its claimant's own
  // unfinished promotion, which it may try again; a marked one is used, even should the
  // claimant's data later be replaced by a copy from a node behind it.
  bool promoted = false;
};

// backup: the scheduled backup of a slot of time (`schedule` long, counted from the epoch), as
// the primary's agent left it.
struct BackupRecord {
  // When its slot began (wall clock, ms since the epoch): a start time, not a slot's number, so
  // that a schedule made longer compares with what the old one recorded.
  std::int64_t slot_ms = 0;
  std::string state;              // "running", "done", "failed", "busy" (pgBackRest's lock held)
  std::string by;                 // the node whose agent took it
  std::string type;               // "full", "incr"
  std::int64_t at_ms = 0;         // wall clock: when it started, or ended
  std::int64_t last_full_ms = 0;  // when the last full backup the schedule took ended (0: none)
  // Since when the slot's backup has been busy, attempt after attempt ("running" in between
  // keeps it); 0 when it is not.
  std::int64_t busy_since_ms = 0;
};

// last_backup: the newest backup the repository holds, as the leader's agent last read it
// (pgbackrest info) or a backup taken through tandem wrote it.
struct LastBackup {
  std::string label;            // "" when the repository has no backup
  std::string type;             // full, diff, incr
  std::int64_t stopped_s = 0;   // when it ended, Unix seconds (0: no backup)
  std::int64_t checked_ms = 0;  // when the repository was read (wall clock, ms)
};

struct ClusterView {
  bool initialized = false;  // someone won the initialize key
  std::string initialized_by;
  std::optional<LeaderRecord> leader;
  std::map<std::string, MemberRecord> members;
  // The primary's WAL position at its last renewal; kept after the lease expires, to measure
  // how far behind a candidate is.
  std::optional<Lsn> last_leader_lsn;
  bool paused = false;
  std::optional<SwitchoverRequest> switchover;
  // Synchronous mode: the standbys that have every acknowledged commit (empty when none has;
  // nullopt: no record), and the leader that named them (it has every acknowledged commit too).
  std::optional<std::vector<std::string>> sync_standbys;
  std::string sync_leader;
  // Quorum commit: every acknowledged commit is on this many of sync_standbys (fewer than all
  // of them); nullopt: on every one. A takeover then needs the others frozen (decide.h).
  std::optional<int> sync_quorum;
  // The store revision of the last write of `sync` (0: no such key): a leader's update of it
  // is a compare-and-set against it, so that a stale leader never overwrites a taker's.
  std::int64_t sync_revision = 0;
  std::optional<TimelineClaim> timeline_claim;
  // Several machines, once a member was added or removed at run time: the list every agent
  // runs (see MemberList), and the store revision it was written at (0: no list).
  std::optional<MemberList> member_list;
  std::int64_t member_list_revision = 0;
  // Scheduled backups (backup.schedule): the last slot of time one was started in, and how it
  // went (core/backup_schedule.h).
  std::optional<BackupRecord> backup;
  std::optional<LastBackup> last_backup;
  // Several machines, while `tandem adopt --node` runs: the primary it took over, whose
  // server its agent has not restarted yet. No watchdog fences that server, so its agent's
  // silence proves nothing: nobody takes its lease over.
  std::optional<std::string> adopting;
  std::int64_t adopting_revision = 0;
  // The cluster's PostgreSQL settings (`tandem config set`), nullopt when none were ever set.
  std::optional<ClusterSettings> settings;

  bool leader_is(std::string_view name) const { return leader && leader->name == name; }
  // The `sync` record names `name` as a standby that has every acknowledged commit.
  bool sync_names(std::string_view name) const {
    return sync_standbys && std::ranges::find(*sync_standbys, name) != sync_standbys->end();
  }
  // The `sync` record names a standby.
  bool sync_names_any() const { return sync_standbys && !sync_standbys->empty(); }
  // Quorum commit: a member promised a freeze for this revision of `sync` (frozen_for).
  bool a_member_promised_a_freeze() const {
    return std::ranges::any_of(
        members, [&](const auto& member) { return member.second.frozen_for == sync_revision; });
  }
};

// What an agent sees of its own node this cycle.
struct NodeObservation {
  PgState state = PgState::kNoData;
  // Its watchdog watches the postmaster, which this agent started: one it did not start (an
  // adopted server before its agent restarted it) no watchdog can fence.
  bool postmaster_watched = false;
  bool data_was_primary = false;  // data directory without standby.signal
  TimelineId timeline = 0;
  std::optional<Lsn> received_lsn;
  std::optional<Lsn> replayed_lsn;
  std::string upstream;  // where tandem.conf points it
  // A standby: how long its WAL receiver has not been streaming (0 while it streams).
  std::chrono::milliseconds not_streaming_for{0};
  // A standby whose server takes no primary_conninfo: how long it has had no WAL receiver at all
  // (0 while it has one, or is pointed somewhere). received_lsn, read after, is where that
  // receiver stopped.
  std::chrono::milliseconds receiver_stopped_for{0};
  // ...and whether received_lsn is all the WAL the server holds (false after a start while
  // replay has not used up the WAL on disk and no receiver ran: no freeze may be promised at it).
  bool receive_position_known = false;
  // A server that does not accept connections yet: how long its recovery has waited for one
  // and the same WAL segment (0 while it replays, or waits for none).
  std::chrono::milliseconds recovery_stuck_for{0};
  // How often in a row the last rejoin failed, and how often PostgreSQL was restarted in place
  // as the leader without then running as a primary for long, each with how long since the
  // first of them: what does not work again and again is escalated, never retried for ever.
  int rejoin_failures = 0;
  std::chrono::milliseconds rejoin_failing_for{0};
  int start_failures = 0;
  std::chrono::milliseconds start_failing_for{0};
  // Steady time of this agent's last successful write of the lease; nullopt if never.
  std::optional<std::chrono::steady_clock::time_point> lease_renewed_at;

  // Quorum fencing (HaConfig::quorum_fencing), from this agent's direct contact with the others:
  // how long since it last heard back from enough of them to make a majority with itself...
  std::chrono::milliseconds majority_contact_age{0};
  // ...the peers a majority has not heard from for long enough that they must have fenced...
  std::vector<std::string> proven_fenced;
  // ...and the peers that may still accept writes: neither answering as a standby nor fenced.
  std::vector<std::string> takeover_blockers;
  // How long the leader's lease has kept the revision this agent reads, counted from the first
  // cycle that read it: its holder has confirmed no renewal since (each renewal writes anew).
  std::chrono::milliseconds lease_unchanged_for{0};
  // The embedded store (one machine): a process holding its write lock while stopped (SIGSTOP,
  // Ctrl-Z, a debugger) — every agent's writes wait on it, renewals and take-overs alike — and
  // how long this agent has seen it so, counted from the first cycle that did.
  struct StoppedLockHolder {
    std::int64_t pid = 0;
    std::chrono::milliseconds stopped_for{0};
  };
  std::optional<StoppedLockHolder> store_lock_held_stopped;
  // The fencing watchdog's process is not running (killed by hand or by the OOM killer, or it
  // exited): why, and how long this agent has seen it so — 0 in the cycle that first saw it,
  // more once a restart of it failed.
  struct WatchdogGone {
    std::string why;
    std::chrono::milliseconds gone_for{0};
  };
  std::optional<WatchdogGone> watchdog_gone;
  // The role ("primary", "standby", "stopped") this agent last saw the node settled in, before
  // this cycle: the callbacks fire on its changes. nullopt at the agent's first cycle.
  std::optional<std::string> settled_role_before;
  // Scheduled backups: the wall clock now (milliseconds since the epoch) and whether this
  // agent's backup runner is taking one.
  std::int64_t wall_ms = 0;
  bool backup_running = false;          // read before the store, so never after its "done"
  std::int64_t backup_finished_ms = 0;  // the slot of the last backup this agent ended (0: none)
  // The cluster's settings: the store revision of those this agent last applied (0: none)...
  std::int64_t settings_applied = 0;
  // ...and what its running server says of its configuration, read every few seconds: the
  // settings that wait for a restart, and the lines it could not apply.
  std::vector<std::string> pending_restart;
  std::vector<std::string> configuration_errors;
  // When the server gave the answer this observation carries (state, positions, timeline,
  // upstream): this cycle, or an earlier one's taken again at rest (core/observe_rest.h); nullopt
  // when it gave none. And whether that answer said what the one before it said.
  std::optional<std::chrono::steady_clock::time_point> answered_at;
  bool answer_repeated = false;
};

// The HA settings of one agent, validated by validate_ha_config.
struct HaConfig {
  std::string self;
  std::chrono::milliseconds loop_interval{100};
  std::chrono::milliseconds ttl{1000};                 // lease lifetime
  std::chrono::milliseconds renew_deadline{600};       // fence if not renewed within this
  std::chrono::milliseconds cycle_stall_limit{60000};  // a hung cycle gives up the lease
  std::int64_t maximum_lag_on_failover = 16LL << 20;
  bool nofailover = false;
  bool synchronous_mode = false;
  // ha.synchronous_quorum: commits wait for any k standbys (synchronous_standby_names 'ANY k'),
  // and a standby the record names stops its WAL receiver when no leader holds the lease — a
  // freeze — before any of them takes over (docs/ARCHITECTURE.md, "Quorum commit").
  bool synchronous_quorum = false;
  // How long a frozen standby's receiver must have been gone before it says where it stopped:
  // a reload its startup process had not yet taken could start the old one again within
  // wal_retrieve_retry_interval.
  std::chrono::milliseconds freeze_settle{300};
  // A standby pointed at the leader that has not streamed for this long cannot follow it (it
  // replayed past the leader's fork): it is rejoined.
  std::chrono::milliseconds rejoin_after{3000};
  // Nodes on several machines (etcd): a primary writes while it renewed its lease in the store
  // within renew_deadline OR a majority of the agents answer it; a standby takes over only from
  // a primary that has done neither (docs/ARCHITECTURE.md, "Several machines").
  bool quorum_fencing = false;
  // Scheduled backups (backup.schedule, one machine): 0 for none.
  std::chrono::milliseconds backup_schedule{0};
  std::chrono::milliseconds backup_full_every{std::chrono::hours(24 * 7)};
  bool backup_repository = false;  // backup: configured (the leader reads the repository)
};

}  // namespace tandem
