// The agent's queries of its own node, every cycle: one round trip for what the node is and how
// far its WAL goes, and one for what only a primary knows (its slots, its standbys' lag).
#pragma once

#include <optional>
#include <string>

#include "core/cluster_view.h"
#include "pg/connection.h"

namespace tandem {

struct ServerObservation {
  bool standby = false;  // in recovery
  // A standby: the WAL it holds (received or replayed, whichever is further); a primary: where
  // its WAL ends.
  std::optional<Lsn> received;
  std::optional<Lsn> replayed;
  bool receiver_streaming = false;  // a standby's WAL receiver streams
  bool receiver_present = false;    // a standby has a WAL receiver at all (pg_stat_wal_receiver)
  // A standby: `received` is all the WAL it holds — pg_last_wal_receive_lsn() is set (a
  // receiver ran since the start), or none did and replay has used up every source (its startup
  // process waits on RecoveryRetrieveRetryInterval). Otherwise `received` is replay's position,
  // perhaps short of the WAL on disk (after a start, say).
  bool receive_position_known = false;
  std::string primary_conninfo;  // the setting, as the server runs with it
  // A standby: the newest timeline it knows of; a primary: the one it writes on.
  std::optional<TimelineId> timeline;
  // The timeline its WAL is written on now (a standby's WAL receiver's; none without one), the
  // size of its WAL segments, and whether no WAL was in flight when it answered (see kObserve).
  std::optional<TimelineId> write_timeline;
  std::uint64_t segment_bytes = 0;
  bool wal_settled = false;
  bool operator==(const ServerObservation&) const = default;
};
Result<ServerObservation> observe_server(Connection& connection);

// A primary's physical slots and its standbys' replay lag, in one query.
Result<PrimaryDetails> read_primary_details(Connection& connection);

}  // namespace tandem
