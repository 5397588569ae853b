#include "pg/postmaster.h"

#include <signal.h>
#include <sys/stat.h>

#include <cctype>
#include <cerrno>
#include <fstream>
#include <vector>

#include "proc/detached.h"
#include "proc/os_user.h"

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

}  // namespace tandem
