// Whether a postmaster runs on a data directory, from its postmaster.pid.
#pragma once

#include <sys/types.h>

#include <optional>
#include <string>

namespace tandem {

// True while the process exists and is not a zombie (an exited child nobody has reaped).
bool process_alive(pid_t pid);

// The pid in the data directory's postmaster.pid if that process is alive, else nullopt.
std::optional<pid_t> running_postmaster(const std::string& data_dir);

// The WAL segment the postmaster's startup process waits for, from its process title
// ("postgres: startup waiting for 000000010000000000000004"); nullopt while it replays, or when
// there is no such process. A recovery that waits for WAL nobody sends it waits on one name.
std::optional<std::string> recovery_waiting_for(pid_t postmaster);

}  // namespace tandem
