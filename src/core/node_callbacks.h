// Which callback (tandem.yaml's `callbacks:`) a cycle's observation of its node calls for: the
// move from the role the agent last saw settled to the one it sees now. Pure.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "core/cluster_view.h"

namespace tandem {

enum class CallbackEvent { kStart, kStop, kRoleChange, kRestart };

// "on_start", "on_stop", "on_role_change", "on_restart": the config's keys, and the script's
// first argument.
std::string_view callback_event_name(CallbackEvent event);

struct Callback {
  CallbackEvent event = CallbackEvent::kStart;
  // "primary" or "standby": the node's role after the event; for on_stop, the one it stopped
  // from (a primary that stopped is what a virtual IP's script acts on).
  std::string role;
  bool operator==(const Callback&) const = default;
};

// The role a node has settled in, as callbacks name it: "primary", "standby", "stopped" (no
// postmaster, or no data yet); nullopt while a postmaster starts (what it becomes is not known
// yet).
std::optional<std::string> settled_role(PgState state);

// The callback for the move from `before` (the last settled role this agent saw; nullopt at its
// first cycle, which saw no change) to `now`: on_start when a stopped node runs, on_stop when a
// running one stopped, on_role_change between primary and standby; nullopt otherwise.
std::optional<Callback> role_callback(const std::optional<std::string>& before, PgState now);

}  // namespace tandem
