// Promoting a standby: with its checks and the other standbys repointed (tandem promote), or in
// place (the agent's way).
#pragma once

#include "dcs/store.h"
#include "ops/context.h"
#include "pg/connection.h"

namespace tandem {

// Promotes a running standby once no other primary runs; returns when it accepts writes, has
// a slot for every other node, and the other standbys stream from it (or will, when started).
// The new timeline is claimed in `store` first (ops/timeline_claim.h): of two promotions at
// once, the second is refused. In synchronous mode a node the store's `sync` record does not
// say has every acknowledged commit is refused unless `allow_data_loss`.
Status promote_standby(Context& context, const NodeConfig& node, Store& store,
                       bool allow_data_loss = false);

// The promotion itself, without the checks and without touching other nodes (the agent's way:
// every agent repoints its own node): pg_promote() through `connection` (a session with the
// node's superuser, or null: pg_ctl promote then), wait until it accepts writes, slots for every
// other node, tandem.conf without an upstream.
Status promote_in_place(Context& context, const NodeConfig& node, Connection* connection);

}  // namespace tandem
