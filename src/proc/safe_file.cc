#include "proc/safe_file.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

namespace tandem {
namespace {

std::unexpected<Error> os_failure(std::string_view what, const std::string& path) {
  ErrorCode code = errno == EACCES   ? ErrorCode::kPermissionDenied
                   : errno == ENOENT ? ErrorCode::kNotFound
                                     : ErrorCode::kFailed;
  return fail(code, fmt::format("{} {}: {}", what, path, std::strerror(errno)));
}

std::unexpected<Error> refused(std::string message) {
  return fail(ErrorCode::kPermissionDenied, std::move(message));
}

// Only root (or tandem's own user) can have put a link in a directory it owns that nobody else
// may write.
bool trusted(int dir_fd) {
  struct stat info {};
  if (fstat(dir_fd, &info) != 0) return false;
  bool owner_ok = info.st_uid == 0 || info.st_uid == geteuid();
  return owner_ok && (info.st_mode & (S_IWGRP | S_IWOTH)) == 0;
}

struct Split {
  std::string dir;
  std::string name;
};

Result<Split> split(const std::string& path) {
  std::filesystem::path whole = std::filesystem::path(path).lexically_normal();
  std::string name = whole.filename().string();
  if (name.empty() || name == "." || name == "..") {
    return fail(ErrorCode::kInvalidArgument, fmt::format("{} does not name a file", path));
  }
  std::string dir = whole.parent_path().string();
  return Split{dir.empty() ? "." : dir, name};
}

}  // namespace

Fd& Fd::operator=(Fd&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0) close(fd_);
    fd_ = other.release();
  }
  return *this;
}

Fd::~Fd() {
  if (fd_ >= 0) close(fd_);
}

int Fd::release() {
  int fd = fd_;
  fd_ = -1;
  return fd;
}

Result<Fd> open_trusted_dir(const std::string& dir) {
  std::error_code error;
  std::filesystem::path path = std::filesystem::absolute(dir, error).lexically_normal();
  if (error) return fail(ErrorCode::kFailed, fmt::format("{}: {}", dir, error.message()));
  Fd current(open("/", O_PATH | O_DIRECTORY | O_CLOEXEC));
  if (current.get() < 0) return os_failure("cannot open", "/");
  std::filesystem::path walked = "/";
  for (const auto& part : path.relative_path()) {
    std::string component = part.string();
    if (component.empty() || component == ".") continue;
    walked /= part;
    int next =
        openat(current.get(), component.c_str(), O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (next < 0 && (errno == ENOTDIR || errno == ELOOP)) {
      struct stat info {};
      if (fstatat(current.get(), component.c_str(), &info, AT_SYMLINK_NOFOLLOW) == 0 &&
          S_ISLNK(info.st_mode)) {
        if (!trusted(current.get())) {
          return refused(fmt::format(
              "refusing to follow the symbolic link {}: it is in a directory that another user "
              "may write",
              walked.string()));
        }
        next = openat(current.get(), component.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
      } else {
        errno = ENOTDIR;
      }
    }
    if (next < 0) return os_failure("cannot open", walked.string());
    current = Fd(next);
  }
  return current;
}

Status remove_file_nofollow(const std::string& path) {
  auto parts = split(path);
  if (!parts) return std::unexpected(parts.error());
  auto dir = open_trusted_dir(parts->dir);
  if (!dir) return std::unexpected(dir.error());
  if (unlinkat(dir->get(), parts->name.c_str(), 0) != 0 && errno != ENOENT) {
    return os_failure("cannot remove", path);
  }
  return {};
}

Result<Fd> open_file_nofollow(const std::string& path, int flags, mode_t mode) {
  auto parts = split(path);
  if (!parts) return std::unexpected(parts.error());
  auto dir = open_trusted_dir(parts->dir);
  if (!dir) return std::unexpected(dir.error());
  // O_NONBLOCK: a FIFO planted there must not hang root; cleared again below.
  Fd file(
      openat(dir->get(), parts->name.c_str(), flags | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK, mode));
  if (file.get() < 0) {
    if (errno == ELOOP) {
      return refused(fmt::format("refusing to open {}: it is a symbolic link", path));
    }
    return os_failure("cannot open", path);
  }
  struct stat info {};
  if (fstat(file.get(), &info) != 0) return os_failure("cannot stat", path);
  if (!S_ISREG(info.st_mode)) {
    return refused(fmt::format("refusing to open {}: it is not a regular file", path));
  }
  if (info.st_nlink > 1) {
    return refused(
        fmt::format("refusing to open {}: it has other names (a hard link to another file)", path));
  }
  if ((flags & O_NONBLOCK) == 0)
    fcntl(file.get(), F_SETFL, fcntl(file.get(), F_GETFL) & ~O_NONBLOCK);
  return file;
}

Result<std::string> read_file_nofollow(const std::string& path) {
  auto file = open_file_nofollow(path, O_RDONLY);
  if (!file) return std::unexpected(file.error());
  std::string content;
  char buffer[8192];
  while (true) {
    ssize_t got = ::read(file->get(), buffer, sizeof(buffer));
    if (got < 0 && errno == EINTR) continue;
    if (got < 0) return os_failure("cannot read", path);
    if (got == 0) return content;
    content.append(buffer, static_cast<std::size_t>(got));
  }
}

Status write_file_atomically(const std::string& path, std::string_view content, uid_t uid,
                             gid_t gid, mode_t mode) {
  auto parts = split(path);
  if (!parts) return std::unexpected(parts.error());
  auto dir = open_trusted_dir(parts->dir);
  if (!dir) return std::unexpected(dir.error());
  std::string temporary = parts->name + ".tmp";
  std::string temporary_path = parts->dir + "/" + temporary;
  auto create = [&] {
    return Fd(openat(dir->get(), temporary.c_str(),
                     O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode));
  };
  Fd file = create();
  if (file.get() < 0 && errno == EEXIST) {
    struct stat info {};
    if (fstatat(dir->get(), temporary.c_str(), &info, AT_SYMLINK_NOFOLLOW) == 0 &&
        !S_ISREG(info.st_mode)) {
      return refused(fmt::format("refusing to write {}: {} is {}; remove it", path, temporary_path,
                                 S_ISLNK(info.st_mode) ? "a symbolic link" : "not a regular file"));
    }
    // A temporary left by an interrupted write.
    unlinkat(dir->get(), temporary.c_str(), 0);
    file = create();
  }
  if (file.get() < 0) return os_failure("cannot write", temporary_path);
  bool written =
      ::write(file.get(), content.data(), content.size()) == static_cast<ssize_t>(content.size());
  bool owned = geteuid() != 0 || fchown(file.get(), uid, gid) == 0;
  bool moded = fchmod(file.get(), mode) == 0;
  bool synced = fsync(file.get()) == 0;
  if (!written || !owned || !moded || !synced ||
      renameat(dir->get(), temporary.c_str(), dir->get(), parts->name.c_str()) != 0) {
    auto error = os_failure("cannot write", path);
    unlinkat(dir->get(), temporary.c_str(), 0);
    return error;
  }
  return {};
}

Status make_owned_dir(const std::string& path, uid_t uid, gid_t gid, mode_t mode,
                      bool take_existing) {
  auto parts = split(path);
  if (!parts) return std::unexpected(parts.error());
  auto dir = open_trusted_dir(parts->dir);
  if (!dir) return std::unexpected(dir.error());
  bool created = mkdirat(dir->get(), parts->name.c_str(), mode) == 0;
  if (!created && errno != EEXIST) return os_failure("cannot create", path);
  if (!created && !take_existing) {
    struct stat info {};
    if (fstatat(dir->get(), parts->name.c_str(), &info, AT_SYMLINK_NOFOLLOW) == 0 &&
        S_ISLNK(info.st_mode) && !trusted(dir->get())) {
      return refused(fmt::format(
          "refusing to use {}: it is a symbolic link in a directory that another user may write",
          path));
    }
    return {};
  }
  Fd made(openat(dir->get(), parts->name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (made.get() < 0) {
    if (errno == ELOOP || errno == ENOTDIR) {
      return refused(
          fmt::format("refusing to give {} away: it is not a directory but a link or "
                      "a file",
                      path));
    }
    return os_failure("cannot open", path);
  }
  if (geteuid() == 0 && fchown(made.get(), uid, gid) != 0) return os_failure("cannot chown", path);
  if (fchmod(made.get(), mode) != 0) return os_failure("cannot chmod", path);
  return {};
}

Result<std::string> trusted_program(const std::string& path) {
  std::error_code error;
  std::filesystem::path resolved = std::filesystem::canonical(path, error);
  if (error) return fail(ErrorCode::kNotFound, fmt::format("{}: {}", path, error.message()));
  auto untrusted = [](const struct stat& info) {
    bool owner_ok = info.st_uid == 0 || info.st_uid == geteuid();
    return !owner_ok || (info.st_mode & (S_IWGRP | S_IWOTH)) != 0;
  };
  struct stat info {};
  if (stat(resolved.c_str(), &info) != 0) return os_failure("cannot stat", resolved.string());
  if (!S_ISREG(info.st_mode) || (info.st_mode & S_IXUSR) == 0) {
    return refused(fmt::format("{} is not an executable file", resolved.string()));
  }
  if (untrusted(info)) {
    return refused(fmt::format(
        "{} may be changed by another user than root (owner uid {}, mode {:o}): not run",
        resolved.string(), info.st_uid, info.st_mode & 07777));
  }
  for (std::filesystem::path dir = resolved.parent_path();; dir = dir.parent_path()) {
    if (stat(dir.c_str(), &info) != 0) return os_failure("cannot stat", dir.string());
    if (untrusted(info)) {
      return refused(fmt::format(
          "{} is in {}, which another user than root may write (owner uid {}, mode {:o}): not "
          "run",
          resolved.string(), dir.string(), info.st_uid, info.st_mode & 07777));
    }
    if (dir == dir.root_path()) break;
  }
  return resolved.string();
}

}  // namespace tandem
