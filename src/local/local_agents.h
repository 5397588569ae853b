// The agents of a local cluster. Each runs `tandem -c <config> agent --node <name>` detached,
// logs to <log_dir>/<name>.agent.log, and holds <socket_dir>/<name>.agent.lock (holding its
// pid) while it runs.
#pragma once

#include <sys/types.h>

#include <optional>
#include <string>

#include "ops/context.h"

namespace tandem {

// The pid of the node's running agent, if one runs. An error when the lock is held but names a
// process that is not the node's agent (`tandem agent --node NAME` holding the lock): the OS user
// can write that file, and root must not signal what it names.
Result<std::optional<pid_t>> find_agent(const ClusterConfig& config, const NodeConfig& node);
// find_agent without the error: nullopt when no agent is known to run.
std::optional<pid_t> running_agent(const ClusterConfig& config, const NodeConfig& node);

// The lock the node's agent holds for its whole life, taken for this process, its pid written in
// it: the descriptor to keep open. kConflict when another agent of the node holds it. The lock is
// tried again for up to `patience`: find_agent takes it shared for an instant to ask whether an
// agent runs, and an agent starting in that instant must not give up.
Result<int> lock_agent(const ClusterConfig& config, const NodeConfig& node, Clock& clock,
                       std::chrono::milliseconds patience = std::chrono::seconds(1));

// Sends `signal` to the node's agent, verified by find_agent, through a pidfd (no pid reuse).
Status kill_agent(const ClusterConfig& config, const NodeConfig& node, int signal);

// Starts the node's agent unless one runs.
Status start_agent(Context& context, const std::string& config_path, const NodeConfig& node);

// Sends `signal` to the node's agent and, unless it is SIGKILL, waits until it has exited.
Status signal_agent(Context& context, const NodeConfig& node, int signal);

// Waits until one node is primary and, unless `primary_only`, every other streams from it.
Status wait_cluster_ready(Context& context, std::chrono::milliseconds timeout,
                          bool primary_only = false);

}  // namespace tandem
