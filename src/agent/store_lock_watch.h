// The embedded store's write lock, as the agents watch it: SQLite lets one process write at a
// time, and a process stopped inside a write (SIGSTOP, Ctrl-Z, a debugger) would hold every
// agent's writes — renewals, take-overs — for as long as it stays stopped. The agents find it
// (decide() chooses what to do: NodeObservation::store_lock_held_stopped) and resume or kill
// it. Injected: the simulation has one of its own.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "common/result.h"

namespace tandem {

class StoreLockWatch {
 public:
  virtual ~StoreLockWatch() = default;
  // The process that holds the store's write lock now while stopped; nullopt when none does.
  virtual std::optional<std::int64_t> stopped_holder() = 0;
  // SIGCONT (or with `kill`, SIGKILL) to `pid`, only if it still holds the lock stopped.
  virtual Status unblock(std::int64_t pid, bool kill) = 0;
};

// The SQLite store at `path` (the store_file of a cluster on one machine).
class SqliteLockWatch final : public StoreLockWatch {
 public:
  explicit SqliteLockWatch(std::string store_path);
  std::optional<std::int64_t> stopped_holder() override;
  Status unblock(std::int64_t pid, bool kill) override;

 private:
  // Whether somebody may hold the lock: asked of the kernel over a descriptor of the lock's
  // file, opened once (again if the file was replaced) and never closed — closing a descriptor
  // drops every POSIX lock this process holds on the file, its own store connections' too.
  bool maybe_held();

  std::string file_;
  long long offset_;
  int fd_ = -1;
  std::uint64_t device_ = 0, inode_ = 0;
};

}  // namespace tandem
