// Synchronous mode on the leader, as rules: which streaming standbys PostgreSQL waits for
// (ha.synchronous_node_count of them, every one of them for every commit), and when the store
// may name each as one that may take over — only once it has flushed every commit acknowledged
// so far, so that the store never names a standby that could lack one. The agent (SyncManager)
// and the simulation both carry out these plans. Pure.
#pragma once

#include <chrono>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "core/lsn.h"

namespace tandem {

// A standby whose flush position lags the primary's WAL, or that commits wait for, and has not
// moved for this long is stalled (its host suspended or frozen, its disk hung, its replies
// lost): PostgreSQL would make every commit wait for it until wal_sender_timeout ends its
// connection, so another streaming standby takes its place. Found by the simulation (seed 20129486
// on several machines): the synchronous standby's host was suspended while a second standby
// streamed, and the leader kept waiting for the first.
inline constexpr std::chrono::milliseconds kSyncStallLimit{2000};

// Standby names, in order; {"*"} in synchronous_standby_names stands for any standby.
using SyncNames = std::vector<std::string>;

struct SyncObservation {
  SyncNames configured;  // synchronous_standby_names' standbys; empty for none
  SyncNames published;   // the store's `sync` record of this leader; empty for none
  Lsn current;           // where the primary's WAL ends
  struct Standby {
    std::string name;  // a member that may take over (nofailover ones left out)
    Lsn flush;
    bool synchronous = false;  // PostgreSQL reports it as sync
  };
  std::vector<Standby> streaming;
  // The record was written for another leader, or there is none: it is rewritten as this
  // leader's own, naming nobody, before anything else. A record another leader wrote says
  // nothing true of this one (review: synchronous mode turned off and on again left a former
  // leader's record, and a stalled leader gave up its lease on its word).
  bool foreign = false;
  // A commit waits for a synchronous standby now (pg_stat_activity: wait event SyncRep).
  // PostgreSQL releases waiters only when a reply of the standby comes in: one whose last reply
  // covered every commit, then made synchronous and cut off from sending (its replies lost on
  // the way, while the primary's WAL still reaches it), holds every commit while looking caught
  // up (found by the chaos run's one-way cut: writes stopped for the whole cut).
  bool commits_waiting = false;
  // ha.synchronous_mode_strict: with no standby to name, PostgreSQL waits for any ("*") rather
  // than for none.
  bool strict = false;
  // ha.synchronous_node_count: how many standbys every commit waits for, when that many stream.
  int count = 1;
};

// What the leader remembers from one cycle to the next.
struct SyncMemory {
  // Each configured standby not yet named must flush this far to be named: where the WAL ended
  // when it was first seen configured.
  std::map<std::string, Lsn> pending_since;
  struct Progress {
    Lsn flush;
    // Since when it has been seen behind the primary at this position; nullopt while caught up
    // (an idle standby is no stalled one).
    std::optional<std::chrono::steady_clock::time_point> behind_since;
  };
  std::map<std::string, Progress> progress;  // of each streaming standby
};

// The steps of one cycle, in order: narrow the record in the store (those PostgreSQL will no
// longer wait for leave it), configure PostgreSQL, name in the store.
struct SyncStep {
  std::optional<SyncNames> narrow;     // the record rewritten as this leader's, naming these
  std::optional<SyncNames> configure;  // the new synchronous_standby_names (empty for none)
  std::optional<SyncNames> name;       // the whole record, once the rest succeeded
  std::string why;                     // one line for the log; "" when nothing changed
  SyncMemory memory;                   // to keep when every step succeeded
};

// The record as the leader `self` reads it into `seen` (published, foreign).
void read_sync_record(SyncObservation& seen, const std::optional<SyncNames>& sync_standbys,
                      const std::string& sync_leader, const std::string& self);

// "a", "a and b", "a, b and c": for the log.
std::string join_names(const SyncNames& names);

SyncStep plan_sync(const SyncObservation& seen, const SyncMemory& memory,
                   std::chrono::steady_clock::time_point now);

}  // namespace tandem
