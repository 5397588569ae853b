#include "pg/postmaster.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <vector>

#include "proc/detached.h"
#include "proc/os_user.h"
#include "proc/safe_file.h"

namespace tandem {
namespace {

// True when the process runs PostgreSQL on `data_dir`: its command line holds "-D data_dir".
// A stale postmaster.pid names a pid the kernel may since have given to anything else.
// PostgreSQL refuses to run as root: a root process is never the postmaster, whatever the
// postmaster.pid that the OS user can write says. So root never signals a root process of the OS
// user's choosing.
bool runs_on(pid_t pid, const std::string& data_dir) {
  struct stat owner {};
  if (stat(("/proc/" + std::to_string(pid)).c_str(), &owner) != 0 || owner.st_uid == 0) {
    return false;
  }
  // Gone meanwhile: nothing to read, not an exception.
  std::string raw = read_file("/proc/" + std::to_string(pid) + "/cmdline").value_or("");
  std::vector<std::string> args;
  std::string current;
  for (char c : raw) {
    if (c == '\0') {
      args.push_back(current);
      current.clear();
    } else {
      current += c;
    }
  }
  for (std::size_t i = 0; i + 1 < args.size(); ++i) {
    if (args[i] == "-D" && args[i + 1] == data_dir) return true;
  }
  return false;
}

}  // namespace

bool process_alive(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  // "pid (comm) state ...": comm may hold spaces, so read up to the last ')'.
  std::string line;
  if (!std::getline(in, line)) return false;
  std::size_t close = line.rfind(')');
  if (close == std::string::npos || close + 2 >= line.size()) return false;
  char code = line[close + 2];
  return code != 'Z' && code != 'X';
}

std::optional<std::string> waiting_segment(std::string title) {
  constexpr std::string_view kProgram = "postgres: ";
  constexpr std::string_view kWaiting = "startup waiting for ";
  while (!title.empty() && (title.back() == '\0' || title.back() == ' ')) title.pop_back();
  if (!title.starts_with(kProgram) || title.size() < kWaiting.size() + 24) return std::nullopt;
  std::string segment = title.substr(title.size() - 24);
  std::string before = title.substr(0, title.size() - 24);
  if (!before.ends_with(kWaiting)) return std::nullopt;
  std::string prefix =
      before.substr(kProgram.size(), before.size() - kProgram.size() - kWaiting.size());
  if (!prefix.empty() && !prefix.ends_with(": ")) return std::nullopt;  // the cluster's name
  for (char c : segment) {
    if (!std::isxdigit(static_cast<unsigned char>(c))) return std::nullopt;
  }
  return segment;
}

std::optional<std::string> recovery_waiting_for(pid_t postmaster) {
  for (pid_t child : children_of(postmaster)) {
    std::string cmdline = read_file("/proc/" + std::to_string(child) + "/cmdline").value_or("");
    if (auto segment = waiting_segment(cmdline)) return segment;
  }
  return std::nullopt;
}

std::optional<pid_t> running_postmaster(const std::string& data_dir) {
  std::ifstream pid_file(data_dir + "/postmaster.pid");
  pid_t pid = 0;
  if (!(pid_file >> pid) || pid <= 0) return std::nullopt;
  if (!process_alive(pid)) return std::nullopt;
  if (!runs_on(pid, data_dir)) return std::nullopt;
  return pid;
}

Result<pid_t> spawn_postmaster(const std::string& postgres, const std::string& data_dir,
                               const std::string& log_file, const OsUser& os_user,
                               bool die_with_caller) {
  // The log directory belongs to the OS user: a link planted at the log is refused, not followed.
  auto opened = open_file_nofollow(log_file, O_WRONLY | O_CREAT | O_APPEND, 0640);
  if (!opened) return fail_with_context(opened.error(), "PostgreSQL's log");
  int log = opened->release();
  if (running_as_root() && fchown(log, os_user.uid, os_user.gid) != 0) {
    close(log);
    return fail(ErrorCode::kFailed,
                fmt::format("cannot give {} to {}: {}", log_file, os_user.name, strerror(errno)));
  }
  std::string program = postgres;
  std::string directory = data_dir;
  std::string home = "HOME=" + os_user.home;
  char* argv[] = {program.data(), const_cast<char*>("-D"), directory.data(), nullptr};
  char* envp[] = {const_cast<char*>("PATH=/usr/bin:/bin"), const_cast<char*>("LANG=C.UTF-8"),
                  home.data(), nullptr};
  pid_t parent = getpid();
  pid_t pid = fork();
  if (pid < 0) {
    close(log);
    return fail(ErrorCode::kFailed, fmt::format("fork: {}", strerror(errno)));
  }
  if (pid == 0) {
    setsid();  // no terminal signals: only tandem decides when it stops
    int input = open("/dev/null", O_RDONLY);
    dup2(input, STDIN_FILENO);
    dup2(log, STDOUT_FILENO);
    dup2(log, STDERR_FILENO);
    close_range(3, ~0U, 0);
    if (running_as_root() && !become_os_user(os_user)) _exit(126);
    if (die_with_caller) {
      // After setuid, which clears it. If the caller is already gone, do not start at all.
      prctl(PR_SET_PDEATHSIG, SIGQUIT);
      if (getppid() != parent) _exit(125);
    }
    execve(program.c_str(), argv, envp);
    _exit(127);
  }
  close(log);
  return pid;
}

}  // namespace tandem
