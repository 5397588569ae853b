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
  // ha.synchronous_quorum: PostgreSQL waits for any `count` of every usable streaming standby
  // (synchronous_standby_names = 'ANY k (...)'), and the record says that every acknowledged
  // commit is on `k` of the standbys it names (plan_quorum_sync below).
  bool quorum = false;
  // synchronous_standby_names is `ANY configured_any (configured)`; 0 for the other forms (a
  // list every commit waits for each of, "*", or none).
  int configured_any = 0;
  // The record's quorum: every acknowledged commit is on that many of the standbys it names;
  // nullopt: on every one of them.
  std::optional<int> published_quorum;
  // A member published that it stopped its WAL receiver for the record's revision (a freeze,
  // MemberRecord::frozen_for) while this leader holds the lease: the record is written again,
  // its revision the newer, which lets it stream again (core/decide.h, quorum commit).
  bool member_frozen = false;
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
  // Quorum: where the WAL ended when the configuration was first seen in effect for every
  // standby it names; k of them flushed past it, the record may say what it says.
  std::optional<Lsn> quorum_since;
};

// The steps of one cycle, in order: narrow the record in the store (those PostgreSQL will no
// longer wait for leave it), configure PostgreSQL, name in the store.
struct SyncStep {
  std::optional<SyncNames> narrow;     // the record rewritten as this leader's, naming these
  std::optional<SyncNames> configure;  // the new synchronous_standby_names (empty for none)
  std::optional<SyncNames> name;       // the whole record, once the rest succeeded
  std::string why;                     // one line for the log; "" when nothing changed
  SyncMemory memory;                   // to keep when every step succeeded
  // Quorum commit: the record's quorum written with `narrow` and with `name` (0: every named
  // standby has every acknowledged commit), and `configure` as `ANY configure_any (...)` (0:
  // the other forms).
  int narrow_quorum = 0;
  int configure_any = 0;
  int name_quorum = 0;
};

// The record as the leader `self` reads it into `seen` (published, foreign).
void read_sync_record(SyncObservation& seen, const std::optional<SyncNames>& sync_standbys,
                      const std::string& sync_leader, const std::string& self,
                      std::optional<int> sync_quorum = std::nullopt);

// "a", "a and b", "a, b and c": for the log.
std::string join_names(const SyncNames& names);

// With seen.quorum, plan_quorum_sync's plan.
SyncStep plan_sync(const SyncObservation& seen, const SyncMemory& memory,
                   std::chrono::steady_clock::time_point now);

// Quorum commit. PostgreSQL takes `ANY kc (Sc)`: a commit returns once any kc of Sc flushed it.
// The record says (k, S): every acknowledged commit is on at least k members of S. The rules
// that keep it true (docs/ARCHITECTURE.md, "Quorum commit"):
// - a configuration implies the record when each kc-subset of Sc holds k members of S:
//   kc - |Sc \ S| >= k. Across a reload, each WAL sender takes the new list and count on its
//   own, so every mix must: the smaller count over the union of both lists;
// - the record narrows to (k', S') when the old one implies it (k - |S \ S'| >= k'), and
//   grows to what the configuration says once kc members of Sc flushed past where the WAL
//   ended when that configuration was in effect for all of them.
// Sc is every usable streaming standby (none stalled), kc = min(count, |Sc|).
SyncStep plan_quorum_sync(const SyncObservation& seen, const SyncMemory& memory,
                          std::chrono::steady_clock::time_point now);

// Every acknowledged commit on `k` of `names` implies it on `k2` of `names2`.
bool quorum_implies(int k, const SyncNames& names, int k2, const SyncNames& names2);

}  // namespace tandem
