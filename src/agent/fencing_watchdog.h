// FencingWatchdog: a small process of its own, forked by the agent before any thread starts,
// that stops the agent's PostgreSQL when it runs as a primary and the agent has not heard back
// from a majority of the other agents for renew_deadline (quorum fencing). It holds whatever
// holds up the agent's own cycle — a store that does not answer, a slow operation, an agent
// frozen by SIGSTOP or swapped out — to the same deadline: its only inputs are two numbers in
// shared memory, written by the agent's ping threads and its cycle.
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
  // When the answers of a majority of the agents were last complete.
  void majority_contact(std::chrono::steady_clock::time_point at);
  // When the watchdog last stopped PostgreSQL, if ever.
  std::optional<std::chrono::steady_clock::time_point> fenced_at() const;

 private:
  struct Shared {
    std::atomic<std::int64_t> majority_contact_ns;  // CLOCK_MONOTONIC
    std::atomic<pid_t> postmaster;
    std::atomic<std::int64_t> fenced_ns;
  };
  FencingWatchdog(Shared* shared, pid_t child) : shared_(shared), child_(child) {}
  static void run(Shared* shared, std::chrono::milliseconds deadline);

  Shared* shared_;
  pid_t child_;
};

}  // namespace tandem
