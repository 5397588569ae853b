// Synchronous mode on the leader, as rules: which streaming standby PostgreSQL waits for, and
// when the store may name it as the only one that may take over — only once it has flushed every
// commit acknowledged so far, so that the store never names a standby that could lack one. The
// agent (SyncManager) and the simulation both carry out these plans. Pure.
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

struct SyncObservation {
  std::string configured;  // synchronous_standby_names, without quotes; "" for none
  std::string published;   // the store's `sync` record of this leader; "" for none
  Lsn current;             // where the primary's WAL ends
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
};

// What the leader remembers from one cycle to the next.
struct SyncMemory {
  std::optional<Lsn> pending_since;  // the configured standby must flush this far to be named
  struct Progress {
    Lsn flush;
    // Since when it has been seen behind the primary at this position; nullopt while caught up
    // (an idle standby is no stalled one).
    std::optional<std::chrono::steady_clock::time_point> behind_since;
  };
  std::map<std::string, Progress> progress;  // of each streaming standby
};

// The steps of one cycle, in order: unname in the store, configure PostgreSQL, name in the store.
struct SyncStep {
  bool unname = false;
  std::optional<std::string> configure;  // the new synchronous_standby_names ("" for none)
  std::optional<std::string> name;       // published in the store once the rest succeeded
  std::string why;                       // one line for the log; "" when nothing changed
  SyncMemory memory;                     // to keep when every step succeeded
};

// The record as the leader `self` reads it into `seen` (published, foreign).
void read_sync_record(SyncObservation& seen, const std::optional<std::string>& sync_standby,
                      const std::string& sync_leader, const std::string& self);

SyncStep plan_sync(const SyncObservation& seen, const SyncMemory& memory,
                   std::chrono::steady_clock::time_point now);

}  // namespace tandem
