#include "bench/starver.h"

#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>

#include "local/local_agents.h"
#include "pg/postmaster.h"
#include "proc/detached.h"
#include "proc/os_user.h"

namespace tandem::bench {
namespace {

using std::chrono::milliseconds;

}  // namespace

BusyLoops::BusyLoops() {
  for (unsigned i = 0; i < std::max(2u, std::thread::hardware_concurrency()); ++i) {
    pid_t parent = getpid();
    pid_t child = fork();
    if (child == 0) {
      // Dies with the runner, however it ends (a crashed runner once left two spinning for 40
      // minutes, starving everything after it).
      prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (getppid() != parent) _exit(0);
      std::atomic<unsigned long> spin{0};
      while (true) spin.fetch_add(1, std::memory_order_relaxed);
    }
    if (child > 0) spinners_.push_back(child);
  }
}

BusyLoops::~BusyLoops() {
  for (pid_t child : spinners_) {
    kill(child, SIGKILL);
    waitpid(child, nullptr, 0);
  }
}

Starver::Starver(const ClusterConfig& config) : config_(config) {
  bursts_ = std::thread([this] {
    while (!stop_) {
      std::vector<pid_t> frozen = targets();
      for (pid_t pid : frozen) kill(pid, SIGSTOP);
      std::this_thread::sleep_for(milliseconds(300));
      {
        std::lock_guard lock(mutex_);
        for (pid_t pid : frozen) {
          if (!held_.contains(pid)) kill(pid, SIGCONT);
        }
      }
      std::this_thread::sleep_for(milliseconds(100));
    }
  });
}

void Starver::hold(pid_t pid) {
  std::lock_guard lock(mutex_);
  held_.insert(pid);
}

void Starver::release(pid_t pid) {
  std::lock_guard lock(mutex_);
  held_.erase(pid);
}

// Every agent, its watchdog, every postmaster and its children, but those held by a fault.
std::vector<pid_t> Starver::targets() const {
  std::vector<pid_t> found, parents;
  for (const NodeConfig& node : config_.nodes) {
    if (auto agent = running_agent(config_, node)) parents.push_back(*agent);
    if (auto postmaster = running_postmaster(node.data_dir)) parents.push_back(*postmaster);
  }
  found.insert(found.end(), parents.begin(), parents.end());
  for (pid_t parent : parents) {
    std::vector<pid_t> children = children_of(parent);
    found.insert(found.end(), children.begin(), children.end());
  }
  std::lock_guard lock(mutex_);
  std::erase_if(found, [&](pid_t pid) { return held_.contains(pid); });
  return found;
}

Starver::~Starver() {
  stop_ = true;
  bursts_.join();
  for (pid_t pid : targets()) kill(pid, SIGCONT);
}

}  // namespace tandem::bench
