// Real etcd for tests: one member, or a cluster of several, on addresses the test picks
// (loopback, or addresses inside network namespaces). Fast settings (heartbeat 100 ms, election
// 500 ms), so that etcd grants 1 s leases. Stopped and its data removed when the object goes.
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "child_process.h"

namespace tandem::testing {

struct EtcdMember {
  std::string name;
  std::string host;  // the address it listens on
  int client_port = 0;
  int peer_port = 0;
  std::string netns;  // run inside this network namespace; "" for this one

  std::string client_url() const;
  std::string peer_url() const;
};

class EtcdCluster {
 public:
  // Starts every member and waits (up to 20 s) until the cluster answers; check healthy().
  EtcdCluster(std::vector<EtcdMember> members, const std::string& work_dir);
  ~EtcdCluster();

  bool healthy() const { return healthy_; }
  std::vector<std::string> endpoints() const;
  const std::vector<EtcdMember>& members() const { return members_; }
  void stop(std::size_t member);
  void start(std::size_t member);
  bool wait_until_healthy(std::chrono::milliseconds timeout) const;

  // One member on 127.0.0.1, on free ports.
  static std::unique_ptr<EtcdCluster> single(const std::string& work_dir);

 private:
  bool wait_healthy(std::chrono::milliseconds timeout) const;

  std::vector<EtcdMember> members_;
  std::string work_dir_;
  std::vector<std::unique_ptr<ChildProcess>> processes_;
  bool healthy_ = false;
};

}  // namespace tandem::testing
