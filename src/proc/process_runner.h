// Running child processes (initdb, pg_ctl, pg_basebackup, pg_rewind) with a deadline, as the
// OS user that owns PostgreSQL, capturing what they print.
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"

namespace tandem {

struct ProcessSpec {
  std::string program;  // absolute path
  std::vector<std::string> args;
  // Added to a minimal environment (PATH, LANG=C, HOME/USER of the user it runs as).
  std::map<std::string, std::string> env;
  // Run as this OS user; requires tandem to be root or that user.
  std::optional<std::string> run_as;
  std::string working_dir = "/";
  std::string stdin_path = "/dev/null";
  std::chrono::milliseconds timeout{std::chrono::minutes(5)};
  // Let the child write its stderr to ours (a progress bar on a terminal) instead of capturing.
  bool stderr_to_terminal = false;
  // Called with each line of its output as it comes (without the newline; the last one too),
  // from the thread that runs it: a progress display. One that throws is called no more. With
  // it, ProcessResult::output keeps the output's last 64 KiB at least, not all of it.
  std::function<void(std::string_view line)> on_line;
  // Called with the child's pid (also its process group's) once it is started, from the thread
  // that runs it: what stops a server before its deadline (SupervisedProcess).
  std::function<void(int pid)> on_start;
  // Called once the child has exited, before it is reaped, from the same thread: until then its
  // pid (and its group's) cannot be another process's, so whoever may signal it by that pid
  // forgets it here, not after the run returns (SupervisedProcess: a stop in between signalled
  // a pid the system was free to give to another process).
  std::function<void(int pid)> on_exit;
};

struct ProcessResult {
  int exit_code = 0;   // 128 + signal number when killed by a signal
  std::string output;  // stdout and stderr, interleaved
};

// The seam for tests: everything that starts a process goes through a ProcessRunner.
class ProcessRunner {
 public:
  virtual ~ProcessRunner() = default;
  // Fails only when the process could not be started or missed its deadline (it is then
  // killed with its process group); a non-zero exit is a result, not an error.
  virtual Result<ProcessResult> run(const ProcessSpec& spec) = 0;
};

class SystemProcessRunner final : public ProcessRunner {
 public:
  Result<ProcessResult> run(const ProcessSpec& spec) override;
};

// The last non-empty line of a tool's output, which is where PostgreSQL's tools put the reason.
std::string last_line(std::string_view output);
// The line of a failed program's output that says why: its last error line (one holding
// "error:", "ERROR: [" (pgBackRest's), "FATAL:", "could not" or "No space left"), else its
// last line.
std::string failure_line(std::string_view output);

}  // namespace tandem
