#include "etcd_server.h"

#include <fmt/format.h>
#include <httplib.h>

#include <filesystem>
#include <thread>

#include "proc/ports.h"
#include "test_network.h"

namespace tandem::testing {

std::string EtcdMember::client_url() const {
  return fmt::format("http://{}:{}", host, client_port);
}
std::string EtcdMember::peer_url() const { return fmt::format("http://{}:{}", host, peer_port); }

EtcdCluster::EtcdCluster(std::vector<EtcdMember> members, const std::string& work_dir)
    : members_(std::move(members)), work_dir_(work_dir) {
  processes_.resize(members_.size());
  for (std::size_t index = 0; index < members_.size(); ++index) start(index);
  healthy_ = wait_healthy(std::chrono::seconds(20));
}

EtcdCluster::~EtcdCluster() {
  processes_.clear();
  for (const EtcdMember& member : members_) {
    std::error_code error;
    std::filesystem::remove_all(work_dir_ + "/etcd-" + member.name, error);
  }
}

void EtcdCluster::start(std::size_t index) {
  const EtcdMember& member = members_[index];
  std::string initial;
  for (const EtcdMember& each : members_) {
    initial += initial.empty() ? "" : ",";
    initial += each.name + "=" + each.peer_url();
  }
  std::vector<std::string> args = {"--name",
                                   member.name,
                                   "--data-dir",
                                   work_dir_ + "/etcd-" + member.name,
                                   "--listen-client-urls",
                                   member.client_url(),
                                   "--advertise-client-urls",
                                   member.client_url(),
                                   "--listen-peer-urls",
                                   member.peer_url(),
                                   "--initial-advertise-peer-urls",
                                   member.peer_url(),
                                   "--initial-cluster",
                                   initial,
                                   "--initial-cluster-state",
                                   "new",
                                   "--initial-cluster-token",
                                   "tandem-test",
                                   "--heartbeat-interval",
                                   "100",
                                   "--election-timeout",
                                   "500",
                                   "--log-outputs",
                                   "stderr"};
  ChildOptions options{
      .program = "etcd", .args = args, .log_file = work_dir_ + "/etcd-" + member.name + ".log"};
  if (!member.netns.empty()) {
    options.program = "ip";
    options.args = {"netns", "exec", member.netns, "etcd"};
    options.args.insert(options.args.end(), args.begin(), args.end());
  }
  processes_[index] = std::make_unique<ChildProcess>(options);
}

void EtcdCluster::stop(std::size_t index) { processes_[index].reset(); }

bool EtcdCluster::wait_until_healthy(std::chrono::milliseconds timeout) const {
  return wait_healthy(timeout);
}

std::vector<std::string> EtcdCluster::endpoints() const {
  std::vector<std::string> urls;
  for (const EtcdMember& member : members_) urls.push_back(member.client_url());
  return urls;
}

bool EtcdCluster::wait_healthy(std::chrono::milliseconds timeout) const {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    bool all = true;
    for (const EtcdMember& member : members_) {
      if (!member.netns.empty()) continue;  // unreachable from here; the tests check through hosts
      httplib::Client client(member.client_url());
      client.set_connection_timeout(std::chrono::milliseconds(200));
      auto reply = client.Get("/health");
      all =
          all && reply && reply->status == 200 && reply->body.find("\"true\"") != std::string::npos;
    }
    if (all) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return false;
}

std::unique_ptr<EtcdCluster> EtcdCluster::single(const std::string& work_dir) {
  int port = find_free_ports("127.0.0.1", 2).value_or(0);
  return std::make_unique<EtcdCluster>(
      std::vector<EtcdMember>{
          {.name = "e1", .host = "127.0.0.1", .client_port = port, .peer_port = port + 1}},
      work_dir);
}

}  // namespace tandem::testing
