// Deciding how a node can become a standby of a primary: from the node's timeline and the end
// of its WAL, and the primary's timeline history. Pure: the caller gathers the facts.
#pragma once

#include <optional>
#include <string>

#include "core/lsn.h"
#include "core/timeline.h"

namespace tandem {

struct WalPosition {
  TimelineId timeline = 1;
  // Where the node's last WAL record starts (for a cleanly stopped node, its shutdown
  // checkpoint). A record starting at or after the primary's switch point is not the primary's.
  Lsn last_record;
};

enum class RejoinMethod {
  kFollow,  // the node's WAL is a prefix of the primary's: start it as a standby as it is
  kRewind,  // the node wrote WAL the primary does not have: pg_rewind first
  kRefuse,  // the node is ahead of the primary on the same history: it is the better copy
};

struct RejoinPlan {
  RejoinMethod method;
  // Where the histories parted (kRewind) — the start of the WAL the node will lose.
  std::optional<Lsn> diverged_at;
  std::string reason;  // one sentence for the log and the person
};

RejoinPlan plan_rejoin(const WalPosition& node, const TimelineHistory& primary_history,
                       Lsn primary_end);

}  // namespace tandem
