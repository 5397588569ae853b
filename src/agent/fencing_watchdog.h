// FencingWatchdog: a small process of its own, forked by the agent before any thread starts,
// that stops the agent's PostgreSQL when it runs as a primary and its right to write has not
// been confirmed for renew_deadline: on one machine, by a renewal of its lease that the store
// confirmed (the LeaseKeeper); on several (quorum fencing), by the answers of a majority of the
// other agents (the PeerPinger). It holds whatever holds up the agent's own cycle — a store
// that does not answer or answers slowly, a slow operation, an agent frozen by SIGSTOP or
// swapped out — to the same deadline: its only inputs are numbers in shared memory.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>

#include "common/result.h"

namespace tandem {

class FencingWatchdog {
 public:
  // Forks the watchdog. REQUIRES: no other thread runs yet (fork copies only the caller).
  static Result<std::unique_ptr<FencingWatchdog>> start(std::chrono::milliseconds deadline);
  ~FencingWatchdog();

  // The postmaster that may accept writes now (0: none; the watchdog rests).
  void watch(pid_t postmaster);
  // The primary's right to write was confirmed as of `at` (a lease renewal sent then and
  // confirmed, or the answers of a majority complete then). Only a later time counts.
  void keep_alive(std::chrono::steady_clock::time_point at);
  // When the watchdog last stopped PostgreSQL, if ever.
  std::optional<std::chrono::steady_clock::time_point> fenced_at() const;

 private:
  struct Shared {
    std::atomic<std::int64_t> confirmed_ns;  // CLOCK_MONOTONIC
    std::atomic<pid_t> postmaster;
    std::atomic<std::int64_t> fenced_ns;
  };
  FencingWatchdog(Shared* shared, pid_t child) : shared_(shared), child_(child) {}
  static void run(Shared* shared, std::chrono::milliseconds deadline);

  Shared* shared_;
  pid_t child_;
};

}  // namespace tandem
