#include "proc/os_user.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <grp.h>
#include <pwd.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <vector>

namespace tandem {
namespace {

Status os_error(std::string_view what, const std::string& path) {
  return fail(errno == EACCES ? ErrorCode::kPermissionDenied : ErrorCode::kFailed,
              fmt::format("{} {}: {}", what, path, std::strerror(errno)));
}

}  // namespace

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
  return OsUser{name, found->pw_uid, found->pw_gid, found->pw_dir ? found->pw_dir : "/"};
}

bool running_as_root() { return geteuid() == 0; }

Status ensure_owned_dir(const std::string& path, const OsUser& owner, mode_t mode,
                        bool take_existing) {
  std::error_code error;
  bool created = std::filesystem::create_directories(path, error);
  if (error) {
    return fail(ErrorCode::kFailed, fmt::format("cannot create {}: {}", path, error.message()));
  }
  if (!created && !take_existing) return {};
  if (running_as_root() && chown(path.c_str(), owner.uid, owner.gid) != 0) {
    return os_error("cannot give to " + owner.name, path);
  }
  if (chmod(path.c_str(), mode) != 0) return os_error("cannot chmod", path);
  return {};
}

Status write_owned_file(const std::string& path, std::string_view content, const OsUser& owner,
                        mode_t mode) {
  std::string temporary = path + ".tmp";
  int fd = open(temporary.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
  if (fd < 0) return os_error("cannot write", temporary);
  bool written =
      ::write(fd, content.data(), content.size()) == static_cast<ssize_t>(content.size());
  bool owned = !running_as_root() || fchown(fd, owner.uid, owner.gid) == 0;
  bool moded = fchmod(fd, mode) == 0;
  bool synced = fsync(fd) == 0;
  close(fd);
  if (!written || !owned || !moded || !synced || rename(temporary.c_str(), path.c_str()) != 0) {
    Status error = os_error("cannot write", path);
    unlink(temporary.c_str());
    return error;
  }
  return {};
}

Result<std::string> read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return fail(errno == ENOENT ? ErrorCode::kNotFound : ErrorCode::kFailed,
                fmt::format("cannot read {}: {}", path, std::strerror(errno)));
  }
  std::ostringstream content;
  content << in.rdbuf();
  return content.str();
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
    if (initgroups(owner.name.c_str(), owner.gid) != 0 || setgid(owner.gid) != 0 ||
        setuid(owner.uid) != 0) {
      _exit(2);
    }
    _exit(access(existing.c_str(), mode) == 0 ? 0 : 1);
  }
  int status = 0;
  if (pid < 0 || waitpid(pid, &status, 0) < 0) return false;
  return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

}  // namespace tandem
