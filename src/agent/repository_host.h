// The repository host's service (tandem repository): on the machine that holds the backups of a
// cluster whose nodes run on several machines (backup.repository_host). It keeps pgBackRest's
// TLS server running for the nodes (their archive-push, archive-get, restores), makes the
// stanza from the primary once it answers, and takes the scheduled backups (backup.schedule)
// with the leader's view — pgBackRest 2.45 takes a backup only where the repository is.
#pragma once

#include <atomic>

#include "common/clock.h"
#include "common/result.h"
#include "core/cluster_config.h"
#include "proc/os_user.h"
#include "proc/process_runner.h"
#include "proc/service_notify.h"

namespace tandem {

// Runs until `stop`; an error when this machine is not the repository host, the repository
// is unusable or another `tandem repository` runs here.
Status run_repository_host(const ClusterConfig& config, const OsUser& os_user,
                           ProcessRunner& runner, Clock& clock, const ServiceNotifier& service,
                           const std::atomic<bool>& stop);

}  // namespace tandem
