#include "agent/peer_waker.h"

#include <httplib.h>

#include "proc/secret_file.h"

namespace tandem {

HttpPeerWaker::HttpPeerWaker(const ClusterConfig& config) : config_(config) {
  if (config_.api.token_file.empty()) return;
  if (auto token = read_secret_file(config_.api.token_file)) token_ = *token;
}

bool HttpPeerWaker::wake(const std::string& node) {
  const NodeConfig* peer = config_.find_node(node);
  if (peer == nullptr || peer->api_port == 0 || token_.empty()) return false;
  httplib::Client client(api_url(config_, *peer));
  client.enable_server_certificate_verification(false);
  constexpr std::chrono::milliseconds kTimeout{100};
  client.set_connection_timeout(kTimeout);
  client.set_read_timeout(kTimeout);
  client.set_write_timeout(kTimeout);
  auto reply = client.Post("/wake", {{"Authorization", "Bearer " + token_}}, "", "text/plain");
  return reply && reply->status == 200;
}

void wake_agents(const ClusterConfig& config, const std::string& except) {
  if (config.on_several_machines()) return;
  HttpPeerWaker waker(config);
  for (const NodeConfig& node : config.nodes) {
    if (node.name != except) (void)waker.wake(node.name);
  }
}

}  // namespace tandem
