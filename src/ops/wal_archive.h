// The WAL a failover leaves out of the archive, and PostgreSQL's archive_command with backup:
// (tandem archive-push). The archive is pgBackRest's (ops/backup.h).
#pragma once

#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"
#include "core/cluster_config.h"
#include "proc/process_runner.h"

namespace tandem {

// Before `node`, a standby, is promoted: the WAL segments it received whole (archive_status
// .done) after `archived` (core received_after: the old primary's last archived file as last
// published; "" when unknown: all of them) marked for its archiver — .done renamed .ready as
// the OS user — so that once promoted it pushes them, and PostgreSQL keeps each until it is
// archived. The old primary may have died before archiving them, and no standby archives what
// it receives: without them a restore past the failover has a hole. Marked after the
// promotion, a segment was once recycled first by the promotion's checkpoint (BackupTest).
// Only what the standby still holds can be saved so. Those the archive holds already pgBackRest
// accepts again (archive_push_segment). Returns how many were marked.
Result<int> mark_received_wal(const ClusterConfig& config, ProcessRunner& runner,
                              const NodeConfig& node, std::string_view archived);

// archive_command with backup:: `command` is pgBackRest's archive-push, its last argument the
// segment's path (PostgreSQL's %p, in the data directory). Ok when pgBackRest archived it, or
// when it refused it with error 45 (the archive holds another copy of that segment, another
// checksum) for a segment of a timeline that ended in the newest history file of its pg_wal
// (core of_a_timeline_left): another node's copy, which differs only past what recovery along
// that history reads — after a WAL switch record, or after the switch point (seen in
// BackupTest); the archiver would otherwise retry the segment for ever and archive nothing
// after it. The value: a line saying so, or "". An error: pgBackRest's reason (or the
// runner's). `output` gets pgBackRest's output, "" if it did not run. `environment`: what
// pgBackRest is given beside the runner's minimal environment (pgbackrest_variables).
Result<std::string> archive_push_segment(ProcessRunner& runner,
                                         const std::vector<std::string>& command,
                                         const std::map<std::string, std::string>& environment,
                                         std::string& output);

// The PGBACKREST_* variables of an environment (entries "NAME=value", ending with a null, as
// `environ`): pgBackRest's own options, which PostgreSQL's archive_command passes on to it.
std::map<std::string, std::string> pgbackrest_variables(const char* const* environment);

}  // namespace tandem
