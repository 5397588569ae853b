// A program a test starts and must stop: killed (TERM, then KILL) and reaped when the object
// goes, even when the test fails half-way.
#pragma once

#include <sys/types.h>

#include <map>
#include <string>
#include <vector>

namespace tandem::testing {

struct ChildOptions {
  std::string program;
  std::vector<std::string> args;
  std::map<std::string, std::string> env;  // added to this process's environment
  std::string log_file;                    // stdout and stderr; empty: /dev/null
  // Descriptors handed to the child at these numbers: {child_fd, parent_fd}.
  std::vector<std::pair<int, int>> fds;
};

class ChildProcess {
 public:
  explicit ChildProcess(const ChildOptions& options);
  ~ChildProcess();
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;

  pid_t pid() const { return pid_; }
  bool running();
  void stop();

 private:
  pid_t pid_ = -1;
};

}  // namespace tandem::testing
