#include "proc/detached.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

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
  return std::filesystem::read_symlink("/proc/self/exe", error).string();
}

}  // namespace tandem
