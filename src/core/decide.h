// decide(): the whole HA policy as one pure function. The agent observes, calls decide, executes
// the one action it returns, and logs the reason. No I/O, no clock reads: `now` is an argument.
#pragma once

#include <string>
#include <vector>

#include "core/cluster_view.h"

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

// Whether `failures` in a row over `failing_for` call for the next step.
inline bool should_escalate(int failures, std::chrono::milliseconds failing_for) {
  return failures >= kAttemptsBeforeEscalating && failing_for >= kFailingBeforeEscalating;
}
std::string_view action_name(Action action);

struct Decision {
  Action action = Action::kNone;
  std::string reason;  // one sentence, logged every cycle
  // The node to follow or clone from, when there is one; for a take-over under quorum fencing,
  // the fenced former leader whose lease is removed first.
  std::string leader;
};

// Quorum fencing: how long a primary must have been neither heard from by a majority of the
// agents nor seen to renew its lease before it counts as fenced. Its watchdog stops it
// renew_deadline (+10 ms) after the later of its last majority of answers and its last
// confirmed renewal; a witness's word may be a ping's timeout (a cycle) plus its freshness (two
// cycles) old, and the primary's last answer a ping's timeout older than the silence it ends:
// renew_deadline + 4 cycles + 10 ms are needed; renew_deadline + 5 cycles are taken (1.1 s with
// the defaults).
std::chrono::milliseconds proof_of_fencing(const HaConfig& ha);

// REQUIRES: `view` is nullopt when the store could not be read this cycle.
Decision decide(const std::optional<ClusterView>& view, const NodeObservation& node,
                const HaConfig& config, std::chrono::steady_clock::time_point now);

// The standbys that may take over, best first: alive, running as standby, not nofailover,
// within maximum_lag_on_failover of the last leader position, on the newest timeline; ranked
// by received WAL, then name.
std::vector<std::string> failover_candidates(const ClusterView& view, const HaConfig& config);

// For each member that is not a candidate (the leader aside), why not.
std::vector<std::string> ineligibility_reasons(const ClusterView& view, const HaConfig& config);

}  // namespace tandem
