#include "agent/store_lock_watch.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dcs/sqlite_store.h"
#include "proc/file_locks.h"

namespace tandem {

SqliteLockWatch::SqliteLockWatch(std::string store_path) {
  auto byte = SqliteStore::write_lock_byte(store_path);
  file_ = std::move(byte.file);
  offset_ = byte.offset;
}

bool SqliteLockWatch::maybe_held() {
  struct stat now {};
  if (lstat(file_.c_str(), &now) != 0 || !S_ISREG(now.st_mode)) return true;
  if (fd_ < 0 || now.st_dev != device_ || now.st_ino != inode_) {
    // The old descriptor (a file replaced) stays open: see fd_.
    int fd = open(file_.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) return true;
    struct stat opened {};
    if (fstat(fd, &opened) != 0) return true;  // kept open all the same: see fd_
    fd_ = fd;
    device_ = opened.st_dev;  // what was opened, if the file was replaced in between
    inode_ = opened.st_ino;
  }
  auto taker = posix_lock_taker(fd_, offset_);
  return !taker || *taker != 0;
}

// The kernel's answer first: mostly nobody holds the lock, and the look at /proc/locks that
// names a holder for sure is for when somebody does (a write under way, or a stopped process).
std::optional<std::int64_t> SqliteLockWatch::stopped_holder() {
  if (!maybe_held()) return std::nullopt;
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
