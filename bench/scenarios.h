// The benchmark scenarios. Each trial builds a fresh local cluster, measures one thing the
// way shared issue 5 defines it, and tears the cluster down.
#pragma once

#include <chrono>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "bench/write_probe.h"
#include "common/result.h"

namespace tandem::bench {

struct Sample {
  std::string scenario;
  double seconds = 0;
  std::optional<long> lost;  // acknowledged writes missing on the final primary
  long acknowledged = 0;
};

// One failover drawn as a chart: every write attempt and the moments that matter.
struct FailoverTimeline {
  std::vector<WriteAttempt> attempts;
  std::chrono::system_clock::time_point killed_at, promoted_at, first_new_write_at;
};

struct BenchOptions {
  std::string tandem_binary;
  std::chrono::milliseconds idle_for{std::chrono::seconds(60)};
  std::vector<int> sizes_mb = {100, 1024};
};

// Host crash (agent and postmaster killed together at a random point of the agent's cycle):
// the outage, lost writes, and how soon the old primary streams once its agent starts again.
Result<std::vector<Sample>> host_crash(const BenchOptions& options, bool synchronous,
                                       FailoverTimeline* timeline);
Result<std::vector<Sample>> postmaster_crash(const BenchOptions& options);
Result<std::vector<Sample>> switchover(const BenchOptions& options);
// Each agent of an idle cluster: resident memory ("agent RSS (MiB)") and CPU ("agent CPU (% of
// a core)"); the value stands in Sample::seconds.
Result<std::vector<Sample>> idle_agents(const BenchOptions& options);
// tandem clone against a bare pg_basebackup --checkpoint=fast of the same data.
Result<std::vector<Sample>> clone_time(const BenchOptions& options, int size_mb);
// Rejoining the old primary after a failover: by pg_rewind, and by a fresh clone.
Result<std::vector<Sample>> rejoin_time(const BenchOptions& options, int size_mb);

}  // namespace tandem::bench
