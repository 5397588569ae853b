#include "agent/peer_waker.h"

#include <httplib.h>

#include <future>

namespace tandem {

bool HttpPeerWaker::wake_one(const std::string& node) const {
  const NodeConfig* peer = config_.find_node(node);
  if (peer == nullptr || peer->api_port == 0) return false;
  httplib::Client client(api_url(config_, *peer));
  client.enable_server_certificate_verification(false);  // nothing secret is sent
  constexpr std::chrono::milliseconds kTimeout{50};
  client.set_connection_timeout(kTimeout);
  client.set_read_timeout(kTimeout);
  client.set_write_timeout(kTimeout);
  auto reply = client.Post("/wake", "", "text/plain");
  return reply && reply->status == 200;
}

std::vector<std::string> HttpPeerWaker::wake(const std::vector<std::string>& nodes) {
  std::vector<std::future<bool>> replies;
  replies.reserve(nodes.size());
  for (std::size_t i = 0; i < nodes.size(); ++i) {
    replies.push_back(std::async(std::launch::async, [this, &nodes, i] {
      return wake_one(nodes[i]) || (i == 0 && wake_one(nodes[i]));
    }));
  }
  std::vector<std::string> woken;
  for (std::size_t i = 0; i < nodes.size(); ++i) {
    if (replies[i].get()) woken.push_back(nodes[i]);
  }
  return woken;
}

void wake_agents(const ClusterConfig& config, const std::string& except, const std::string& first) {
  if (config.on_several_machines()) return;
  std::vector<std::string> nodes;
  if (!first.empty() && first != except) nodes.push_back(first);
  for (const NodeConfig& node : config.nodes) {
    if (node.name != except && node.name != first) nodes.push_back(node.name);
  }
  HttpPeerWaker(config).wake(nodes);
}

}  // namespace tandem
