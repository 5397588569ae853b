// The agent's HTTP API on host:api_port: health checks for load balancers (Patroni's paths and
// status codes), /cluster, /history, /metrics, the dashboard at /, and POST requests that change
// the cluster, each refused without the bearer token.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <thread>

#include "agent/agent_board.h"
#include "agent/contact_book.h"
#include "common/clock.h"
#include "core/cluster_config.h"
#include "dcs/store.h"

namespace httplib {
class Server;
struct Request;
struct Response;
}  // namespace httplib

namespace tandem {

class ApiServer {
 public:
  // REQUIRES: self.api_port != 0; everything passed outlives the server.
  ApiServer(const ClusterConfig& config, const NodeConfig& self, AgentBoard& board, Store& store,
            Clock& clock, ContactBook* contacts = nullptr);
  ~ApiServer();

  // Reads the token (a token file that others may read is an error; a missing one leaves every
  // POST refused), binds the port and serves on a thread of its own.
  Status start();
  void stop();

  // How long a switchover or failover may take before it is withdrawn and answered 503.
  void set_request_timeout(std::chrono::milliseconds timeout) { request_timeout_ = timeout; }

 private:
  using Handler = std::function<void(const httplib::Request&, httplib::Response&)>;
  void route();
  // Routes that are remembered: the other method on their path is a 405, not a 404.
  void get(const std::string& path, const Handler& handler);
  void post(const std::string& path, Handler handler);

  const ClusterConfig& config_;
  const NodeConfig& self_;
  AgentBoard& board_;
  Store& store_;
  Clock& clock_;
  ContactBook* contacts_;  // quorum fencing: pings from the other agents are recorded here
  std::string token_;      // empty: changes are refused
  std::chrono::milliseconds request_timeout_{std::chrono::seconds(30)};
  std::unique_ptr<httplib::Server> server_;
  std::thread thread_;
  std::set<std::string> gets_;
  std::map<std::string, Handler> posts_;
};

}  // namespace tandem
