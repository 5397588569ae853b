// The cluster's coordination store, as its config names it: etcd when etcd.endpoints are set,
// else the SQLite file of agents on one machine.
#pragma once

#include <memory>

#include "common/clock.h"
#include "core/cluster_config.h"
#include "dcs/store.h"

namespace tandem {

Result<std::unique_ptr<Store>> open_cluster_store(const ClusterConfig& config, Clock& clock);

}  // namespace tandem
