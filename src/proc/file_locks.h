// Who holds a POSIX record lock on a file, and whether a process is stopped: what an agent
// needs to find a process frozen while it holds the embedded store's write lock (SQLite keeps
// it as a lock on one byte of the store's -shm file, for as long as a write transaction lasts).
#pragma once

#include <sys/types.h>

#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "common/result.h"

namespace tandem {

// One line of /proc/locks, for the lines this module reads: a POSIX lock's kind, holder and
// byte range on a file named by device (major, minor) and inode.
struct PosixLock {
  bool write = false;  // WRITE, not READ
  pid_t pid = 0;
  unsigned major = 0, minor = 0;
  unsigned long inode = 0;
  long long start = 0, end = 0;  // inclusive; -1 for "to the end of the file"
};
// The line parsed, or nullopt for any line that is not a held POSIX lock (a FLOCK, an OFDLCK,
// a waiter's "->" line, anything malformed).
std::optional<PosixLock> parse_posix_lock(std::string_view line);

// The process holding a POSIX write lock on byte `offset` of `path` now: found in /proc/locks,
// confirmed by that process's own descriptors (so never a pid that took the lock, exited and
// was reused); nullopt when none does, or `path` is gone or not a regular file (a link is not
// followed).
std::optional<pid_t> posix_write_lock_holder(const std::string& path, long long offset);

// Whether any other process holds a POSIX lock on byte `offset` of the file open at `fd`, asked
// of the kernel for that one byte (F_GETLK): the pid it names (the process that took the lock,
// not confirmed), 0 when nobody holds one, nullopt when the kernel could not say. One system
// call, where /proc/locks takes a lock of the whole system's to be read.
std::optional<pid_t> posix_lock_taker(int fd, long long offset);

// Whether the process is stopped now: by a signal (SIGSTOP, SIGTSTP: state T) or under a
// debugger (t). False when it runs, sleeps, or is gone.
bool process_stopped(pid_t pid);

// Sends `signal` to `pid` only if `still(pid)` holds once the process is pinned by a pidfd: a
// pid reused meanwhile by another process is never signalled. Ok when the process is already
// gone or `still` no longer holds (nothing to do then).
Status signal_if_still(pid_t pid, int signal, const std::function<bool(pid_t)>& still);

}  // namespace tandem
