// The benchmark scenarios. Each trial builds a fresh local cluster, measures one thing the
// way shared issue 5 defines it, and tears the cluster down.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "bench/write_probe.h"
#include "common/result.h"
#include "core/cluster_config.h"

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
  // Applied to every cluster's configuration after the scenario's own settings (the comparison
  // with Patroni runs tandem on an etcd: its endpoints and a cluster name of its own).
  std::function<void(ClusterConfig&)> adjust;
  std::chrono::milliseconds idle_for{std::chrono::seconds(60)};
  std::vector<int> sizes_mb = {100, 1024};
};

// Host crash (agent and postmaster killed together at a random point of the agent's cycle):
// the outage, lost writes, and how soon the old primary streams once its agent starts again.
// `standbys` other than 2 names its samples "..., N nodes" (issue 19.5: 1 primary + 8 standbys).
Result<std::vector<Sample>> host_crash(const BenchOptions& options, bool synchronous,
                                       FailoverTimeline* timeline, int standbys = 2);
Result<std::vector<Sample>> postmaster_crash(const BenchOptions& options);
Result<std::vector<Sample>> switchover(const BenchOptions& options);
// Each agent of an idle cluster: resident memory ("agent RSS (MiB)") and CPU ("agent CPU (% of
// a core)"); the value stands in Sample::seconds.
Result<std::vector<Sample>> idle_agents(const BenchOptions& options, int standbys = 2);
// Measures shared with the comparison runner (bench/compare.cc):
// The outage as issue 5 defines it: the first acknowledged write after the first failed attempt
// that follows `since` (nullopt while there is none).
std::optional<WriteAttempt> resumed_after(const WriteProbe& probe,
                                          std::chrono::system_clock::time_point since);
// The write gap of a switchover: the longest time between two acknowledged writes from 100 ms
// before it was asked on.
double write_gap(const WriteProbe& probe, std::chrono::system_clock::time_point asked_at);
// Waits up to `timeout` for a write sent at or after `since` to be acknowledged.
bool wait_for_write_after(const WriteProbe& probe, std::chrono::system_clock::time_point since,
                          std::chrono::milliseconds timeout);
// A daemon and the children it forked running the same program (tandem's watchdog).
std::vector<pid_t> with_helpers(pid_t pid);
// Whether every one of them still runs (no zombie): an idle figure of a dead one is no figure.
bool all_alive(const std::vector<pid_t>& pids);
// The CPU time of processes so far (clock ticks), and their idle cost since `ticks_before`,
// `seconds` ago: "agent CPU, idle (% of a core)", RSS, PSS and private memory (MiB), summed
// (RSS counts shared pages once per process: PSS is the honest sum).
long cpu_ticks(const std::vector<pid_t>& pids);
std::vector<Sample> idle_cost(const std::vector<pid_t>& pids, long ticks_before, double seconds);
// tandem clone against the same by hand: pg_basebackup --checkpoint=fast -R with a slot, the
// copy started, until the primary reports it streaming (and the copy's time alone).
Result<std::vector<Sample>> clone_time(const BenchOptions& options, int size_mb);
// Rejoining the old primary after a failover: by pg_rewind, and by a fresh clone.
Result<std::vector<Sample>> rejoin_time(const BenchOptions& options, int size_mb);
// A full backup from the standby (tandem backup against the pgbackrest command it runs, typed
// by hand), and a restore started and promoted at the backup's end (tandem restore against
// pgbackrest restore, then pg_ctl start and a wait for the promotion), each twice in turn.
Result<std::vector<Sample>> backup_restore_time(const BenchOptions& options, int size_mb);
// A standby away until its slot was lost (over 32 MB of WAL written meanwhile), brought back by
// `tandem rejoin` replaying the archive, against a reclone of the same node; until each
// streams.
Result<std::vector<Sample>> archive_catch_up_time(const BenchOptions& options, int size_mb);

}  // namespace tandem::bench
