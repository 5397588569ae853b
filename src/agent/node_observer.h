// What the agent sees of its own node each cycle: whether there is data, whether its
// postmaster runs, and (over one kept connection) its role, timeline, WAL positions and upstream.
#pragma once

#include <optional>

#include "agent/postgres_process.h"
#include "common/clock.h"
#include "core/cluster_view.h"
#include "pg/connection.h"
#include "pg/observe_queries.h"

namespace tandem {

class NodeObserver {
 public:
  NodeObserver(const ClusterConfig& config, const NodeConfig& self, PostgresProcess& process,
               Clock& clock)
      : config_(config), self_(self), process_(process), clock_(clock) {}

  // Everything but lease_renewed_at, which only the agent knows. `at_rest`: the server's last
  // answer is taken again if the same postmaster runs, standby.signal is as it said, and the
  // WAL file at the position it gave is untouched since (core/observe_rest.h).
  NodeObservation observe(bool at_rest);

  // A primary's slots and its standbys' replay lag, over the same connection; nullopt when
  // the query fails.
  std::optional<PrimaryDetails> primary_details();

  // The session the observations come through, while it stands (null otherwise): for a step
  // that should not wait for a connection of its own (a promotion). Used on the agent's thread
  // alone, as the observations are.
  Connection* session() { return connection_ && connection_->usable() ? &*connection_ : nullptr; }

  // The server was told to read its configuration files again, or is newly connected to: what
  // it waits to restart for is read at once, then every half second for the next seconds (a
  // reload reaches its processes a moment later).
  void configuration_reloaded();

 private:
  // The server's answer, with what shows it still stands: the postmaster that gave it and the
  // WAL file where its position is (inode, size, modification time), as found right after.
  struct WalStamp {
    std::uint64_t inode = 0;
    std::int64_t size = 0;
    std::int64_t modified_ns = 0;
    bool operator==(const WalStamp&) const = default;
  };
  struct Answer {
    ServerObservation server;
    pid_t postmaster = 0;
    std::chrono::steady_clock::time_point at{};
    bool repeated = false;
    std::optional<WalStamp> wal;
    bool quiet = false;    // may stand at rest (see query)
    std::string upstream;  // the node its primary_conninfo names
  };
  void query(NodeObservation& node);
  bool answer_stands(const NodeObservation& node) const;
  std::optional<WalStamp> wal_stamp(const ServerObservation& server) const;
  void take_answer(const Answer& answer, NodeObservation& node, bool fresh);
  // pg_settings.pending_restart and pg_file_settings' errors, read every 10 s (more often
  // after a reload or a new connection), the last answer copied into each observation.
  void read_configuration_state(NodeObservation& node);
  // The node a primary_conninfo points at, by host and port ("" when none is).
  std::string node_at(const std::string& conninfo) const;

  const ClusterConfig& config_;
  const NodeConfig& self_;
  PostgresProcess& process_;
  Clock& clock_;
  std::optional<Connection> connection_;
  std::optional<Answer> answer_;
  std::optional<std::chrono::steady_clock::time_point> not_streaming_since_;
  // Since the first answer that showed no primary_conninfo and no WAL receiver (a freeze).
  std::optional<std::chrono::steady_clock::time_point> receiver_stopped_since_;
  // The WAL segment a starting server's recovery waits for, and since when.
  std::string waiting_segment_;
  std::string waiting_upstream_;
  std::chrono::steady_clock::time_point waiting_since_{};
  std::vector<std::string> pending_restart_;
  std::vector<std::string> configuration_errors_;
  std::chrono::steady_clock::time_point configuration_due_{};
  std::chrono::steady_clock::time_point look_often_until_{};
};

}  // namespace tandem
