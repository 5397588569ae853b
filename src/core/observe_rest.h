// When an agent may take its PostgreSQL's last answer for this cycle's instead of asking again.
// An idle agent asked its server ten times a second for facts that had not changed, most of its
// idle cost (issue 19.3). A cycle at rest asks nothing of the server, but the node is still seen
// anew where it could change at once: the data directory, the postmaster (by its pidfd),
// standby.signal (a promotion removes it) and the WAL file where the last answer's position is
// (a write changes it). So what a cycle at rest can miss is a WAL position that moved without
// touching that file's time stamp (kept at the kernel's clock tick), and a WAL receiver that
// stopped: an answer is taken again only while less than a second old (kRestAskEvery), so for a
// second and a rest at most (longest_rest: 1.8 s with the defaults).
//
// And only while the cluster is settled: the node's last step was the settled one (a standby
// that follows, a primary that renews), the answers repeat, and the lease is being renewed: a
// lease unrenewed for half its time, a switchover asked for, anything that makes the agents act
// makes every one of them ask its server each cycle again, before anyone could take over.
#pragma once

#include <chrono>
#include <optional>
#include <vector>

#include "core/cluster_view.h"
#include "core/decide.h"

namespace tandem {

inline constexpr std::chrono::milliseconds kRestAskEvery{1000};

struct RestFacts {
  // The last cycle: its observation's state and step, and whether the step failed.
  PgState state = PgState::kNoData;
  Action action = Action::kNone;
  bool failed = false;
  // The server's last answer: how old it is, and whether it said what the one before said.
  std::optional<std::chrono::milliseconds> answer_age;
  bool answer_repeated = false;
  // The lease as this cycle reads it: whether this node holds it, how long since its own last
  // confirmed renewal (when it does), and how long another holder's has kept its revision.
  bool leads = false;
  bool someone_leads = false;
  bool holder_changed = false;  // another node holds the lease than the last cycle read
  std::optional<std::chrono::milliseconds> renewed_ago;
  std::chrono::milliseconds lease_unchanged_for{0};
  bool request_pending = false;  // a switchover or failover asked for
  // How long until the store lets the lease lapse unless renewed, where the store can say
  // (LeaderRecord::lapses_at); and whether another agent handing the lease to this node can
  // wake this one's sleep (its API runs).
  std::optional<std::chrono::milliseconds> lease_lapses_in;
  bool wakeable = false;
};

bool may_rest(const RestFacts& facts, const HaConfig& ha);

// How long the agent sleeps after a cycle (issue 19.3, docs/proposals/rest-cycle.md). One loop
// interval; but a standby at rest (may_rest) on one machine (no quorum fencing) whose store says
// when the lease lapses sleeps until a loop interval before that, at most longest_rest (its
// record lives a lease and the rest, so it is published again well before it lapses; a lost
// wake costs no more). The first cycle after the lease is half old (by the
// store's age of it, RestFacts::lease_unchanged_for) is not at rest, and comes a loop interval
// less kPastLapse before the lease could lapse at the latest. So a
// leader that dies is seen as soon as before: the lease cannot lapse unseen, for nobody but its
// holder can end it early, and a holder that hands it over (a switchover, a clean stop) or
// releases it wakes the others, the one it hands it to first; so does a switchover or failover
// request once written. A wake lost costs that sleep's time, never safety. Its own server's
// exit, and a request to its API, wake the sleep at once too. A primary at rest on one machine
// in asynchronous mode, which can be woken, sleeps until a loop interval after its next renewal
// is due (renewed_ago + sleep = ttl / 4 + a loop interval, or renew_deadline less a loop
// interval where that is sooner), a loop interval at least: about four
// cycles a second instead of ten. A renewal that does not come is seen a loop interval after it
// was due, as before; what else the primary's cycle watches comes a few hundred ms later at
// most: a process stopped holding the store's write lock (first seen at most ttl / 4 + a loop
// interval after the last renewal, resumed at once), a member added.
std::chrono::milliseconds rest_sleep(const RestFacts& facts, const HaConfig& ha);
inline constexpr std::chrono::milliseconds kLongestRest{1000};
// How long after the lease could lapse the cycle that follows a standby's rest by a loop interval
// starts (rest_sleep): late enough that the store's millisecond and the timer's slack put it past
// the lapse, so the standby sees the lapse at once instead of a loop interval later.
inline constexpr std::chrono::milliseconds kPastLapse{10};
// How old an agent's last cycle may be before its health checks say it stopped: a lease, and
// the longest rest where a standby may rest past half a lease (one machine, asynchronous mode);
// a lease elsewhere, as before there were rests.
std::chrono::milliseconds agent_alive_for(const HaConfig& ha);
// The longest sleep at rest: a lease less two loop intervals (800 ms with the defaults; in
// synchronous mode half a lease less one, 400 ms), at most kLongestRest, at least a loop
// interval.
std::chrono::milliseconds longest_rest(const HaConfig& ha);

// A member's record (Agent::publish) is written with the TTL record_ttl gives for the sleep that
// follows the cycle: a lease, and the part of the sleep past a loop interval (a rest) outside
// synchronous mode, whose primary names and unnames its synchronous standbys by these records.
// An unchanged record is written again once, by the next cycle's start, less than two thirds
// of a lease of it would be left (record_due): without a rest every third of a lease, as
// before there were rests; across rests it is as far from lapsing at every cycle's start. So a
// member that dies is seen gone a lease, and at most longest_rest more, after its last cycle.
std::chrono::milliseconds record_ttl(std::chrono::milliseconds sleep, const HaConfig& ha);
bool record_due(std::chrono::milliseconds since_written, std::chrono::milliseconds sleep,
                std::chrono::milliseconds written_ttl, const HaConfig& ha);

// How the agent sleeps after a cycle (Agent::sleep_from; the simulation sleeps so too), counted
// from the cycle's start: until `until`, the rest_sleep's time and a loop interval at least;
// a wake (a lease handed to this node, a request, a signal) ends it at once, but not before
// `deaf_until`. That is 0 — a switchover's target used to wait up to a loop interval before it
// looked, 99 ms of a 373 ms switchover under load — unless kEarlyCycles cycles came early
// (started by a wake before a loop interval had passed) within the last lease's time: wakes
// come from other processes (POST /wake needs no token) and must not make the cycle spin, so a
// flood of them adds kEarlyCycles cycles per lease's time at most (a switchover needs two: the
// request's wake and the hand-over's).
inline constexpr int kEarlyCycles = 4;
struct SleepPlan {
  std::chrono::milliseconds deaf_until{0};
  std::chrono::milliseconds until{0};
};
SleepPlan plan_sleep(std::chrono::milliseconds rest, int early_within_a_lease,
                     std::chrono::milliseconds loop_interval);
// Whether a cycle came early: its sleep ended `slept` after the last cycle's start.
bool came_early(std::chrono::milliseconds slept, std::chrono::milliseconds loop_interval);

// The cycles that came early within the last lease's time, which plan_sleep counts; times on
// the caller's steady clock. The agent and the simulation both keep theirs here.
class EarlyCycles {
 public:
  // After a sleep that ended `slept` after its cycle's start, at `now`.
  void after_sleep(std::chrono::milliseconds slept, std::chrono::milliseconds now,
                   std::chrono::milliseconds loop_interval);
  // How many came early within `lease` before `now` (older ones are forgotten).
  int within(std::chrono::milliseconds now, std::chrono::milliseconds lease);
  void clear() { starts_.clear(); }

 private:
  std::vector<std::chrono::milliseconds> starts_;
};

}  // namespace tandem
