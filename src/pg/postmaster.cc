#include "pg/postmaster.h"

#include <signal.h>

#include <cerrno>
#include <fstream>

namespace tandem {

std::optional<pid_t> running_postmaster(const std::string& data_dir) {
  std::ifstream pid_file(data_dir + "/postmaster.pid");
  pid_t pid = 0;
  if (!(pid_file >> pid) || pid <= 0) return std::nullopt;
  if (kill(pid, 0) != 0 && errno == ESRCH) return std::nullopt;
  return pid;
}

}  // namespace tandem
