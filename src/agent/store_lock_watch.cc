#include "agent/store_lock_watch.h"

#include <signal.h>

#include "dcs/sqlite_store.h"
#include "proc/file_locks.h"

namespace tandem {

SqliteLockWatch::SqliteLockWatch(std::string store_path) {
  auto byte = SqliteStore::write_lock_byte(store_path);
  file_ = std::move(byte.file);
  offset_ = byte.offset;
}

std::optional<std::int64_t> SqliteLockWatch::stopped_holder() {
  auto holder = posix_write_lock_holder(file_, offset_);
  if (!holder || !process_stopped(*holder)) return std::nullopt;
  return *holder;
}

Status SqliteLockWatch::unblock(std::int64_t pid, bool kill) {
  return signal_if_still(static_cast<pid_t>(pid), kill ? SIGKILL : SIGCONT, [this](pid_t p) {
    return posix_write_lock_holder(file_, offset_) == p && process_stopped(p);
  });
}

}  // namespace tandem
