// Failures in a row of the steps that escalate (core/decide.h: should_escalate): rejoins, which
// become a fresh copy, and restarts in place of the leader, which become a release of the lease.
// Counted after each cycle's step and forgiven once the node runs as it should; what
// NodeObservation::rejoin_failures, rejoin_failing_for, start_failures and start_failing_for say.
#pragma once

#include <chrono>
#include <optional>
#include <string>

#include "core/cluster_view.h"
#include "core/decide.h"

namespace tandem {

class Attempts {
 public:
  using TimePoint = std::chrono::steady_clock::time_point;

  // Before a cycle's decision: a standby that streams forgives the failed rejoins (one whose
  // primary handed over meanwhile, say), a primary for ten seconds the failed starts; and what
  // is left is said in `node`.
  void observe(NodeObservation& node, TimePoint now);
  // After the cycle's step: whether it succeeded, and whether this node held the lease when it
  // decided. A rejoin's failure counts only while the leader runs as a primary
  // (Decision::uncounted_rejoin), and towards a streak against that leader alone: failures to
  // follow another leader before it are forgotten, so that the first failure after a new
  // leader's promotion never completes a streak begun against the old one.
  void record(const Decision& decision, bool succeeded, bool leader, TimePoint now);

 private:
  struct Streak {  // failures in a row, since the first of them
    int count = 0;
    std::optional<TimePoint> since;
    std::string against;  // rejoins: the leader they failed to follow
  };
  static void failed(Streak& streak, TimePoint now);

  Streak rejoins_;
  Streak starts_;
  std::optional<TimePoint> primary_since_;
};

}  // namespace tandem
