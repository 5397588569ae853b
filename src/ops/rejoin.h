// Bringing a former primary (or a lost standby) back as a standby: follow, rewind, or a fresh
// copy; and reinitializing a standby from scratch.
#pragma once

#include <optional>
#include <string>

#include "core/rejoin_plan.h"
#include "ops/context.h"

namespace tandem {

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
