// Which actions may move a node from which state to which: the table the agent's executor
// checks before it acts, and from which the docs' diagram is printed.
#pragma once

#include <span>
#include <string>
#include <string_view>

#include "core/cluster_view.h"
#include "core/decide.h"

namespace tandem {

struct RoleTransition {
  PgState from;
  PgState to;
  Action action;
  std::string_view comment;
};

std::span<const RoleTransition> role_transitions();

// The table's row for taking `action` from `from`, or nullptr: the executor refuses then.
const RoleTransition* find_transition(PgState from, Action action);

// The table as a Mermaid state diagram, for docs/transitions.md (`tandem transitions`).
std::string transitions_diagram();

}  // namespace tandem
