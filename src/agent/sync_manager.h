// Synchronous mode on the leader: carries out core's plan_sync (core/sync_plan.h) against the
// local PostgreSQL and the store.
#pragma once

#include <optional>
#include <string>

#include "core/cluster_view.h"
#include "core/sync_plan.h"
#include "dcs/cluster_layout.h"
#include "dcs/store.h"
#include "ops/context.h"
#include "pg/connection.h"

namespace tandem {

class SyncManager {
 public:
  SyncManager(Context& context, const NodeConfig& self, Store& store, const ClusterLayout& layout)
      : context_(context), self_(self), store_(store), layout_(layout) {}

  // One step, each cycle while this node is the primary holding the lease. Returns a line for
  // the log when something changed.
  Result<std::string> update(const ClusterView& view);
  // This node is no longer the primary: forget what it configured.
  void reset();

 private:
  Status configure(const SyncNames& standbys, int any = 0);

  Context& context_;
  const NodeConfig& self_;
  Store& store_;
  const ClusterLayout& layout_;
  std::optional<SyncNames> configured_;  // what tandem.conf names; nullopt: not yet read
  int configured_any_ = 0;               // ...as ANY configured_any_ (quorum commit); 0: not
  SyncMemory memory_;
  std::optional<Connection> connection_;  // kept: update() runs every cycle
};

}  // namespace tandem
