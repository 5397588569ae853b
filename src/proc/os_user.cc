#include "proc/os_user.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <grp.h>
#include <pwd.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <vector>

#include "proc/safe_file.h"

namespace tandem {

Result<OsUser> lookup_os_user(const std::string& name) {
  passwd entry{};
  passwd* found = nullptr;
  std::vector<char> buffer(16384);
  if (getpwnam_r(name.c_str(), &entry, buffer.data(), buffer.size(), &found) != 0 ||
      found == nullptr) {
    return fail(ErrorCode::kNotFound,
                fmt::format("OS user '{}' does not exist: it must own and run PostgreSQL. Install "
                            "postgresql-15 (it creates 'postgres'), create it with `useradd "
                            "--system {}`, or set os_user in tandem.yaml",
                            name, name));
  }
  if (found->pw_uid == 0) {
    return fail(ErrorCode::kInvalidArgument,
                fmt::format("OS user '{}' is root: PostgreSQL refuses to run as root", name));
  }
  OsUser user{name, found->pw_uid, found->pw_gid, found->pw_dir ? found->pw_dir : "/", {}};
  int count = 32;
  user.groups.resize(count);
  while (getgrouplist(name.c_str(), user.gid, user.groups.data(), &count) < 0) {
    count = std::max<int>(count, static_cast<int>(user.groups.size()) * 2);
    user.groups.resize(count);
  }
  user.groups.resize(count);
  return user;
}

bool become_os_user(const OsUser& user) {
  const gid_t* groups = user.groups.empty() ? &user.gid : user.groups.data();
  std::size_t count = user.groups.empty() ? 1 : user.groups.size();
  return setgroups(count, groups) == 0 && setgid(user.gid) == 0 && setuid(user.uid) == 0;
}

bool running_as_root() { return geteuid() == 0; }

Status ensure_owned_dir(const std::string& path, const OsUser& owner, mode_t mode,
                        bool take_existing) {
  // Missing parents are made as they always were (root's); the directory itself through a
  // descriptor, so that a link planted in its place is refused rather than chowned.
  std::filesystem::path parent = std::filesystem::path(path).lexically_normal().parent_path();
  std::error_code error;
  if (!parent.empty()) std::filesystem::create_directories(parent, error);
  if (error) {
    return fail(ErrorCode::kFailed,
                fmt::format("cannot create {}: {}", parent.string(), error.message()));
  }
  return make_owned_dir(path, owner.uid, owner.gid, mode, take_existing);
}

Status write_owned_file(const std::string& path, std::string_view content, const OsUser& owner,
                        mode_t mode) {
  return write_file_atomically(path, content, owner.uid, owner.gid, mode);
}

// Plain calls, no stream: an agent reads /proc files every cycle (the store-lock watch), and an
// ifstream's setup cost more than the read.
Result<std::string> read_file(const std::string& path) {
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    return fail(errno == ENOENT ? ErrorCode::kNotFound : ErrorCode::kFailed,
                fmt::format("cannot read {}: {}", path, std::strerror(errno)));
  }
  std::string content;
  char buffer[4096];
  for (;;) {
    ssize_t got = read(fd, buffer, sizeof buffer);
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) break;  // the end, or what could be read (as the stream gave)
    content.append(buffer, static_cast<std::size_t>(got));
  }
  close(fd);
  return content;
}

Status check_private_dir(const std::string& dir, const OsUser& owner) {
  std::error_code error;
  std::filesystem::path path = std::filesystem::weakly_canonical(dir, error);
  if (error) return fail(ErrorCode::kFailed, fmt::format("{}: {}", dir, error.message()));
  for (std::filesystem::path each = path;; each = each.parent_path()) {
    struct stat info {};
    if (stat(each.c_str(), &info) == 0) {
      bool itself = each == path;
      if (info.st_uid != 0 && info.st_uid != owner.uid) {
        passwd* user = getpwuid(info.st_uid);
        std::string name = user ? user->pw_name : std::to_string(info.st_uid);
        return fail(ErrorCode::kPermissionDenied,
                    itself ? fmt::format("refusing {}: it belongs to {}; the directory of a "
                                         "cluster must belong to root or {}",
                                         dir, name, owner.name)
                           : fmt::format("refusing {}: {} above it belongs to {}, who could "
                                         "replace it; use a directory of root or {}",
                                         dir, each.string(), name, owner.name));
      }
      bool shared = (info.st_mode & (S_IWGRP | S_IWOTH)) != 0;
      if (shared && (itself || (info.st_mode & S_ISVTX) == 0)) {
        return fail(ErrorCode::kPermissionDenied,
                    fmt::format("refusing {}: {} may be written by {} (mode {:04o}): `chmod go-w "
                                "{}` or use another directory",
                                dir, itself ? std::string("it") : each.string(),
                                (info.st_mode & S_IWOTH) ? "anyone" : "its group",
                                info.st_mode & 07777, each.string()));
      }
    }
    if (!each.has_parent_path() || each == each.parent_path()) break;
  }
  return {};
}

bool user_can_use_dir(const std::string& dir, const OsUser& owner, bool write) {
  std::filesystem::path path(dir);
  std::error_code error;
  int mode = write ? W_OK | X_OK : X_OK;
  while (!std::filesystem::exists(path, error) && path.has_parent_path() &&
         path != path.parent_path()) {
    path = path.parent_path();
    mode = X_OK;
  }
  std::string existing = path.string();
  if (!running_as_root()) return access(existing.c_str(), mode) == 0;
  // Ask as the user in a child: the kernel's answer, with groups and ACLs, beats ours.
  pid_t pid = fork();
  if (pid == 0) {
    if (!become_os_user(owner)) _exit(2);
    _exit(access(existing.c_str(), mode) == 0 ? 0 : 1);
  }
  int status = 0;
  if (pid < 0 || waitpid(pid, &status, 0) < 0) return false;
  return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

}  // namespace tandem
