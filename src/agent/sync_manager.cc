#include "agent/sync_manager.h"

#include <fmt/format.h>

#include <map>

#include "pg/admin_connection.h"
#include "pg/node_files.h"
#include "pg/replication_queries.h"

namespace tandem {
namespace {

struct StandbyProgress {
  Lsn flush;
  bool synchronous = false;
};

}  // namespace

void SyncManager::reset() {
  connection_.reset();
  configured_.reset();
  pending_since_.reset();
}

Status SyncManager::configure(const std::string& standby) {
  if (auto ok = write_node_files(context_.config, context_.os_user, self_, nullptr,
                                 ServerRole::kPrimary, standby);
      !ok) {
    return ok;
  }
  if (auto ok = context_.controller.reload(self_); !ok) return ok;
  configured_ = standby;
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
  Lsn current = replication->current_wal;
  if (!configured_) {
    std::string names = replication->standby_names;
    std::erase(names, '"');
    configured_ = names;
  }
  std::map<std::string, StandbyProgress> streaming;
  for (const StreamingStandby& standby : replication->standbys) {
    const NodeConfig* node = context_.config.find_node(standby.application_name);
    if (node == nullptr || node->nofailover || !standby.flush) continue;
    streaming[node->name] = {*standby.flush, standby.synchronous};
  }
  std::string published = view.sync_standby.value_or("");
  Revision revision = view.sync_revision;
  auto write = [&](const std::string& standby) -> Status {
    auto written = write_sync_if_unchanged(store_, layout_, revision, self_.name, standby);
    if (!written) return std::unexpected(written.error());
    revision = *written;
    return {};
  };
  // The store may name only a standby that has every acknowledged commit: PostgreSQL waits for
  // the configured one alone, so a named standby that is not the configured one is unnamed
  // first (found by the simulation: a crashed synchronous standby, replaced in PostgreSQL but
  // still named in the store, came back and took over without the commits acknowledged since).
  auto unname = [&]() -> Status {
    if (published.empty()) return {};
    if (auto ok = write(""); !ok) return ok;
    published.clear();
    return {};
  };
  auto configured = streaming.find(*configured_);
  if (configured != streaming.end()) {
    if (published == *configured_) return std::string();
    if (auto ok = unname(); !ok) return std::unexpected(ok.error());
    if (!pending_since_) pending_since_ = current;
    if (!configured->second.synchronous || configured->second.flush < *pending_since_) {
      return std::string();
    }
    if (auto ok = write(*configured_); !ok) return std::unexpected(ok.error());
    pending_since_.reset();
    return fmt::format("{} is the synchronous standby: it alone may take over", *configured_);
  }
  // The configured standby is gone (or none was): first the store, then PostgreSQL; from now
  // on no standby may take over in this primary's place until the next one has caught up.
  if (auto ok = unname(); !ok) return std::unexpected(ok.error());
  // Take the most advanced streaming one.
  const std::string* best = nullptr;
  for (const auto& [name, progress] : streaming) {
    if (best == nullptr || progress.flush > streaming[*best].flush) best = &name;
  }
  if (best != nullptr) {
    if (auto ok = configure(*best); !ok) return std::unexpected(ok.error());
    pending_since_.reset();
    return fmt::format(
        "made {} synchronous; it is named in the store once it has every "
        "acknowledged commit",
        *best);
  }
  if (!configured_->empty()) {
    if (auto ok = configure(""); !ok) return std::unexpected(ok.error());
    return std::string(
        "no standby streams: writes go on without a synchronous standby, and "
        "no standby may take over without --allow-data-loss");
  }
  return std::string();
}

}  // namespace tandem
