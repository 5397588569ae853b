#include "proc/process_runner.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <grp.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <spdlog/spdlog.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <thread>

#include "proc/os_user.h"

namespace tandem {
namespace {

using Clock = std::chrono::steady_clock;

std::vector<std::string> child_environment(const ProcessSpec& spec, const OsUser* user) {
  std::map<std::string, std::string> env = {
      {"PATH", "/usr/local/bin:/usr/bin:/bin"},
      {"LANG", "C.UTF-8"},
  };
  if (user != nullptr) {
    env["HOME"] = user->home;
    env["USER"] = user->name;
    env["LOGNAME"] = user->name;
  }
  if (const char* tz = getenv("TZ")) env["TZ"] = tz;
  for (const auto& [key, value] : spec.env) env[key] = value;
  std::vector<std::string> entries;
  for (const auto& [key, value] : env) entries.push_back(key + "=" + value);
  return entries;
}

// Runs in the child between fork and exec: only async-signal-safe calls, then _exit on failure.
[[noreturn]] void exec_child(const ProcessSpec& spec, const OsUser* user, int output_fd,
                             char* const* argv, char* const* envp, pid_t parent) {
  setpgid(0, 0);  // its own process group, so a timeout kills its children too
  int input = open(spec.stdin_path.c_str(), O_RDONLY);
  if (input < 0) _exit(126);
  dup2(input, STDIN_FILENO);
  dup2(output_fd, STDOUT_FILENO);
  if (!spec.stderr_to_terminal) dup2(output_fd, STDERR_FILENO);
  close_range(3, ~0U, 0);
  if (user != nullptr) {
    if (!become_os_user(*user)) _exit(126);
  }
  // The child dies with tandem (`kill -9` of `tandem clone` must not leave pg_basebackup
  // copying). Set after setuid, which clears it; if tandem is already gone, do not start at all.
  prctl(PR_SET_PDEATHSIG, SIGTERM);
  if (getppid() != parent) _exit(125);
  if (chdir(spec.working_dir.c_str()) != 0) _exit(126);
  execve(spec.program.c_str(), argv, envp);
  _exit(127);
}

// What a child's output goes through as it comes: each line to the spec's on_line (one that
// throws hears nothing more: the child is still reaped), and with one, only the last 64 KiB
// kept in the result (pgBackRest's detail log is a line per file).
class LineFeed {
 public:
  LineFeed(const std::function<void(std::string_view)>& on_line, std::string& output)
      : on_line_(on_line), output_(output) {}
  void add(const char* data, std::size_t size) {
    output_.append(data, size);
    while (on_line_) {
      std::size_t end = output_.find('\n', next_);
      if (end == std::string::npos) break;
      pass(std::string_view(output_).substr(next_, end - next_));
      next_ = end + 1;
    }
    if (on_line_ && next_ > kKept * 4) {
      std::size_t cut = next_ - kKept;
      output_.erase(0, cut);
      next_ -= cut;
    }
  }
  void end() {  // a last line without a newline
    if (on_line_ && next_ < output_.size()) pass(std::string_view(output_).substr(next_));
    next_ = output_.size();
  }

 private:
  static constexpr std::size_t kKept = 64 * 1024;
  void pass(std::string_view line) {
    try {
      on_line_(line);
    } catch (...) {
      on_line_ = nullptr;
    }
  }
  std::function<void(std::string_view)> on_line_;
  std::string& output_;
  std::size_t next_ = 0;
};

// Reads the child's output until it closes its end; kills the group when the deadline passes.
bool drain(int fd, pid_t pid, Clock::time_point deadline, std::string& output,
           const std::function<void(std::string_view)>& on_line) {
  char buffer[4096];
  LineFeed feed(on_line, output);
  while (true) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    if (left.count() <= 0) {
      kill(-pid, SIGKILL);
      return false;
    }
    pollfd entry{fd, POLLIN, 0};
    int ready = poll(&entry, 1, static_cast<int>(std::min<long>(left.count(), 1000)));
    if (ready < 0 && errno != EINTR) return true;
    if (ready <= 0) continue;
    ssize_t count = read(fd, buffer, sizeof(buffer));
    if (count < 0 && errno == EINTR) continue;
    if (count <= 0) {
      feed.end();
      return true;
    }
    feed.add(buffer, static_cast<std::size_t>(count));
  }
}

// Its output closed is not its end (a script that sends it to a file, then hangs): waits for
// the child's exit until the deadline, then kills its process group. False when it did. The
// child is left unreaped (WNOWAIT): see forget_and_reap.
bool wait_exit(pid_t pid, Clock::time_point deadline) {
  while (true) {
    siginfo_t info{};
    int waited = waitid(P_PID, static_cast<id_t>(pid), &info, WEXITED | WNOHANG | WNOWAIT);
    if (waited == 0 && info.si_pid == pid) return true;
    if (waited < 0 && errno != EINTR) return true;
    if (Clock::now() >= deadline) {
      kill(-pid, SIGKILL);
      return false;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
}

// Once the child has ended (killed at its deadline, it is waited for), on_exit hears of it while
// its pid is still its own, then it is reaped.
void forget_and_reap(pid_t pid, int& status, const std::function<void(int)>& on_exit) {
  siginfo_t info{};
  while (waitid(P_PID, static_cast<id_t>(pid), &info, WEXITED | WNOWAIT) < 0 && errno == EINTR) {
  }
  if (on_exit) on_exit(pid);
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
}

}  // namespace

Result<ProcessResult> SystemProcessRunner::run(const ProcessSpec& spec) {
  std::optional<OsUser> user;
  if (spec.run_as) {
    auto found = lookup_os_user(*spec.run_as);
    if (!found) return std::unexpected(found.error());
    if (running_as_root()) {
      user = *found;
    } else if (getuid() != found->uid) {
      return fail(ErrorCode::kPermissionDenied,
                  fmt::format("{} must run as OS user {}: start tandem as root or as {}",
                              spec.program, found->name, found->name));
    }
  }
  std::vector<std::string> args = {spec.program};
  args.insert(args.end(), spec.args.begin(), spec.args.end());
  std::vector<std::string> env = child_environment(spec, user ? &*user : nullptr);
  std::vector<char*> argv, envp;
  for (std::string& arg : args) argv.push_back(arg.data());
  argv.push_back(nullptr);
  for (std::string& entry : env) envp.push_back(entry.data());
  envp.push_back(nullptr);

  spdlog::debug("running {}{}", fmt::join(args, " "),
                spec.run_as ? fmt::format(" as {}", *spec.run_as) : "");
  int pipe_fds[2];
  if (pipe2(pipe_fds, O_CLOEXEC) != 0) {
    return fail(ErrorCode::kFailed, fmt::format("pipe: {}", std::strerror(errno)));
  }
  pid_t parent = getpid();
  pid_t pid = fork();
  if (pid < 0) {
    close(pipe_fds[0]);
    close(pipe_fds[1]);
    return fail(ErrorCode::kFailed, fmt::format("fork: {}", std::strerror(errno)));
  }
  if (pid == 0)
    exec_child(spec, user ? &*user : nullptr, pipe_fds[1], argv.data(), envp.data(), parent);
  close(pipe_fds[1]);
  // Its own group from here on, whichever of the two runs first: a kill of the group right
  // after on_start must find it (review: the child's own setpgid could come later).
  setpgid(pid, pid);
  if (spec.on_start) spec.on_start(pid);

  ProcessResult result;
  auto deadline = Clock::now() + spec.timeout;
  bool in_time = drain(pipe_fds[0], pid, deadline, result.output, spec.on_line);
  close(pipe_fds[0]);
  int status = 0;
  if (in_time) in_time = wait_exit(pid, deadline);
  forget_and_reap(pid, status, spec.on_exit);
  if (!in_time) {
    return fail(
        ErrorCode::kTimeout,
        fmt::format("{} did not finish within {} s and was killed", spec.program,
                    std::chrono::duration_cast<std::chrono::seconds>(spec.timeout).count()));
  }
  if (WIFEXITED(status)) {
    result.exit_code = WEXITSTATUS(status);
  } else if (WIFSIGNALED(status)) {
    result.exit_code = 128 + WTERMSIG(status);
  }
  if (result.exit_code == 127) {
    return fail(ErrorCode::kNotFound, fmt::format("cannot execute {}", spec.program));
  }
  if (result.exit_code == 126 && result.output.empty()) {
    return fail(ErrorCode::kPermissionDenied,
                fmt::format("cannot start {} (as user {}, in {})", spec.program,
                            spec.run_as.value_or("tandem's"), spec.working_dir));
  }
  return result;
}

std::string last_line(std::string_view output) {
  while (!output.empty() &&
         (output.back() == '\n' || output.back() == '\r' || output.back() == ' ')) {
    output.remove_suffix(1);
  }
  std::size_t newline = output.find_last_of("\r\n");
  return std::string(newline == std::string_view::npos ? output : output.substr(newline + 1));
}

}  // namespace tandem

namespace tandem {

std::string failure_line(std::string_view output) {
  // initdb and pg_basebackup end with what they cleaned up ("removing contents of data
  // directory"), after the line that says what went wrong. A full disk is named whatever
  // follows it (pg_basebackup's last error is then "background process terminated").
  std::string found;
  if (std::size_t full = output.find("No space left on device"); full != std::string_view::npos) {
    std::size_t begin = output.rfind('\n', full);
    begin = begin == std::string_view::npos ? 0 : begin + 1;
    std::size_t end = output.find('\n', full);
    found = std::string(output.substr(begin, end == std::string_view::npos ? end : end - begin));
    while (!found.empty() && (found.back() == '\r' || found.back() == ' ')) found.pop_back();
    return found;
  }
  std::size_t start = 0;
  while (start < output.size()) {
    std::size_t end = output.find('\n', start);
    if (end == std::string_view::npos) end = output.size();
    std::string_view line = output.substr(start, end - start);
    for (std::string_view mark : {"error:", "ERROR: [", "FATAL:", "could not", "No space left"}) {
      if (line.find(mark) != std::string_view::npos) {
        found = std::string(line);
        break;
      }
    }
    start = end + 1;
  }
  while (!found.empty() && (found.back() == '\r' || found.back() == ' ')) found.pop_back();
  return found.empty() ? last_line(output) : found;
}

}  // namespace tandem
