#include "proc/file_locks.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <vector>

#include "proc/os_user.h"

namespace tandem {

namespace {

std::vector<std::string_view> fields(std::string_view line) {
  std::vector<std::string_view> out;
  std::size_t at = 0;
  while (at < line.size()) {
    std::size_t start = line.find_first_not_of(" \t", at);
    if (start == std::string_view::npos) break;
    std::size_t end = line.find_first_of(" \t", start);
    if (end == std::string_view::npos) end = line.size();
    out.push_back(line.substr(start, end - start));
    at = end;
  }
  return out;
}

template <typename T>
bool number(std::string_view text, T& out, int base = 10) {
  auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), out, base);
  return error == std::errc() && end == text.data() + text.size();
}

}  // namespace

// "1: POSIX  ADVISORY  WRITE 3021 fd:01:1234567 120 120" (proc(5)); a waiter's line has "->"
// after the number, an open file description's lock says OFDLCK, a flock() lock FLOCK.
std::optional<PosixLock> parse_posix_lock(std::string_view line) {
  auto parts = fields(line);
  if (parts.size() != 8 || parts[1] != "POSIX") return std::nullopt;
  PosixLock lock;
  if (parts[3] != "WRITE" && parts[3] != "READ") return std::nullopt;
  lock.write = parts[3] == "WRITE";
  auto device = parts[5];
  auto first = device.find(':');
  auto second = device.find(':', first == std::string_view::npos ? 0 : first + 1);
  if (first == std::string_view::npos || second == std::string_view::npos) return std::nullopt;
  bool ok = number(parts[4], lock.pid) && lock.pid > 0 &&
            number(device.substr(0, first), lock.major, 16) &&
            number(device.substr(first + 1, second - first - 1), lock.minor, 16) &&
            number(device.substr(second + 1), lock.inode) && number(parts[6], lock.start);
  if (!ok) return std::nullopt;
  if (parts[7] == "EOF") {
    lock.end = -1;
  } else if (!number(parts[7], lock.end)) {
    return std::nullopt;
  }
  return lock;
}

namespace {

bool covers(const PosixLock& lock, long long offset) {
  return lock.write && lock.start <= offset && (lock.end == -1 || offset <= lock.end);
}

// Whether `pid` itself holds the write lock now: one of its descriptors is the file (dev, ino
// as stat() shows them, whatever the file system) and that descriptor's own lock lines
// (/proc/PID/fdinfo, the locks of that process's descriptor table only) cover `offset`.
// /proc/locks alone is not enough: it prints the pid that took a lock, which may have exited
// while a process sharing its descriptors keeps the lock, and then been reused.
bool holds_write_lock(pid_t pid, dev_t device, ino_t inode, long long offset) {
  std::error_code error;
  std::string fds = fmt::format("/proc/{}/fd", pid);
  for (const auto& entry : std::filesystem::directory_iterator(fds, error)) {
    struct stat info {};
    if (stat(entry.path().c_str(), &info) != 0 || info.st_dev != device || info.st_ino != inode) {
      continue;
    }
    std::ifstream fdinfo(fmt::format("/proc/{}/fdinfo/{}", pid, entry.path().filename().string()));
    for (std::string line; std::getline(fdinfo, line);) {
      if (!line.starts_with("lock:")) continue;
      auto lock = parse_posix_lock(std::string_view(line).substr(5));
      if (lock && covers(*lock, offset)) return true;
    }
  }
  return false;
}

}  // namespace

// Candidates from /proc/locks by inode (its device is the superblock's, which on btrfs or an
// overlay is not what stat() says), each confirmed by the holder's own descriptors.
std::optional<pid_t> posix_write_lock_holder(const std::string& path, long long offset) {
  struct stat info {};
  if (lstat(path.c_str(), &info) != 0 || !S_ISREG(info.st_mode)) return std::nullopt;
  std::string text = read_file("/proc/locks").value_or("");
  for (std::string_view rest = text; !rest.empty();) {
    std::size_t end = rest.find('\n');
    std::string_view line = rest.substr(0, end);
    rest = end == std::string_view::npos ? std::string_view() : rest.substr(end + 1);
    auto lock = parse_posix_lock(line);
    if (!lock || lock->inode != info.st_ino || !covers(*lock, offset)) continue;
    if (holds_write_lock(lock->pid, info.st_dev, info.st_ino, offset)) return lock->pid;
  }
  return std::nullopt;
}

std::optional<pid_t> posix_lock_taker(int fd, long long offset) {
  struct flock probe {};
  probe.l_type = F_WRLCK;
  probe.l_whence = SEEK_SET;
  probe.l_start = offset;
  probe.l_len = 1;
  if (fcntl(fd, F_GETLK, &probe) != 0) return std::nullopt;
  if (probe.l_type == F_UNLCK) return 0;
  return probe.l_pid > 0 ? std::optional<pid_t>(probe.l_pid) : std::nullopt;
}

// /proc/PID/stat: "PID (COMM) S ...", COMM may hold spaces and parentheses: the state follows
// the last ')'.
bool process_stopped(pid_t pid) {
  std::ifstream file(fmt::format("/proc/{}/stat", pid));
  std::stringstream text;
  text << file.rdbuf();
  std::string stat = text.str();
  auto paren = stat.rfind(')');
  if (paren == std::string::npos || paren + 2 >= stat.size()) return false;
  char state = stat[paren + 2];
  return state == 'T' || state == 't';
}

Status signal_if_still(pid_t pid, int signal, const std::function<bool(pid_t)>& still) {
  int pidfd = static_cast<int>(syscall(SYS_pidfd_open, pid, 0));
  if (pidfd < 0) {
    if (errno == ESRCH) return {};
    return fail(ErrorCode::kFailed, fmt::format("pidfd_open({}): {}", pid, std::strerror(errno)));
  }
  // Pinned: from here on the pid is that process's, or nobody's.
  Status result;
  if (still(pid) && syscall(SYS_pidfd_send_signal, pidfd, signal, nullptr, 0) != 0 &&
      errno != ESRCH) {
    result = fail(ErrorCode::kFailed,
                  fmt::format("signal {} to {}: {}", signal, pid, std::strerror(errno)));
  }
  close(pidfd);
  return result;
}

}  // namespace tandem
