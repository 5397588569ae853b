#include "api/health.h"

#include <fmt/format.h>

#include "common/units.h"

namespace tandem {
namespace {

using nlohmann::json;
using std::chrono::milliseconds;

bool agent_alive(const HealthInput& input) {
  return input.snapshot.cycles > 0 && input.now - input.snapshot.at < input.alive_for;
}

// Primary with a lease that has not run out: the only node a write may reach.
bool writable_leader(const HealthInput& input) {
  const AgentSnapshot& snapshot = input.snapshot;
  if (snapshot.node.state != PgState::kPrimary || !snapshot.view) return false;
  if (!snapshot.view->leader_is(input.self) || !snapshot.node.lease_renewed_at) return false;
  return input.now < *snapshot.node.lease_renewed_at + input.ttl;
}

std::optional<std::int64_t> lag_bytes(const HealthInput& input) {
  if (!input.snapshot.view) return std::nullopt;
  auto lags = replay_lag_bytes(*input.snapshot.view);
  auto found = lags.find(input.self);
  return found == lags.end() ? std::nullopt : std::optional(found->second);
}

std::optional<double> lag_seconds(const HealthInput& input) {
  const auto& view = input.snapshot.view;
  if (!view || !view->leader) return std::nullopt;
  auto leader = view->members.find(view->leader->name);
  if (leader == view->members.end() || !leader->second.primary) return std::nullopt;
  const auto& lags = leader->second.primary->replay_lag_s;
  auto found = lags.find(input.self);
  return found == lags.end() ? std::nullopt : std::optional(found->second);
}

bool within_limit(const HealthInput& input) {
  if (!input.lag_limit) return true;
  if (auto* bytes = std::get_if<std::int64_t>(&*input.lag_limit)) {
    auto lag = lag_bytes(input);
    return lag && *lag <= *bytes;
  }
  // The primary measures time lag about once a second; until it has, a standby that has
  // replayed everything it knows of is within any limit.
  auto seconds = lag_seconds(input);
  auto limit = std::get<milliseconds>(*input.lag_limit);
  if (!seconds) return lag_bytes(input) == 0;
  return *seconds * 1000.0 <= static_cast<double>(limit.count());
}

bool healthy_replica(const HealthInput& input) {
  const NodeObservation& node = input.snapshot.node;
  return agent_alive(input) && node.state == PgState::kStandby &&
         node.not_streaming_for == milliseconds(0) && within_limit(input);
}

json describe(const HealthInput& input) {
  const AgentSnapshot& snapshot = input.snapshot;
  const NodeObservation& node = snapshot.node;
  bool leader = snapshot.view && snapshot.view->leader_is(input.self);
  std::string role = node.state == PgState::kPrimary   ? "primary"
                     : node.state == PgState::kStandby ? "replica"
                                                       : "none";
  json body = {{"name", input.self},
               {"state", pg_state_name(node.state)},
               {"role", role},
               {"leader", leader},
               {"timeline", node.timeline},
               {"received_lsn", node.received_lsn ? json(node.received_lsn->str()) : json()},
               {"replayed_lsn", node.replayed_lsn ? json(node.replayed_lsn->str()) : json()},
               {"agent_alive", agent_alive(input)},
               {"store_reachable", snapshot.view.has_value()},
               {"last_decision", std::string(action_name(snapshot.decision.action))},
               {"reason", snapshot.decision.reason}};
  if (node.state == PgState::kStandby) {
    body["upstream"] = node.upstream;
    body["streaming"] = node.not_streaming_for == milliseconds(0);
    if (auto bytes = lag_bytes(input)) body["lag_bytes"] = *bytes;
    if (auto seconds = lag_seconds(input)) body["lag_seconds"] = *seconds;
  }
  return body;
}

}  // namespace

std::optional<HealthCheck> health_check_for(std::string_view path) {
  if (path == "/primary" || path == "/read-write" || path == "/leader" || path == "/master") {
    return HealthCheck::kPrimary;
  }
  if (path == "/replica") return HealthCheck::kReplica;
  if (path == "/read-only") return HealthCheck::kReadOnly;
  if (path == "/health") return HealthCheck::kHealth;
  if (path == "/liveness") return HealthCheck::kLiveness;
  if (path == "/readiness") return HealthCheck::kReadiness;
  return std::nullopt;
}

Result<LagLimit> parse_lag_limit(std::string_view text) {
  if (text.empty()) return fail(ErrorCode::kInvalidArgument, "lag is empty");
  bool has_time_unit = text.ends_with("ms") || text.ends_with("s") || text.ends_with("min") ||
                       text.ends_with("h") || text.ends_with("d");
  bool has_size_unit = text.ends_with("B");
  if (has_time_unit && !has_size_unit) {
    auto duration = parse_duration(text);
    if (!duration) {
      return fail(ErrorCode::kInvalidArgument,
                  fmt::format("lag '{}': {}", text, duration.error().message));
    }
    return LagLimit(*duration);
  }
  auto bytes = parse_size(text);
  if (!bytes || *bytes < 0) {
    return fail(
        ErrorCode::kInvalidArgument,
        fmt::format("lag '{}' is neither a size (16MB, 1048576) nor a duration (10s)", text));
  }
  return LagLimit(*bytes);
}

HealthReply check_health(HealthCheck check, const HealthInput& input) {
  bool ok = false;
  PgState state = input.snapshot.node.state;
  switch (check) {
    case HealthCheck::kPrimary:
      ok = agent_alive(input) && writable_leader(input);
      break;
    case HealthCheck::kReplica:
      ok = healthy_replica(input);
      break;
    case HealthCheck::kReadOnly:
      ok = (agent_alive(input) && writable_leader(input)) || healthy_replica(input);
      break;
    case HealthCheck::kHealth:
      ok = state == PgState::kPrimary || state == PgState::kStandby;
      break;
    case HealthCheck::kLiveness:
      ok = agent_alive(input);
      break;
    case HealthCheck::kReadiness:
      ok = agent_alive(input) &&
           (writable_leader(input) || (state == PgState::kStandby &&
                                       input.snapshot.node.not_streaming_for == milliseconds(0)));
      break;
  }
  return {ok ? 200 : 503, describe(input)};
}

}  // namespace tandem
