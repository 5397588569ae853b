// Whether a postmaster runs on a data directory, from its postmaster.pid.
#pragma once

#include <sys/types.h>

#include <optional>
#include <string>

#include "common/result.h"
#include "proc/os_user.h"

namespace tandem {

// Starts `postgres -D data_dir` (`postgres`: the program's path) as `os_user` when tandem runs as
// root, in a session of its own, stdin from /dev/null, stdout and stderr appended to `log_file`
// (opened without following a link, and given to the OS user); returns its pid, a child of this
// process, without waiting. With `die_with_caller` the kernel sends it SIGQUIT, an immediate
// shutdown, when the calling thread ends (PR_SET_PDEATHSIG), and it does not start at all if the
// caller is gone by then: the agent's fence. Without, it outlives the caller, as pg_ctl's does.
Result<pid_t> spawn_postmaster(const std::string& postgres, const std::string& data_dir,
                               const std::string& log_file, const OsUser& os_user,
                               bool die_with_caller);

// True while the process exists and is not a zombie (an exited child nobody has reaped).
bool process_alive(pid_t pid);

// The pid in the data directory's postmaster.pid if that process is alive, else nullopt.
std::optional<pid_t> running_postmaster(const std::string& data_dir);

// The WAL segment the postmaster's startup process waits for, from its process title
// ("postgres: startup waiting for 000000010000000000000004"); nullopt while it replays, or when
// there is no such process. A recovery that waits for WAL nobody sends it waits on one name.
std::optional<std::string> recovery_waiting_for(pid_t postmaster);

// The segment in a process title (/proc/PID/cmdline) that is exactly a startup process's
// "postgres: [cluster_name: ]startup waiting for <24 hex digits>"; nullopt for any other. A
// backend's title, which begins with the user name a client sent (before it authenticates),
// always goes on with its database, host and state: a client cannot pass for the startup
// process.
std::optional<std::string> waiting_segment(std::string title);

}  // namespace tandem
