#include "api/cluster_json.h"

#include <fmt/format.h>

#include "ops/status_json.h"

namespace tandem {
namespace {

using nlohmann::json;

json lsn_or_null(const std::optional<Lsn>& lsn) { return lsn ? json(lsn->str()) : json(); }

std::string role_of(const ClusterView& view, const MemberRecord& member) {
  if (view.leader_is(member.name)) return "leader";
  if (member.state != PgState::kStandby) return "none";
  if (view.sync_names(member.name)) return "sync_standby";
  return "replica";
}

// The `sync` record's standbys; with quorum commit, how many of them each acknowledged commit is
// on (null: on each).
void add_sync_record(json& document, const ClusterView& view) {
  if (!view.sync_names_any()) return;
  document["sync_standby"] = view.sync_standbys->front();
  document["sync_standbys"] = *view.sync_standbys;
  if (view.sync_quorum) document["sync_quorum"] = *view.sync_quorum;
}

}  // namespace

json cluster_json(const ClusterConfig& config, const std::optional<ClusterView>& view,
                  std::int64_t now_ms) {
  json document = {{"cluster", config.name},   {"store_reachable", view.has_value()},
                   {"leader", json()},         {"paused", false},
                   {"sync_standby", json()},   {"sync_standbys", json::array()},
                   {"sync_quorum", json()},    {"timeline", json()},
                   {"members", json::array()}, {"slots", json::array()}};
  std::map<std::string, std::int64_t> lag_bytes;
  const PrimaryDetails* primary = nullptr;
  if (view) {
    document["paused"] = view->paused;
    add_sync_record(document, *view);
    if (view->leader) {
      document["leader"] = view->leader->name;
      auto leader = view->members.find(view->leader->name);
      if (leader != view->members.end()) {
        document["timeline"] = leader->second.timeline;
        if (leader->second.primary) primary = &*leader->second.primary;
      }
    }
    lag_bytes = replay_lag_bytes(*view);
  }
  for (const NodeConfig& node : config.nodes) {
    json entry = {{"name", node.name},
                  {"host", node.host},
                  {"port", node.port},
                  {"api_url", node.api_port != 0 ? json(api_url(config, node)) : json()},
                  {"nofailover", node.nofailover},
                  {"role", "none"},
                  {"state", "unknown"}};
    const MemberRecord* member = nullptr;
    if (view) {
      auto found = view->members.find(node.name);
      if (found != view->members.end()) member = &found->second;
    }
    if (member != nullptr) {
      entry["role"] = role_of(*view, *member);
      entry["state"] = pg_state_name(member->state);
      entry["timeline"] = member->timeline;
      entry["received_lsn"] = lsn_or_null(member->received_lsn);
      entry["replayed_lsn"] = lsn_or_null(member->replayed_lsn);
      entry["upstream"] = member->upstream;
      entry["pending_restart"] = member->pending_restart;
      if (auto lag = lag_bytes.find(node.name); lag != lag_bytes.end()) {
        entry["lag_bytes"] = lag->second;
      }
      if (primary != nullptr) {
        if (auto lag = primary->replay_lag_s.find(node.name); lag != primary->replay_lag_s.end()) {
          entry["lag_seconds"] = lag->second;
        }
      }
    }
    document["members"].push_back(std::move(entry));
  }
  if (primary != nullptr && primary->archiver) {
    document["archiver"] = archiver_to_json(*primary->archiver);  // as status --json says it
  }
  if (view && view->settings) {
    // Names, not values: /cluster is open to read, and a value may be a secret.
    std::vector<std::string> names;
    for (const auto& [name, value] : view->settings->values) names.push_back(name);
    document["settings"] = {{"revision", view->settings->revision}, {"names", names}};
  }
  if (view && view->last_backup) {
    document["last_backup"] = last_backup_to_json(*view->last_backup, now_ms);
  }
  if (primary != nullptr) {
    for (const PublishedSlot& slot : primary->slots) {
      document["slots"].push_back(
          {{"name", slot.name},
           {"active", slot.active},
           {"wal_status", slot.wal_status},
           {"retained_bytes", slot.retained_bytes ? json(*slot.retained_bytes) : json()}});
    }
  }
  return document;
}

json history_json(const std::vector<HistoryEntry>& history) {
  json entries = json::array();
  for (const HistoryEntry& entry : history) {
    entries.push_back({{"time_ms", entry.time_ms},
                       {"from", entry.from},
                       {"to", entry.to},
                       {"timeline", entry.timeline},
                       {"switch_lsn", lsn_or_null(entry.switch_lsn)},
                       {"lost_bytes", entry.lost_bytes ? json(*entry.lost_bytes) : json()},
                       {"reason", entry.reason}});
  }
  return entries;
}

json lag_json(const std::deque<LagSample>& samples) {
  json points = json::array();
  for (const LagSample& sample : samples) {
    points.push_back({{"t", sample.time_ms}, {"lag", sample.lag_bytes}});
  }
  return {{"window_s", std::chrono::seconds(AgentBoard::kLagWindow).count()}, {"samples", points}};
}

}  // namespace tandem
