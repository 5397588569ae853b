// tandem restart --all: the order of a rolling restart of every node's PostgreSQL. Pure: the CLI
// carries the steps out, one at a time, each finished (the node streaming again, the switchover
// done) before the next.
#pragma once

#include <string>
#include <vector>

#include "common/result.h"

namespace tandem {

struct RollingMember {
  std::string name;
  bool primary = false;
  bool streaming = false;  // a standby streaming from the primary
  bool pending = true;     // its server waits for a restart to apply a setting
};

struct RollingStep {
  enum class Kind {
    kRestart,     // the node's agent restarts its PostgreSQL in its role; then it streams
                  // again (a standby) or accepts writes again (a primary restarted in place)
    kSwitchover,  // the primary role moves to `node`, cleanly
  };
  Kind kind = Kind::kRestart;
  std::string node;
  bool operator==(const RollingStep&) const = default;
};

// Standbys first, one at a time, in the members' order; then the primary role moves to the
// first of `candidates` (the agents' ranking of who may take over) and the old primary restarts
// as a standby — never two nodes down at once, no acknowledged write lost. With no candidate (no
// standby, or none may take over) the primary restarts in place last: writes wait for it.
// Refused, naming the node, unless exactly one node is primary and every other streams: a
// rolling restart must not start on a cluster that is already one node short.
// `pending_only` (tandem restart --pending): only the nodes whose server waits for a restart,
// in the same order; none is no step at all.
Result<std::vector<RollingStep>> plan_rolling_restart(const std::vector<RollingMember>& members,
                                                      const std::vector<std::string>& candidates,
                                                      bool pending_only = false);

}  // namespace tandem
