#include "test_network.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <sched.h>
#include <signal.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <sstream>
#include <thread>

#include "proc/process_runner.h"

namespace tandem::testing {

namespace {

// Namespaces a test run left behind when it was killed (its destructors never ran): tdm<pid>-*
// of a pid that is gone. Whatever still runs inside is killed first.
void remove_stale_namespaces() {
  std::error_code error;
  for (const auto& entry : std::filesystem::directory_iterator("/var/run/netns", error)) {
    std::string name = entry.path().filename().string();
    if (!name.starts_with("tdm")) continue;
    int owner = std::atoi(name.c_str() + 3);
    if (owner <= 0 || kill(owner, 0) == 0) continue;
    SystemProcessRunner runner;
    auto pids = runner.run({.program = "/usr/sbin/ip", .args = {"netns", "pids", name}});
    if (pids) {
      std::istringstream words(pids->output);
      int pid;
      while (words >> pid) kill(pid, SIGKILL);
    }
    (void)runner.run({.program = "/usr/sbin/ip", .args = {"netns", "del", name}});
  }
}

}  // namespace

TestNetwork::TestNetwork(int hosts) {
  remove_stale_namespaces();
  int id = static_cast<int>(getpid() % 250) + 1;
  prefix_ = fmt::format("tdm{}", getpid());
  subnet_ = fmt::format("10.213.{}.", id);
  switch_ = prefix_ + "-sw";
  auto made = [&]() -> Status {
    if (auto ok = ip({"netns", "add", switch_}); !ok) return ok;
    if (auto ok = ip({"-n", switch_, "link", "add", "br0", "type", "bridge"}); !ok) return ok;
    if (auto ok = ip({"-n", switch_, "link", "set", "br0", "up"}); !ok) return ok;
    for (int host = 0; host < hosts; ++host) {
      std::string netns = fmt::format("{}-h{}", prefix_, host + 1);
      if (auto ok = ip({"netns", "add", netns}); !ok) return ok;
      hosts_.push_back(netns);
      std::string port = fmt::format("p{}", host + 1);
      if (auto ok = ip({"-n", switch_, "link", "add", port, "type", "veth", "peer", "name", "eth0",
                        "netns", netns});
          !ok) {
        return ok;
      }
      for (const auto& args : std::vector<std::vector<std::string>>{
               {"-n", switch_, "link", "set", port, "master", "br0"},
               {"-n", switch_, "link", "set", port, "up"},
               {"-n", netns, "addr", "add", address(host) + "/24", "dev", "eth0"},
               {"-n", netns, "link", "set", "eth0", "up"},
               {"-n", netns, "link", "set", "lo", "up"}}) {
        if (auto ok = ip(args); !ok) return ok;
      }
    }
    return {};
  }();
  if (!made) error_ = made.error().message;
}

TestNetwork::~TestNetwork() {
  for (const std::string& netns : hosts_) (void)ip({"netns", "del", netns});
  (void)ip({"netns", "del", switch_});
}

std::string TestNetwork::address(int host) const { return subnet_ + std::to_string(11 + host); }

Status TestNetwork::cut(int host) {
  return ip({"-n", hosts_[host], "link", "set", "eth0", "down"});
}

Status TestNetwork::heal(int host) { return ip({"-n", hosts_[host], "link", "set", "eth0", "up"}); }

Status TestNetwork::block(int host, const std::vector<int>& unreachable) {
  for (int other : unreachable) {
    if (auto ok = ip({"-n", hosts_[host], "route", "add", "blackhole", address(other) + "/32"});
        !ok) {
      return ok;
    }
  }
  return {};
}

Status TestNetwork::unblock(int host, const std::vector<int>& unreachable) {
  for (int other : unreachable) {
    if (auto ok = ip({"-n", hosts_[host], "route", "del", "blackhole", address(other) + "/32"});
        !ok) {
      return ok;
    }
  }
  return {};
}

// The servers the tests run listen at or below it: PostgreSQL 5432, etcd 2379-2380, the agents'
// API 8008 (multihost_fixture.h).
constexpr int kHighestServerPort = 8008;

Status TestNetwork::drop_calls(int host, const std::vector<int>& to) {
  std::string addresses;
  for (int other : to) addresses += (addresses.empty() ? "" : ", ") + address(other);
  const std::string table = "tandem_calls";
  // A connection's opener sends from an ephemeral port, every server here (PostgreSQL, the
  // agents' API, etcd) listens below them: conntrack would guess the direction of connections
  // opened before the rule from the first packet it sees. The range is the namespace's own.
  SystemProcessRunner runner;
  auto range = runner.run(
      {.program = "/usr/sbin/ip",
       .args = {"netns", "exec", hosts_[host], "cat", "/proc/sys/net/ipv4/ip_local_port_range"},
       .timeout = std::chrono::seconds(10)});
  std::string first_ephemeral;
  if (!range || range->exit_code != 0 || !(std::istringstream(range->output) >> first_ephemeral) ||
      std::atoi(first_ephemeral.c_str()) <= kHighestServerPort) {
    return fail(ErrorCode::kFailed, "cannot read the ephemeral ports of " + hosts_[host]);
  }
  for (const auto& command : std::vector<std::vector<std::string>>{
           {"add", "table", "inet", table},
           {"add", "chain", "inet", table, "out", "{ type filter hook output priority 0 ; }"},
           {"add", "rule", "inet", table, "out", "ip", "daddr", "{ " + addresses + " }", "tcp",
            "sport", ">=", first_ephemeral, "drop"}}) {
    std::vector<std::string> args = {"netns", "exec", hosts_[host], "/usr/sbin/nft"};
    args.insert(args.end(), command.begin(), command.end());
    if (auto ok = ip(args); !ok) return ok;
  }
  return {};
}

Status TestNetwork::restore_calls(int host) {
  return ip(
      {"netns", "exec", hosts_[host], "/usr/sbin/nft", "delete", "table", "inet", "tandem_calls"});
}

Status TestNetwork::ip(const std::vector<std::string>& args) {
  SystemProcessRunner runner;
  auto result =
      runner.run({.program = "/usr/sbin/ip", .args = args, .timeout = std::chrono::seconds(10)});
  if (!result) return std::unexpected(result.error());
  if (result->exit_code != 0) {
    std::string command = "ip";
    for (const std::string& arg : args) command += " " + arg;
    return fail(ErrorCode::kFailed, fmt::format("{}: {}", command, result->output));
  }
  return {};
}

bool run_in_netns(const std::string& netns, const std::function<void()>& work) {
  bool entered = false;
  std::thread thread([&] {
    int fd = open(("/var/run/netns/" + netns).c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return;
    entered = setns(fd, CLONE_NEWNET) == 0;
    close(fd);
    if (entered) work();
  });
  thread.join();
  return entered;
}

}  // namespace tandem::testing
