#include "agent/node_observer.h"

#include <sys/stat.h>

#include <filesystem>

#include "core/timeline.h"
#include "pg/admin_connection.h"
#include "pg/observe_queries.h"
#include "pg/postmaster.h"
#include "pg/server_files.h"
#include "pg/server_queries.h"

namespace tandem {
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

namespace {
// How often a server's configuration state is read: a setting waits for a restart only after a
// reload, and a reload through tandem reads it often for a while.
constexpr std::chrono::seconds kConfigurationReadEvery{10};
constexpr std::chrono::milliseconds kConfigurationReadOftenEvery{500};
constexpr std::chrono::seconds kConfigurationLookOftenFor{3};
// A WAL file written this recently may be written again within the same tick of the file
// system's clock, its time stamp unchanged: an answer given then is never taken again at rest.
constexpr std::chrono::milliseconds kWalQuietFor{50};
}  // namespace

void NodeObserver::read_configuration_state(NodeObservation& node) {
  auto now = clock_.steady_now();
  if (now >= configuration_due_) {
    if (auto pending = pending_restart(*connection_)) pending_restart_ = std::move(*pending);
    if (auto errors = configuration_errors(*connection_))
      configuration_errors_ = std::move(*errors);
    using Duration = std::chrono::steady_clock::duration;
    configuration_due_ = now + (now < look_often_until_ ? Duration(kConfigurationReadOftenEvery)
                                                        : Duration(kConfigurationReadEvery));
  }
  node.pending_restart = pending_restart_;
  node.configuration_errors = configuration_errors_;
}

void NodeObserver::configuration_reloaded() {
  configuration_due_ = clock_.steady_now();
  look_often_until_ = configuration_due_ + kConfigurationLookOftenFor;
}

void NodeObserver::query(NodeObservation& node) {
  if (!connection_) {
    auto opened = Connection::open(local_admin_conninfo(config_, self_));
    if (!opened) return;
    connection_.emplace(std::move(*opened));
    configuration_reloaded();  // perhaps a new server: its configuration read at once, and soon
  }
  auto server = observe_server(*connection_);
  if (!server) {
    connection_.reset();  // the server restarted or went away: reconnect next cycle
    answer_.reset();
    return;
  }
  pid_t postmaster = process_.pid();
  bool repeated = answer_ && answer_->server == *server && answer_->postmaster == postmaster;
  std::string previous_upstream = answer_ ? answer_->upstream : "";
  answer_ = Answer{.server = std::move(*server),
                   .postmaster = postmaster,
                   .at = clock_.steady_now(),
                   .repeated = repeated};
  answer_->wal = wal_stamp(answer_->server);
  // Quiet: written last well before this look (any write from now on gets a later time stamp,
  // whatever the tick of the file system's clock), and nothing was in flight as it answered —
  // a write whose position the server did not report yet would have a recent stamp.
  auto wall_ns =
      std::chrono::duration_cast<std::chrono::nanoseconds>(clock_.wall_now().time_since_epoch())
          .count();
  answer_->quiet =
      answer_->server.wal_settled && answer_->wal &&
      wall_ns - answer_->wal->modified_ns >= std::chrono::nanoseconds(kWalQuietFor).count();
  if (answer_->server.standby) {
    // Parsed once per new conninfo: the parse was a part of an idle agent's cost.
    answer_->upstream = repeated ? previous_upstream : node_at(answer_->server.primary_conninfo);
  }
  take_answer(*answer_, node, true);
}

std::optional<NodeObserver::WalStamp> NodeObserver::wal_stamp(
    const ServerObservation& server) const {
  if (!server.write_timeline || !server.received || server.segment_bytes == 0) return std::nullopt;
  std::string path =
      self_.data_dir + "/pg_wal/" +
      wal_segment_name(*server.write_timeline, *server.received, server.segment_bytes);
  struct stat info {};
  if (lstat(path.c_str(), &info) != 0 || !S_ISREG(info.st_mode)) return std::nullopt;
  return WalStamp{.inode = info.st_ino,
                  .size = info.st_size,
                  .modified_ns = info.st_mtim.tv_sec * 1'000'000'000LL + info.st_mtim.tv_nsec};
}

// At rest: an answer given while the WAL was quiet, the same postmaster, standby.signal where
// the answer's role wants it, and the WAL file at the answer's position untouched since (a
// standby's WAL receiver writes it, a primary's commits do). Not when the server's configuration
// state is due: what a reload changed is read with a fresh answer.
bool NodeObserver::answer_stands(const NodeObservation& node) const {
  if (!answer_ || !connection_ || !answer_->quiet || answer_->postmaster != process_.pid() ||
      clock_.steady_now() >= configuration_due_) {
    return false;
  }
  if (answer_->server.standby == node.data_was_primary) return false;
  return wal_stamp(answer_->server) == answer_->wal;
}

void NodeObserver::take_answer(const Answer& answer, NodeObservation& node, bool fresh) {
  const ServerObservation& server = answer.server;
  node.state = server.standby ? PgState::kStandby : PgState::kPrimary;
  node.answered_at = answer.at;
  node.answer_repeated = answer.repeated;
  if (fresh) {
    read_configuration_state(node);
  } else {
    node.pending_restart = pending_restart_;
    node.configuration_errors = configuration_errors_;
  }
  node.received_lsn = server.received;
  node.replayed_lsn = server.replayed;
  if (server.timeline) node.timeline = *server.timeline;
  if (server.standby) {
    node.upstream = answer.upstream;
    auto now = clock_.steady_now();
    if (server.receiver_streaming) {
      not_streaming_since_.reset();
    } else if (!not_streaming_since_) {
      not_streaming_since_ = now;
    }
    if (not_streaming_since_) {
      node.not_streaming_for =
          std::chrono::duration_cast<std::chrono::milliseconds>(now - *not_streaming_since_);
    }
    // Pointed nowhere and without a receiver: the clock of a freeze (quorum commit). The
    // positions this answer carries were read in the same statement.
    if (server.receiver_present || !server.primary_conninfo.empty()) {
      receiver_stopped_since_.reset();
    } else if (!receiver_stopped_since_) {
      receiver_stopped_since_ = answer.at;
    }
    // Counted to now at rest too: the WAL untouched since, a receiver started meanwhile has
    // flushed nothing past what this answer says.
    if (receiver_stopped_since_) {
      node.receiver_stopped_for =
          std::chrono::duration_cast<std::chrono::milliseconds>(now - *receiver_stopped_since_);
    }
    node.receive_position_known = server.receive_position_known;
  }
}

std::optional<PrimaryDetails> NodeObserver::primary_details() {
  if (!connection_) return std::nullopt;
  auto details = read_primary_details(*connection_);
  if (!details) return std::nullopt;
  return *details;
}

NodeObservation NodeObserver::observe(bool at_rest) {
  NodeObservation node;
  if (!std::filesystem::exists(self_.data_dir + "/PG_VERSION")) {
    node.state = PgState::kNoData;
    connection_.reset();
    answer_.reset();
    waiting_segment_.clear();
    return node;
  }
  node.data_was_primary = !std::filesystem::exists(self_.data_dir + "/standby.signal");
  if (!process_.running()) {
    node.state = PgState::kStopped;
    connection_.reset();
    answer_.reset();
    not_streaming_since_.reset();
    receiver_stopped_since_.reset();
    waiting_segment_.clear();  // a new postmaster, a new wait
    return node;
  }
  node.state = PgState::kStarting;
  if (at_rest && answer_stands(node)) {
    take_answer(*answer_, node, false);
  } else {
    query(node);
  }
  // Until it answers, where the server is pointed is what its tandem.conf says (read only then:
  // a path walk and a file every cycle were a tenth of an idle agent's cost).
  if (node.state == PgState::kStarting)
    node.upstream = node_at(configured_conninfo(self_.data_dir));
  if (node.state != PgState::kStandby) {
    not_streaming_since_.reset();
    receiver_stopped_since_.reset();
  }
  if (node.state == PgState::kStarting) {
    std::string segment = recovery_waiting_for(process_.pid()).value_or("");
    auto now = clock_.steady_now();
    // Counted afresh when it is pointed elsewhere: the new upstream may have that WAL.
    if (segment != waiting_segment_ || node.upstream != waiting_upstream_) {
      waiting_segment_ = segment;
      waiting_upstream_ = node.upstream;
      waiting_since_ = now;
    }
    if (!segment.empty()) {
      node.recovery_stuck_for =
          std::chrono::duration_cast<std::chrono::milliseconds>(now - waiting_since_);
    }
  } else {
    waiting_segment_.clear();
  }
  return node;
}

}  // namespace tandem
