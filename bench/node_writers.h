// A writer per node, straight to it, for the chaos runners: an acknowledged write proves the node
// was writable when its answer came. Two nodes with overlapping runs of acknowledged writes were
// writable at once: a split brain, however short (a single write inside another's run counts).
// A write answered more than kLate after it was sent was in flight through a stall (its whole
// host frozen: the backend finishes the commit at the thaw, before any fencing process there can
// act, which asynchronous replication cannot prevent): it proves the node writable only when it
// was sent, so it ends its run there, and it is reported on its own (late()).
#pragma once

#include <atomic>
#include <chrono>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "core/cluster_config.h"

namespace tandem::bench {

// "HH:MM:SS.mmm", to find a moment in the agents' logs.
std::string time_of_day(std::chrono::system_clock::time_point at);

class NodeWriters {
 public:
  // One INSERT INTO chaos_writer every 20 ms on each node of `config` (its Unix socket), from
  // now until stop(); the table must exist on the primary.
  explicit NodeWriters(const ClusterConfig& config);
  ~NodeWriters() { stop(); }
  NodeWriters(const NodeWriters&) = delete;
  NodeWriters& operator=(const NodeWriters&) = delete;

  void stop();
  // The overlapping runs, as "nodeA and nodeB both writable for N ms".
  std::vector<std::string> overlaps() const;
  // The writes answered late, as "nodeA acknowledged a write N ms after it was sent".
  std::vector<std::string> late() const;

  static constexpr std::chrono::milliseconds kLate{1000};

 private:
  using Run =
      std::pair<std::chrono::system_clock::time_point, std::chrono::system_clock::time_point>;
  void run(const std::string& name, const std::string& conninfo);

  std::atomic<bool> stop_{false};
  std::vector<std::thread> threads_;
  mutable std::mutex mutex_;
  std::map<std::string, std::vector<Run>> runs_;
  std::vector<std::string> late_;
};

}  // namespace tandem::bench
