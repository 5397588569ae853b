// Synchronous mode on the leader: keeps one streaming standby synchronous and names it in the
// store as the only one that may take over — but only once that standby has flushed every commit
// acknowledged so far, so that the store never names a standby that could lack one.
#pragma once

#include <optional>
#include <string>

#include "core/cluster_view.h"
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
  Status configure(const std::string& standby);

  Context& context_;
  const NodeConfig& self_;
  Store& store_;
  const ClusterLayout& layout_;
  std::optional<std::string> configured_;  // what tandem.conf names; nullopt: not yet read
  std::optional<Lsn> pending_since_;       // configured_ must flush this far to be published
  std::optional<Connection> connection_;   // kept: update() runs every cycle
};

}  // namespace tandem
