// A primary's WAL senders (pg_stat_replication): whether a standby streams, the rows `tandem
// status` shows, and what synchronous replication needs to choose a standby.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "core/lsn.h"
#include "core/status_report.h"
#include "pg/connection.h"

namespace tandem {

// The state of the WAL sender serving `application_name` (startup, catchup, streaming, ...);
// nullopt when there is none.
Result<std::optional<std::string>> replication_state(Connection& primary,
                                                     const std::string& application_name);

// Whether a WAL sender streams to `application_name`.
Result<bool> streams_to(Connection& primary, const std::string& application_name);

// Every WAL sender, with its positions and lags.
Result<std::vector<ReplicationRow>> replication_rows(Connection& primary);

struct StreamingStandby {
  std::string application_name;
  std::optional<Lsn> flush;  // nullopt when the server reports none
  bool synchronous = false;  // sync_state is "sync"
  bool quorum = false;       // sync_state is "quorum" (an ANY k list names it)
};
struct SynchronousReplication {
  Lsn current_wal;                         // where the primary's WAL ends
  std::string standby_names;               // synchronous_standby_names, as set
  std::vector<StreamingStandby> standbys;  // those whose WAL sender streams
  bool commits_waiting = false;            // a backend waits for a synchronous standby (SyncRep)
};
// One round trip, for the synchronous standby's manager.
Result<SynchronousReplication> read_synchronous_replication(Connection& primary);

}  // namespace tandem
