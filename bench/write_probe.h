// A write probe, for the benchmarks and the tests: one INSERT per interval through a libpq
// connection string, recording every attempt, so a test can tell when writes stopped, when they
// came back, and which acknowledged ones were lost.
#pragma once

#include <atomic>
#include <chrono>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

namespace tandem::bench {

struct WriteAttempt {
  std::chrono::system_clock::time_point at;  // when it was sent
  long sequence;
  bool acknowledged;
  std::string error;
  std::string server_port;  // the server that acknowledged it
  long timeline = 0;        // the timeline it was written on (its WAL file's)
  // When its answer came back: an acknowledged write is dated here in every check (a write sent
  // before a promotion but acknowledged after it is a write after it; a write that waited a
  // second for its answer is a second without writes).
  std::chrono::system_clock::time_point answered_at;
};

class WriteProbe {
 public:
  // Creates the probe table through `conninfo` (which must reach a writable server). Probes
  // that write at the same time (to several nodes, or one after another) use tables of their
  // own: their sequence numbers start at 1 each.
  WriteProbe(std::string conninfo, std::chrono::milliseconds interval, std::string table = "probe");
  ~WriteProbe() { stop(); }

  void start();
  void stop();

  std::vector<WriteAttempt> attempts() const;
  std::set<long> acknowledged() const;
  // Acknowledged sequence numbers absent from the probe table at `conninfo` (the final
  // primary): acknowledged writes the cluster lost. nullopt when it cannot be read.
  std::optional<std::set<long>> missing_on(const std::string& conninfo) const;
  // The first failed attempt at or after `since`, and the first acknowledged one after that.
  std::optional<WriteAttempt> first_failure_after(
      std::chrono::system_clock::time_point since) const;
  std::optional<WriteAttempt> first_success_after(
      std::chrono::system_clock::time_point since) const;
  // The longest time within [from, to] without an acknowledged write: from `from`, or from an
  // acknowledgement, to the next one (or to `to`). A stall counts as a refusal does: a write
  // that waits 4 s for its answer leaves 4 s without writes, failed or not.
  std::chrono::milliseconds longest_without_write(std::chrono::system_clock::time_point from,
                                                  std::chrono::system_clock::time_point to) const;

 private:
  void run();

  std::string conninfo_;
  std::chrono::milliseconds interval_;
  std::string table_;
  std::atomic<bool> stopping_{false};
  std::thread thread_;
  mutable std::mutex mutex_;
  std::vector<WriteAttempt> attempts_;
};

}  // namespace tandem::bench
