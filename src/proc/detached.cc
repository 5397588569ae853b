#include "proc/detached.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include "proc/safe_file.h"

namespace tandem {

Result<pid_t> spawn_detached(const std::string& program, const std::vector<std::string>& args,
                             const std::string& log_file) {
  auto opened = open_file_nofollow(log_file, O_WRONLY | O_CREAT | O_APPEND, 0644);
  if (!opened) return std::unexpected(opened.error());
  int log = opened->release();
  std::vector<std::string> all = {program};
  all.insert(all.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (std::string& arg : all) argv.push_back(arg.data());
  argv.push_back(nullptr);
  pid_t pid = fork();
  if (pid < 0) {
    close(log);
    return fail(ErrorCode::kFailed, fmt::format("fork: {}", strerror(errno)));
  }
  if (pid == 0) {
    setsid();
    int input = open("/dev/null", O_RDONLY);
    dup2(input, STDIN_FILENO);
    dup2(log, STDOUT_FILENO);
    dup2(log, STDERR_FILENO);
    close_range(3, ~0U, 0);
    execv(program.c_str(), argv.data());
    _exit(127);
  }
  close(log);
  return pid;
}

std::string own_executable() {
  std::error_code error;
  std::string path = std::filesystem::read_symlink("/proc/self/exe", error).string();
  // Replaced under the running process (a package upgrade): the path names the new program.
  constexpr std::string_view kDeleted = " (deleted)";
  if (path.ends_with(kDeleted)) path.resize(path.size() - kDeleted.size());
  return path;
}

namespace {

// Each running process under its parent, from /proc/PID/stat ("pid (comm) state ppid ...").
std::multimap<pid_t, pid_t> children_by_parent() {
  std::multimap<pid_t, pid_t> children;
  std::error_code error;
  for (const auto& entry : std::filesystem::directory_iterator("/proc", error)) {
    std::string name = entry.path().filename().string();
    if (name.empty() || name.find_first_not_of("0123456789") != std::string::npos) continue;
    std::ifstream stat(entry.path() / "stat");
    std::string line;
    if (!std::getline(stat, line)) continue;
    std::size_t close = line.rfind(')');
    if (close == std::string::npos) continue;
    std::istringstream rest(line.substr(close + 1));
    std::string state;
    pid_t parent = 0;
    if (rest >> state >> parent) children.emplace(parent, std::stoi(name));
  }
  return children;
}

}  // namespace

std::vector<pid_t> children_of(pid_t parent) {
  std::multimap<pid_t, pid_t> children = children_by_parent();
  std::vector<pid_t> found;
  auto [first, last] = children.equal_range(parent);
  for (auto it = first; it != last; ++it) found.push_back(it->second);
  return found;
}

std::vector<pid_t> descendants_of(pid_t pid) {
  std::multimap<pid_t, pid_t> children = children_by_parent();
  std::vector<pid_t> found;
  std::vector<pid_t> todo = {pid};
  while (!todo.empty()) {
    pid_t next = todo.back();
    todo.pop_back();
    auto [first, last] = children.equal_range(next);
    for (auto it = first; it != last; ++it) {
      found.push_back(it->second);
      todo.push_back(it->second);
    }
  }
  return found;
}

}  // namespace tandem
