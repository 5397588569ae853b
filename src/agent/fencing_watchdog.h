// FencingWatchdog: a small process of its own (src/watchdog), forked and exec'd by the agent
// before any thread starts, that stops the agent's PostgreSQL when it runs as a primary and its
// right to write has not been confirmed for renew_deadline: on one machine, by a renewal of its
// lease that the store confirmed (the LeaseKeeper); on several (quorum fencing), by the answers of
// a majority of the other agents (the PeerPinger). It holds whatever holds up the agent's own cycle
// — a store that does not answer or answers slowly, a slow operation, an agent frozen by SIGSTOP or
// swapped out — to the same deadline: its only inputs are numbers in shared memory.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <utility>

#include "common/result.h"
#include "proc/fencing_loop.h"

namespace tandem {

// What the agent tells whatever stops its PostgreSQL when its right to write lapses.
class Watchdog {
 public:
  using SteadyTime = std::chrono::steady_clock::time_point;
  virtual ~Watchdog() = default;
  // The postmaster that may accept writes now (0: none; the watchdog rests).
  virtual void watch(pid_t postmaster) = 0;
  // The primary's right to write was confirmed as of `at` (a lease renewal sent then and
  // confirmed, or the answers of a majority complete then). Only a later time counts.
  virtual void keep_alive(SteadyTime at) = 0;
  // The same from the answers of a majority of the agents, which never bring back a right that
  // has lapsed for the postmaster it watches: only a renewal of the lease, a compare-and-set,
  // does (rule 5). A frozen host thaws with its pinger and its watchdog racing; answers read
  // first (from agents that have meanwhile seen another node take over) kept a fenced primary
  // writing (issue 16.3).
  virtual void keep_alive_by_peers(SteadyTime at) { keep_alive(at); }
  // When the watchdog last stopped PostgreSQL, if ever.
  virtual std::optional<SteadyTime> fenced_at() const = 0;
  // Why the watchdog's process is not running (killed, or it exited), or nullopt while it runs.
  virtual std::optional<std::string> gone() = 0;
  // Starts it again where it is gone, watching what it watched, held to the same confirmation
  // and deadline (they live in the page it shares with the agent).
  virtual Status restart() = 0;
};

class FencingWatchdog final : public Watchdog {
 public:
  // Forks the watchdog. Its child makes only async-signal-safe calls, so restart() may run while
  // other threads do; from the thread that will live as long as the agent (PR_SET_PDEATHSIG
  // follows the thread that forked): the agent's cycle runs on its main thread.
  // `fast_first`: a fast shutdown before the immediate one, so that the WAL senders pass the
  // last commits to standbys on this machine; with nodes on several machines (whose standbys a
  // cut-off primary cannot reach anyway) an immediate one, which writes no shutdown checkpoint
  // and so keeps the WAL pg_rewind needs when the node rejoins.
  // `program`: the watchdog's own program (watchdog_program()), opened and checked, then exec'd
  // by the child, which ignores the signals meant for the agent and gets a session of its own;
  // start() returns once its loop runs. Empty, or if the program cannot be opened, will not run
  // or exits at once, the child runs the same loop itself (a fork of the agent: about 1 MiB
  // more, the pages either process wrote since); runs() says which.
  static Result<std::unique_ptr<FencingWatchdog>> start(std::chrono::milliseconds deadline,
                                                        bool fast_first = false,
                                                        const std::string& program = "");
  ~FencingWatchdog() override;

  void watch(pid_t postmaster) override;
  void keep_alive(SteadyTime at) override;
  void keep_alive_by_peers(SteadyTime at) override;
  std::optional<SteadyTime> fenced_at() const override;
  std::optional<std::string> gone() override;
  Status restart() override;
  // The watchdog process, for tests that freeze it.
  pid_t pid() const { return child_; }
  // What runs the loop: the program's path, or "a fork of the agent" and why.
  const std::string& runs() const { return runs_; }

 private:
  FencingWatchdog(WatchdogShared* shared, int memory_fd, std::chrono::milliseconds deadline,
                  bool fast_first, std::string program)
      : shared_(shared),
        memory_fd_(memory_fd),
        deadline_(deadline),
        fast_first_(fast_first),
        program_(std::move(program)) {}
  // `use_program`: false for the fork's own loop, once the program would not run.
  Status spawn(bool use_program = true);

  WatchdogShared* shared_;
  int memory_fd_;  // the page's memfd (close-on-exec), handed to each process that runs the loop
  pid_t child_ = -1;
  std::chrono::milliseconds deadline_;
  bool fast_first_;
  std::string program_;
  std::string runs_;
  std::optional<std::string> exit_;  // how the last process ended, while none runs
};

// The watchdog's program beside the running binary (`tandem-watchdog` in its directory, or in
// ../libexec/tandem as the package installs it): a regular file, not a link, owned by the
// binary's owner and writable by nobody else, not set-user-ID nor set-group-ID, in directories
// that only root or that owner may change (sticky ones aside). Otherwise why it is not used.
Result<std::string> watchdog_program();
// The same beside `binary`.
Result<std::string> watchdog_program(const std::filesystem::path& binary);

}  // namespace tandem
