#include "agent/sync_manager.h"

#include "pg/admin_connection.h"
#include "pg/node_files.h"
#include "pg/replication_queries.h"
#include "pg/server_files.h"

namespace tandem {

void SyncManager::reset() {
  connection_.reset();
  configured_.reset();
  configured_any_ = 0;
  memory_ = {};
}

// A failure anywhere leaves what PostgreSQL waits for unknown: tandem.conf may name a list the
// server has not taken, which any later reload would apply behind the plan's back (review: a
// reload that failed, then an operator's). The next cycle settles it again from the server.
Status SyncManager::configure(const SyncNames& standbys, int any) {
  configured_.reset();
  if (auto ok = write_node_files(context_.config, context_.os_user, self_, nullptr,
                                 ServerRole::kPrimary, standbys, any);
      !ok) {
    return ok;
  }
  if (auto ok = context_.controller.reload(self_); !ok) return ok;
  configured_ = standbys;
  configured_any_ = any;
  return {};
}

Result<std::string> SyncManager::update(const ClusterView& view) {
  if (!connection_) {
    auto opened = connect_local_admin(context_.config, self_);
    if (!opened) return std::unexpected(opened.error());
    connection_.emplace(std::move(*opened));
  }
  auto replication = read_synchronous_replication(*connection_);
  if (!replication) {
    connection_.reset();  // the server restarted: reconnect next cycle
    return std::unexpected(replication.error());
  }
  // What PostgreSQL waits for, as the server says, written back to tandem.conf and reloaded: an
  // agent that died between writing the file and reloading left a list there the server never
  // took.
  if (!configured_) {
    auto quorum = parse_quorum_names(replication->standby_names);
    Status ok = quorum ? configure(quorum->second, quorum->first)
                       : configure(parse_standby_names(replication->standby_names));
    if (!ok) return std::unexpected(ok.error());
  }
  SyncObservation seen{.configured = *configured_,
                       .current = replication->current_wal,
                       .commits_waiting = replication->commits_waiting,
                       .strict = context_.config.ha.synchronous_mode_strict,
                       .count = context_.config.ha.synchronous_node_count,
                       .quorum = context_.config.ha.synchronous_quorum,
                       .configured_any = configured_any_,
                       .member_frozen = view.a_member_promised_a_freeze()};
  read_sync_record(seen, view.sync_standbys, view.sync_leader, self_.name, view.sync_quorum);
  for (const StreamingStandby& standby : replication->standbys) {
    const NodeConfig* node = context_.config.find_node(standby.application_name);
    if (node == nullptr || node->nofailover || !standby.flush) continue;
    // "quorum" counts under quorum commit alone: the priority form's waits for each it names,
    // and an ANY list left in place (a reload not taken) waits for fewer (review).
    bool synchronous = standby.synchronous || (seen.quorum && standby.quorum);
    seen.streaming.push_back({node->name, *standby.flush, synchronous});
  }
  SyncStep step = plan_sync(seen, memory_, context_.clock.steady_now());
  Revision revision = view.sync_revision;
  auto write = [&](const SyncNames& standbys, int quorum) -> Status {
    auto written = write_sync_if_unchanged(store_, layout_, revision, self_.name, standbys, quorum);
    if (!written) return std::unexpected(written.error());
    revision = *written;
    return {};
  };
  if (step.narrow) {
    if (auto ok = write(*step.narrow, step.narrow_quorum); !ok) return std::unexpected(ok.error());
  }
  if (step.configure) {
    if (auto ok = configure(*step.configure, step.configure_any); !ok) {
      return std::unexpected(ok.error());
    }
  }
  if (step.name) {
    if (auto ok = write(*step.name, step.name_quorum); !ok) return std::unexpected(ok.error());
  }
  memory_ = std::move(step.memory);
  return step.why;
}

}  // namespace tandem
