#include "api/metrics.h"

#include <fmt/format.h>

namespace tandem {
namespace {

// Label values escape backslash, double quote and newline.
std::string escape_label(std::string_view value) {
  std::string escaped;
  for (char c : value) {
    if (c == '\\' || c == '"') escaped += '\\';
    if (c == '\n') {
      escaped += "\\n";
      continue;
    }
    escaped += c;
  }
  return escaped;
}

class Exposition {
 public:
  void family(std::string_view name, std::string_view type, std::string_view help) {
    text_ += fmt::format("# HELP {} {}\n# TYPE {} {}\n", name, help, name, type);
  }
  void sample(std::string_view name, double value,
              std::initializer_list<std::pair<std::string_view, std::string_view>> labels = {}) {
    text_ += name;
    if (labels.size() > 0) {
      text_ += '{';
      bool first = true;
      for (const auto& [key, label] : labels) {
        text_ += fmt::format("{}{}=\"{}\"", first ? "" : ",", key, escape_label(label));
        first = false;
      }
      text_ += '}';
    }
    text_ += fmt::format(" {}\n", value);
  }
  std::string take() { return std::move(text_); }

 private:
  std::string text_;
};

// This node's PostgreSQL: its state, role, timeline and positions.
void node_metrics(const MetricsInput& input, Exposition& out) {
  const AgentSnapshot& snapshot = input.snapshot;
  const NodeObservation& node = snapshot.node;
  out.family("tandem_postgres_state", "gauge",
             "1 for the state PostgreSQL of this node is in, 0 for the others.");
  for (PgState state : {PgState::kNoData, PgState::kStopped, PgState::kStarting, PgState::kPrimary,
                        PgState::kStandby}) {
    out.sample("tandem_postgres_state", node.state == state ? 1 : 0,
               {{"state", pg_state_name(state)}});
  }
  bool leader = snapshot.view && snapshot.view->leader_is(input.self);
  out.family("tandem_leader", "gauge", "1 when this node holds the leader lease.");
  out.sample("tandem_leader", leader ? 1 : 0);
  out.family("tandem_timeline", "gauge", "The timeline this node's PostgreSQL is on.");
  out.sample("tandem_timeline", node.timeline);
  out.family("tandem_wal_position_bytes", "gauge",
             "WAL position as a byte offset: received (a primary: written) and replayed.");
  if (node.received_lsn) {
    out.sample("tandem_wal_position_bytes", static_cast<double>(node.received_lsn->value()),
               {{"kind", "received"}});
  }
  if (node.replayed_lsn) {
    out.sample("tandem_wal_position_bytes", static_cast<double>(node.replayed_lsn->value()),
               {{"kind", "replayed"}});
  }
}

// The leader's published details, if the view has them.
const PrimaryDetails* leader_details(const std::optional<ClusterView>& view) {
  if (!view || !view->leader) return nullptr;
  auto found = view->members.find(view->leader->name);
  if (found == view->members.end() || !found->second.primary) return nullptr;
  return &*found->second.primary;
}

// The primary's WAL archiver (backup:), as pg_stat_archiver counts: an archive_command that
// fails is WAL piling up in pg_wal, to be alerted on.
void archive_metrics(const ArchiverRow* archiver, Exposition& out) {
  auto seconds = [](WallTime at) {
    return std::chrono::duration<double>(at.time_since_epoch()).count();
  };
  out.family("tandem_archive_archived_total", "counter",
             "WAL segments the primary archived (pg_stat_archiver, since its statistics reset).");
  if (archiver != nullptr) {
    out.sample("tandem_archive_archived_total", static_cast<double>(archiver->archived_count));
  }
  out.family("tandem_archive_failed_total", "counter",
             "Failed attempts of the primary's archive_command.");
  if (archiver != nullptr) {
    out.sample("tandem_archive_failed_total", static_cast<double>(archiver->failed_count));
  }
  out.family("tandem_archive_failing", "gauge",
             "1 while the primary's last archive attempt failed (none succeeded since).");
  if (archiver != nullptr) out.sample("tandem_archive_failing", archiver->failing() ? 1 : 0);
  out.family("tandem_archive_last_archived_timestamp_seconds", "gauge",
             "When the primary last archived a segment (Unix time): its age is time() - this.");
  if (archiver != nullptr && archiver->last_archived_at) {
    out.sample("tandem_archive_last_archived_timestamp_seconds",
               seconds(*archiver->last_archived_at));
  }
}

// The repository's newest backup (backup:), as the leader's agent last read it: alert on its age.
void backup_metrics(const AgentSnapshot& snapshot, Exposition& out) {
  const std::optional<LastBackup>* last = snapshot.view ? &snapshot.view->last_backup : nullptr;
  bool any = last != nullptr && *last && (*last)->stopped_s > 0;
  out.family("tandem_backup_last_completion_timestamp_seconds", "gauge",
             "When the repository's newest backup ended (Unix time).");
  if (any) {
    out.sample("tandem_backup_last_completion_timestamp_seconds",
               static_cast<double>((*last)->stopped_s));
  }
  out.family("tandem_backup_last_age_seconds", "gauge",
             "How old the repository's newest backup is, as of this agent's last cycle.");
  if (any) {
    out.sample("tandem_backup_last_age_seconds",
               static_cast<double>(
                   std::max<std::int64_t>(0, snapshot.node.wall_ms / 1000 - (*last)->stopped_s)));
  }
}

// The standbys' lag and the primary's slots.
void replication_metrics(const AgentSnapshot& snapshot, Exposition& out) {
  out.family("tandem_replication_lag_bytes", "gauge",
             "How far each standby's replay is behind the primary's WAL position.");
  if (snapshot.view) {
    for (const auto& [member, lag] : replay_lag_bytes(*snapshot.view)) {
      out.sample("tandem_replication_lag_bytes", static_cast<double>(lag), {{"member", member}});
    }
  }
  const PrimaryDetails* primary = leader_details(snapshot.view);
  out.family("tandem_replication_lag_seconds", "gauge",
             "Each standby's replay lag as the primary measures it (pg_stat_replication).");
  if (primary != nullptr) {
    for (const auto& [member, seconds] : primary->replay_lag_s) {
      out.sample("tandem_replication_lag_seconds", seconds, {{"member", member}});
    }
  }
  out.family("tandem_slot_retained_bytes", "gauge",
             "WAL each replication slot of the primary holds back.");
  if (primary != nullptr) {
    for (const PublishedSlot& slot : primary->slots) {
      if (!slot.retained_bytes) continue;
      out.sample("tandem_slot_retained_bytes", static_cast<double>(*slot.retained_bytes),
                 {{"slot", slot.name}, {"wal_status", slot.wal_status}});
    }
  }
  out.family("tandem_slot_active", "gauge", "1 when a standby streams through the slot.");
  if (primary != nullptr) {
    for (const PublishedSlot& slot : primary->slots) {
      out.sample("tandem_slot_active", slot.active ? 1 : 0, {{"slot", slot.name}});
    }
  }
  out.family("tandem_synchronous_standbys", "gauge",
             "Synchronous mode: the standbys the sync record names, each with every "
             "acknowledged commit (below ha.synchronous_node_count while one catches up).");
  out.sample("tandem_synchronous_standbys",
             snapshot.view && snapshot.view->sync_standbys
                 ? static_cast<double>(snapshot.view->sync_standbys->size())
                 : 0.0);
  archive_metrics(primary != nullptr && primary->archiver ? &*primary->archiver : nullptr, out);
  backup_metrics(snapshot, out);
}

// The agent: failovers, its lease, its last decision, its cycles, what fails again and again.
void agent_metrics(const MetricsInput& input, Exposition& out) {
  const AgentSnapshot& snapshot = input.snapshot;
  const NodeObservation& node = snapshot.node;
  if (input.history) {
    std::size_t changes = 0;
    for (const HistoryEntry& entry : *input.history) changes += entry.from.empty() ? 0 : 1;
    out.family("tandem_failovers_total", "counter",
               "Leader changes recorded in the cluster's history (failovers and switchovers).");
    out.sample("tandem_failovers_total", static_cast<double>(changes));
  }
  out.family("tandem_lease_remaining_seconds", "gauge",
             "The leader: how long its lease lasts without a renewal; 0 elsewhere.");
  out.sample("tandem_lease_remaining_seconds",
             snapshot.lease_remaining ? snapshot.lease_remaining->count() / 1000.0 : 0.0);
  out.family("tandem_lease_renewal_seconds", "gauge",
             "The leader: how long the store took to confirm its last lease renewal; 0 "
             "elsewhere. Near a third of ha.renew_deadline, the agent warns.");
  out.sample("tandem_lease_renewal_seconds",
             snapshot.lease_round_trip ? snapshot.lease_round_trip->count() / 1000.0 : 0.0);
  out.family("tandem_last_decision_info", "gauge",
             "The action the agent's last cycle chose (value 1), with whether it failed.");
  out.sample("tandem_last_decision_info", 1,
             {{"action", action_name(snapshot.decision.action)},
              {"failed", snapshot.decision_failed ? "true" : "false"}});
  out.family("tandem_agent_cycles_total", "counter", "Cycles the agent has run.");
  out.sample("tandem_agent_cycles_total", static_cast<double>(snapshot.cycles));
  out.family("tandem_store_reachable", "gauge", "1 when the last cycle could read the store.");
  out.sample("tandem_store_reachable", snapshot.view ? 1 : 0);
  out.family("tandem_paused", "gauge", "1 while automatic actions are paused.");
  out.sample("tandem_paused", snapshot.view && snapshot.view->paused ? 1 : 0);
  // What fails again and again, before it is escalated (a rejoin to a fresh copy, a restart in
  // place to a release of the lease): an alert can fire before the escalation does.
  out.family("tandem_failures_in_a_row", "gauge",
             "Attempts that failed in a row, by step: rejoin, or start (a restart in place as "
             "the leader that did not lead to ten seconds as a primary).");
  out.sample("tandem_failures_in_a_row", node.rejoin_failures, {{"step", "rejoin"}});
  out.sample("tandem_failures_in_a_row", node.start_failures, {{"step", "start"}});
  out.family("tandem_failing_seconds", "gauge",
             "How long the attempts counted in tandem_failures_in_a_row have been failing.");
  out.sample("tandem_failing_seconds", node.rejoin_failing_for.count() / 1000.0,
             {{"step", "rejoin"}});
  out.sample("tandem_failing_seconds", node.start_failing_for.count() / 1000.0,
             {{"step", "start"}});
}

}  // namespace

std::string render_metrics(const MetricsInput& input) {
  Exposition out;
  node_metrics(input, out);
  replication_metrics(input.snapshot, out);
  agent_metrics(input, out);
  return out.take();
}

}  // namespace tandem
