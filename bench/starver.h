// A starved machine, for the chaos runner and the integration tests: a busy loop on every core,
// and bursts of SIGSTOP (300 ms) / SIGCONT (100 ms) to a cluster's agents and to its PostgreSQL
// (the postmasters and every process they started: backends, WAL senders and receivers) and
// their watchdogs (a process each agent forks) — the
// kind of machine on which a test that passes only when idle proves little.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <mutex>
#include <set>
#include <thread>
#include <vector>

#include "core/cluster_config.h"

namespace tandem::bench {

// A busy loop on every core (at least two), each a child process that dies with this one: a
// loaded machine (issue 19.7), without the starver's freezes.
class BusyLoops {
 public:
  BusyLoops();
  ~BusyLoops();  // the loops end
  BusyLoops(const BusyLoops&) = delete;
  BusyLoops& operator=(const BusyLoops&) = delete;

 private:
  std::vector<pid_t> spinners_;
};

class Starver {
 public:
  // Starts starving at once; `config` must outlive the starver.
  explicit Starver(const ClusterConfig& config);
  ~Starver();  // every process it froze runs again; the busy loops end
  // `pid` is frozen by someone else (a fault): from now on the starver neither stops nor
  // continues it, so that a freeze lasts its whole time. release() gives it back.
  void hold(pid_t pid);
  void release(pid_t pid);
  Starver(const Starver&) = delete;
  Starver& operator=(const Starver&) = delete;

 private:
  std::vector<pid_t> targets() const;

  const ClusterConfig& config_;
  BusyLoops busy_;
  std::atomic<bool> stop_{false};
  mutable std::mutex mutex_;
  std::set<pid_t> held_;  // frozen by someone else: left alone
  std::thread bursts_;
};

}  // namespace tandem::bench
