// tandem-watchdog: the fencing watchdog as a program of its own, exec'd by the agent right after
// it forks (agent/fencing_watchdog.h). Linked against libc alone, it costs about a tenth of
// the memory a plain fork of the agent did (issue 19.2): a fork kept its own copy of every page
// of the agent's heap and of its libraries' data that either process wrote.
//
//   tandem-watchdog DEADLINE_MS fast|immediate PARENT_PID
//
// The page it shares with the agent is file descriptor 3 (a memfd), laid out as this build's
// WatchdogShared says (kWatchdogLayout). Started by hand, or by a process that is not its
// parent, or for an agent of another build, it exits at once, and the agent runs the loop in a
// fork of its own instead (it waits for WatchdogShared::running).
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>

#include "proc/fencing_loop.h"

namespace {

constexpr int kSharedFd = 3;

bool parse_positive(const char* text, long& value) {
  char* end = nullptr;
  value = std::strtol(text, &end, 10);
  return end != text && *end == '\0' && value > 0;
}

}  // namespace

int main(int argc, char** argv) {
  long deadline_ms = 0, parent = 0;
  if (argc != 4 || !parse_positive(argv[1], deadline_ms) || !parse_positive(argv[3], parent) ||
      (std::strcmp(argv[2], "fast") != 0 && std::strcmp(argv[2], "immediate") != 0)) {
    static const char kUsage[] =
        "tandem-watchdog: run by the tandem agent only (DEADLINE_MS fast|immediate PARENT_PID)\n";
    (void)!write(STDERR_FILENO, kUsage, sizeof(kUsage) - 1);
    return 2;
  }
  // The agent set PR_SET_PDEATHSIG before the exec (it survives it); an agent gone meanwhile
  // left this process to another parent.
  if (getppid() != static_cast<pid_t>(parent)) return 0;
  struct stat shared_file {};
  if (fstat(kSharedFd, &shared_file) != 0 ||
      shared_file.st_size < static_cast<off_t>(sizeof(tandem::WatchdogShared))) {
    return 1;
  }
  void* memory = mmap(nullptr, sizeof(tandem::WatchdogShared), PROT_READ | PROT_WRITE, MAP_SHARED,
                      kSharedFd, 0);
  if (memory == MAP_FAILED) return 1;
  close(kSharedFd);
  auto& shared = *static_cast<tandem::WatchdogShared*>(memory);
  if (shared.layout.load() != tandem::kWatchdogLayout) return 1;  // another build's agent
  prctl(PR_SET_NAME, "tandem-watchdog");
  tandem::run_fencing_loop(shared, deadline_ms, std::strcmp(argv[2], "fast") == 0);
}
