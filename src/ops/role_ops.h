// Changing roles: promoting a standby, and bringing a former primary back as a standby.
#pragma once

#include <optional>
#include <string>

#include "core/rejoin_plan.h"
#include "dcs/store.h"
#include "ops/context.h"

namespace tandem {

// Promotes a running standby once no other primary runs; returns when it accepts writes, has
// a slot for every other node, and the other standbys stream from it (or will, when started).
// The new timeline is claimed in `store` first (ops/timeline_claim.h): of two promotions at
// once, the second is refused.
Status promote_standby(Context& context, const NodeConfig& node, Store& store);

// The promotion itself, without the checks and without touching other nodes (the agent's way:
// every agent repoints its own node): pg_ctl promote, wait until it accepts writes, slots for
// every other node, tandem.conf without an upstream.
Status promote_in_place(Context& context, const NodeConfig& node);

enum class RejoinResult { kAlreadyStandby, kFollowed, kRewound, kRecloned };

struct RejoinOutcome {
  RejoinResult result;
  std::string reason;
  std::optional<Lsn> diverged_from;  // WAL the node had that the primary does not:
  std::optional<Lsn> diverged_to;    // [from, to], kept in moved_aside when recloned
  std::string moved_aside;           // where the old data directory went (kRecloned)
};

// Makes `node` a standby of the running primary: follow when its WAL is a prefix of the
// primary's, pg_rewind when it diverged, a fresh clone only when rewinding fails (the old data
// directory is moved aside, never deleted). Refuses a node running as a primary.
Result<RejoinOutcome> rejoin_node(Context& context, const NodeConfig& node);

// A fresh copy of `primary` for the standby `node` (stopped first), started and streaming; the
// old data directory is moved aside, never deleted. Returns where it went.
Result<std::string> reinitialize_standby(Context& context, const NodeConfig& node,
                                         const NodeConfig& primary);

}  // namespace tandem
