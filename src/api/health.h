// The health checks load balancers call, as pure functions of the agent's last snapshot:
// which node may take writes (/primary), which may serve reads (/replica, /read-only), and
// whether PostgreSQL and the agent are alive. Paths and status codes are Patroni's, so an
// existing HAProxy configuration works unchanged: 200 yes, 503 no.
#pragma once

#include <chrono>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <variant>

#include "agent/agent_board.h"
#include "common/result.h"

namespace tandem {

enum class HealthCheck {
  kPrimary,    // /primary, /read-write, /leader, /master
  kReplica,    // /replica
  kReadOnly,   // /read-only: a healthy replica or the primary
  kHealth,     // /health: PostgreSQL is up
  kLiveness,   // /liveness: the agent cycles
  kReadiness,  // /readiness: the node serves its role
};

// The path of a check, or nullopt for a path that is none.
std::optional<HealthCheck> health_check_for(std::string_view path);

// ?lag=: the most a replica may be behind — bytes ("16MB", "1048576") or a duration ("10s").
using LagLimit = std::variant<std::int64_t, std::chrono::milliseconds>;
Result<LagLimit> parse_lag_limit(std::string_view text);

struct HealthInput {
  std::string self;
  const AgentSnapshot& snapshot;
  std::chrono::milliseconds ttl;  // the lease's lifetime
  // How stale the agent's snapshot may be (agent_alive_for, core/observe_rest.h): a lease, and
  // the longest rest where an agent at rest sleeps that long between cycles.
  std::chrono::milliseconds alive_for;
  std::chrono::steady_clock::time_point now;
  std::optional<LagLimit> lag_limit;
};

struct HealthReply {
  int status = 503;
  nlohmann::json body;  // what the node is: name, state, role, timeline, positions, lag
};

HealthReply check_health(HealthCheck check, const HealthInput& input);

}  // namespace tandem
