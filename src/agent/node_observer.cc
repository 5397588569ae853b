#include "agent/node_observer.h"

#include <filesystem>

#include "ops/servers.h"
#include "pg/server_files.h"

namespace tandem {
namespace {

constexpr char kObserve[] =
    "SELECT pg_is_in_recovery()::text AS in_recovery, "
    // What a standby holds: a WAL receiver that (re)starts reports the start of the segment it
    // asks for, which may be far below what the standby has replayed; one that never streamed
    // (a former primary started read-only) reports nothing. Elections compare this.
    "CASE WHEN pg_is_in_recovery() THEN "
    "       greatest(pg_last_wal_receive_lsn(), pg_last_wal_replay_lsn())::text "
    "     ELSE pg_current_wal_lsn()::text END AS received, "
    "pg_last_wal_replay_lsn()::text AS replayed, "
    "(SELECT status FROM pg_stat_wal_receiver) AS receiver, "
    "current_setting('primary_conninfo') AS conninfo, "
    // A standby's timeline: the newest it knows of. pg_control lags behind replay and the WAL
    // receiver's row vanishes with its primary, but a switch leaves the history file in pg_wal.
    "CASE WHEN pg_is_in_recovery() THEN greatest("
    "       (SELECT received_tli FROM pg_stat_wal_receiver), "
    "       (SELECT timeline_id FROM pg_control_checkpoint()), "
    "       (SELECT max(('x' || substr(name, 1, 8))::bit(32)::int) FROM pg_ls_waldir() "
    "        WHERE name ~ '^[0-9A-F]{8}[.]history$')) "
    "     ELSE ('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::int "
    "END AS timeline";

constexpr char kPrimaryDetails[] =
    "SELECT 'slot' AS kind, slot_name::text AS name, active::text AS active, wal_status, "
    "       (pg_current_wal_lsn() - restart_lsn)::bigint::text AS value "
    "FROM pg_replication_slots WHERE slot_type = 'physical' "
    "UNION ALL "
    "SELECT 'lag', application_name, NULL, NULL, "
    "       coalesce(extract(epoch FROM replay_lag), 0)::text "
    "FROM pg_stat_replication ORDER BY 1, 2";

std::optional<Lsn> parse_lsn(const std::optional<std::string>& text) {
  if (!text) return std::nullopt;
  auto lsn = Lsn::parse(*text);
  return lsn ? std::optional(*lsn) : std::nullopt;
}

}  // namespace

std::string NodeObserver::node_at(const std::string& conninfo) const {
  auto parameters = parse_conninfo(conninfo);
  if (!parameters) return "";
  // Nodes on several machines may all use one port: the host tells them apart.
  auto host = parameters->find("host");
  auto port = parameters->find("port");
  if (host == parameters->end() || port == parameters->end()) return "";
  for (const NodeConfig& node : config_.nodes) {
    if (node.name != self_.name && node.host == host->second &&
        std::to_string(node.port) == port->second) {
      return node.name;
    }
  }
  return "";
}

void NodeObserver::query(NodeObservation& node) {
  if (!connection_) {
    auto opened = Connection::open(local_admin_conninfo(config_, self_));
    if (!opened) return;
    connection_.emplace(std::move(*opened));
  }
  auto rows = connection_->query(kObserve);
  if (!rows) {
    connection_.reset();  // the server restarted or went away: reconnect next cycle
    return;
  }
  bool standby = rows->text(0, "in_recovery") == "true";
  node.state = standby ? PgState::kStandby : PgState::kPrimary;
  node.received_lsn = parse_lsn(rows->get(0, "received"));
  node.replayed_lsn = parse_lsn(rows->get(0, "replayed"));
  if (auto timeline = rows->get(0, "timeline")) node.timeline = std::stoul(*timeline);
  if (standby) {
    node.upstream = node_at(rows->text(0, "conninfo"));
    bool streaming = rows->text(0, "receiver") == "streaming";
    auto now = clock_.steady_now();
    if (streaming) {
      not_streaming_since_.reset();
    } else if (!not_streaming_since_) {
      not_streaming_since_ = now;
    }
    if (not_streaming_since_) {
      node.not_streaming_for =
          std::chrono::duration_cast<std::chrono::milliseconds>(now - *not_streaming_since_);
    }
  }
}

std::optional<PrimaryDetails> NodeObserver::primary_details() {
  if (!connection_) return std::nullopt;
  auto rows = connection_->query(kPrimaryDetails);
  if (!rows) return std::nullopt;
  PrimaryDetails details;
  for (std::size_t row = 0; row < rows->size(); ++row) {
    const auto& value = rows->get(row, "value");
    if (rows->text(row, "kind") == "slot") {
      details.slots.push_back(
          {.name = rows->text(row, "name"),
           .active = rows->text(row, "active") == "true",
           .wal_status = rows->text(row, "wal_status"),
           .retained_bytes = value ? std::optional(std::stoll(*value)) : std::nullopt});
    } else if (value) {
      details.replay_lag_s[rows->text(row, "name")] = std::stod(*value);
    }
  }
  return details;
}

NodeObservation NodeObserver::observe() {
  NodeObservation node;
  if (!std::filesystem::exists(self_.data_dir + "/PG_VERSION")) {
    node.state = PgState::kNoData;
    connection_.reset();
    return node;
  }
  node.data_was_primary = !std::filesystem::exists(self_.data_dir + "/standby.signal");
  if (!process_.running()) {
    node.state = PgState::kStopped;
    connection_.reset();
    not_streaming_since_.reset();
    return node;
  }
  node.state = PgState::kStarting;
  // Until it answers, where the server is pointed is what its tandem.conf says.
  node.upstream = node_at(configured_conninfo(self_.data_dir));
  query(node);
  if (node.state != PgState::kStandby) not_streaming_since_.reset();
  return node;
}

}  // namespace tandem
