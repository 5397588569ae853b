// Starting a long-lived process that outlives tandem's command (an agent of `tandem local`).
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

#include "common/result.h"

namespace tandem {

// Starts `program args...` in a new session, stdin from /dev/null, stdout and stderr appended
// to `log_file`; does not wait for it.
Result<pid_t> spawn_detached(const std::string& program, const std::vector<std::string>& args,
                             const std::string& log_file);

// This running program's own path, to start more of itself.
std::string own_executable();

// The processes whose parent is `parent` (a postmaster's backends, an agent's watchdog), from
// /proc.
std::vector<pid_t> children_of(pid_t parent);
// Every process descended from `pid` (children, theirs, ...), from /proc: what a host crash
// takes down with an agent (the pgBackRest a backup runs, and its workers in process groups of
// their own).
std::vector<pid_t> descendants_of(pid_t pid);

}  // namespace tandem
