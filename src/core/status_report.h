// ClusterReport: what `tandem status` found on every node, and the warnings it deserves.
// Gathering is done by ops/; this file only holds the facts and judges them.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "core/cluster_config.h"
#include "core/cluster_view.h"
#include "core/lsn.h"
#include "core/timeline.h"

namespace tandem {

enum class NodeRole { kPrimary, kStandby, kStopped, kUnreachable };
std::string_view role_name(NodeRole role);

// One row of the primary's pg_stat_replication.
struct ReplicationRow {
  std::string application_name;
  std::string state;  // startup, catchup, streaming, backup, stopping
  std::optional<Lsn> sent, write, flush, replay;
  std::optional<double> write_lag_s, flush_lag_s, replay_lag_s;
  std::string sync_state;  // async, potential, sync, quorum
};

struct SlotRow {
  std::string name;
  bool active = false;
  std::optional<Lsn> restart_lsn;
  std::string wal_status;  // reserved, extended, unreserved, lost
  std::optional<std::int64_t> retained_bytes;
  std::optional<std::int64_t> safe_wal_size;  // bytes left before invalidation
  std::optional<WallTime> inactive_since;     // as remembered by tandem
};

struct NodeReport {
  std::string name;
  std::string endpoint;  // host:port
  NodeRole role = NodeRole::kUnreachable;
  std::string detail;  // "accepting writes", "streaming from node1", or why unreachable
  std::optional<TimelineId> timeline;
  std::optional<Lsn> wal_lsn;     // primary: current write position; standby: last received
  std::optional<Lsn> replay_lsn;  // standby only
  std::optional<WallTime> last_replay_at;         // standby: commit time of the last replayed xact
  std::optional<ReplicationRow> replication;      // the primary's view of this standby
  std::optional<std::int64_t> lag_bytes;          // primary's position minus this node's replay
  std::vector<std::string> pending_restart;       // settings whose new value waits for a restart
  std::vector<std::string> configuration_errors;  // lines of its configuration not applied
};

// What the agents say in the store, when the cluster has agents.
struct AgentsReport {
  std::string leader;  // the lease holder, "" when none
  bool paused = false;
  bool synchronous_mode = false;
  bool synchronous_strict = false;  // ha.synchronous_mode_strict
  int synchronous_node_count = 1;   // ha.synchronous_node_count
  // The `sync` record's standbys (nullopt: no record).
  std::optional<std::vector<std::string>> sync_standbys;
  // Quorum commit: each acknowledged commit is on this many of them (nullopt: on each).
  std::optional<int> sync_quorum;
  std::vector<std::string> candidates;    // who may take over, best first
  std::vector<std::string> not_eligible;  // why the others may not
  std::optional<LastBackup> last_backup;  // the repository's newest backup, as the store has it
};

struct ClusterReport {
  std::vector<NodeReport> nodes;
  std::optional<AgentsReport> agents;
  std::vector<SlotRow> slots;           // the primary's slots
  std::optional<ArchiverRow> archiver;  // the primary's, with backup: configured
  std::optional<std::string> primary;
  std::vector<std::string> warnings;
};

// Remembers since when each slot has been inactive: an active slot is forgotten, a newly
// inactive one starts at `now`, others keep their time. PostgreSQL 15 does not record it.
std::map<std::string, WallTime> track_inactive_slots(
    const std::map<std::string, WallTime>& previous, const std::vector<SlotRow>& slots,
    WallTime now);

// Warnings a person must see: no or several primaries, standbys not streaming, slots holding
// too much WAL, slots invalidated or abandoned, slots of no configured node.
std::vector<std::string> assess(const ClusterReport& report, const ClusterConfig& config,
                                WallTime now);

}  // namespace tandem
