#include "child_process.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <thread>

namespace tandem::testing {

ChildProcess::ChildProcess(const ChildOptions& options) {
  pid_ = fork();
  if (pid_ != 0) return;
  // The child: its own process group, so that stop() reaches whatever it starts; and killed
  // with the test process, should that die before its destructors run.
  setpgid(0, 0);
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  for (const auto& [key, value] : options.env) setenv(key.c_str(), value.c_str(), 1);
  int log = open(options.log_file.empty() ? "/dev/null" : options.log_file.c_str(),
                 O_WRONLY | O_CREAT | O_APPEND, 0644);
  if (log >= 0) {
    dup2(log, 1);
    dup2(log, 2);
  }
  // Moved out of the way first: a parent descriptor may have the number another one gets.
  std::vector<int> moved;
  for (const auto& [child_fd, parent_fd] : options.fds)
    moved.push_back(fcntl(parent_fd, F_DUPFD, 100));
  for (std::size_t index = 0; index < options.fds.size(); ++index) {
    dup2(moved[index], options.fds[index].first);  // dup2 clears FD_CLOEXEC on the new one
  }
  std::vector<char*> argv;
  argv.push_back(const_cast<char*>(options.program.c_str()));
  for (const std::string& arg : options.args) argv.push_back(const_cast<char*>(arg.c_str()));
  argv.push_back(nullptr);
  execvp(options.program.c_str(), argv.data());
  _exit(127);
}

ChildProcess::~ChildProcess() { stop(); }

bool ChildProcess::running() {
  if (pid_ <= 0) return false;
  int status = 0;
  if (waitpid(pid_, &status, WNOHANG) == pid_) {
    pid_ = -1;
    return false;
  }
  return true;
}

void ChildProcess::stop() {
  if (pid_ <= 0) return;
  kill(-pid_, SIGTERM);
  kill(pid_, SIGTERM);
  for (int tries = 0; tries < 100; ++tries) {
    if (!running()) return;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  kill(-pid_, SIGKILL);
  kill(pid_, SIGKILL);
  waitpid(pid_, nullptr, 0);
  pid_ = -1;
}

}  // namespace tandem::testing
