// LocalNode: what an agent does to its own PostgreSQL — the seam between the cycle, which
// carries out what decide() chose, and the server itself. PgLocalNode drives a real PostgreSQL
// (its programs, its supervised postmaster, libpq); the simulation (tests/sim) drives a model
// of one, so that many agents run in one test process against a simulated clock.
//
// Calls come from the agent's thread only.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <functional>
#include <optional>
#include <string>

#include "common/result.h"
#include "core/cluster_view.h"
#include "pg/node_controller.h"

namespace tandem {

// The outcome of a promotion that made the node writable.
struct Promotion {
  TimelineId timeline = 0;  // the timeline it writes on now
  Status later_steps;       // what came after (slots, files) and failed, if anything
};

class LocalNode {
 public:
  virtual ~LocalNode() = default;

  // Everything the agent observes of its node but what only the agent knows (the lease, the
  // escalation counters, the other agents' answers). `at_rest` (core/observe_rest.h): the
  // server's last answer may be taken again where nothing shows it could have changed.
  virtual NodeObservation observe(bool at_rest) = 0;
  // A primary's slots and its standbys' replay lag; nullopt when they cannot be read.
  virtual std::optional<PrimaryDetails> primary_details() = 0;

  // initdb, then start as a primary; returns once it accepts writes.
  virtual Status initialize() = 0;
  // A copy of `leader` into the empty data directory, started as its standby.
  virtual Status clone(const std::string& leader) = 0;
  // Starts the server as a primary (the lease holder) and returns at once. `may_spawn` is
  // asked right before the postmaster is spawned, after every other step: a step that hung
  // long enough for the lease to go elsewhere must not end in a primary. Its commits wait for
  // every one of `synchronous_standbys` (none for empty).
  virtual Status start_primary(const std::function<Status()>& may_spawn,
                               const std::vector<std::string>& synchronous_standbys) = 0;
  // Starts the server read-only, streaming from `leader` ("" for nobody) and returns at once.
  virtual Status start_standby(const std::string& leader) = 0;
  // Points a running standby at `leader`.
  virtual Status follow(const std::string& leader) = 0;
  // Promotes the running standby to timeline `target`: its own plus one, or beyond the newest
  // claim when the operator allowed the data loss (the numbers between are skipped). An error
  // when it does not accept writes afterwards.
  virtual Result<Promotion> promote(TimelineId target) = 0;
  // Whether PostgreSQL switched to `timeline`: a promotion that failed for its agent (frozen,
  // then fenced) may have gone through all the same, and accepted writes.
  virtual bool switched_to(TimelineId timeline) = 0;
  virtual Status stop(StopMode mode) = 0;
  // A CHECKPOINT on the running server, before a clean stop: the stop's own checkpoint then has
  // little left to write, and writes stop for less time. Waited for `limit` at most.
  virtual Status checkpoint(std::chrono::milliseconds limit) = 0;
  // A fast stop, then a start; returns once it accepts connections. `stopped` runs between the
  // two, and its failure leaves PostgreSQL stopped (a leader proves its lease there: the stop
  // may have taken longer than the lease). `spawned` runs once the new postmaster exists,
  // before it accepts connections: the agent watches a leader's from that moment.
  virtual Status restart(const std::function<Status()>& stopped,
                         const std::function<void()>& spawned) = 0;
  // Makes the stopped (or running) node a standby of the running primary: follow, pg_rewind,
  // or a reclone as the last resort.
  virtual Status rejoin() = 0;
  // Moves the data directory aside and copies `leader` afresh.
  virtual Status reclone(const std::string& leader) = 0;
  // The shutdown checkpoint of the stopped node: where its WAL ends.
  virtual Result<Lsn> shutdown_checkpoint() = 0;

  // The postmaster's pid while one runs, else 0: what a lost lease or the watchdog stops.
  virtual pid_t postmaster() const = 0;
  // Sleeps up to `timeout`, less if the postmaster exits meanwhile or `wake_fd` (>= 0: an
  // eventfd, AgentBoard::wake_fd) becomes readable.
  virtual void wait_for_exit(std::chrono::milliseconds timeout, int wake_fd) = 0;

  // Before a promotion, on one machine: other nodes' postmasters that run as primaries are
  // stopped, and this node waits (bounded) for the WAL a stopped former primary shipped. So is
  // the postmaster of `claimant` (the node that claimed the newest timeline, if not this one),
  // even as a standby: it may be in the middle of a promotion that ends on its own (its
  // standby.signal goes only at the end) — frozen with its agent, say, while its claim is taken
  // for abandoned (the simulation, seed 2000495: two primaries once it thawed).
  virtual void fence_others(const std::string& claimant) = 0;

  // Synchronous mode, on the primary: names synchronous standbys (in PostgreSQL, then in the
  // store) as SyncManager does; returns what changed, "" for nothing.
  virtual Result<std::string> update_sync(const ClusterView& view) = 0;
  // The node is no primary now: whatever update_sync remembered is forgotten.
  virtual void reset_sync() = 0;

  // Writes the cluster's settings into the data directory (tandem.settings.conf, which
  // tandem.conf includes) and, when the server runs, has it read them again.
  virtual Status apply_settings(const ClusterSettings& settings) = 0;
};

}  // namespace tandem
