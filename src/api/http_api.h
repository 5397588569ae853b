// The agent's HTTP API on host:api_port: health checks for load balancers (Patroni's paths and
// status codes), /cluster, /history, /metrics, the dashboard at /, and POST requests that change
// the cluster, each refused without the bearer token.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>

#include "agent/agent_board.h"
#include "agent/contact_book.h"
#include "api/http_server.h"
#include "common/clock.h"
#include "core/cluster_config.h"
#include "dcs/cluster_layout.h"
#include "dcs/store.h"

namespace tandem {

class ApiServer {
 public:
  // REQUIRES: self.api_port != 0; `board`, `store`, `clock` and `contacts` outlive the server
  // (the config and self are copied).
  ApiServer(const ClusterConfig& config, const NodeConfig& self, AgentBoard& board, Store& store,
            Clock& clock, ContactBook* contacts = nullptr);
  ~ApiServer();

  // Reads the token (a token file that others may read is an error; a missing one leaves every
  // POST refused), binds the port and serves on a thread of its own.
  Status start();
  void stop();

  // The members changed (one machine, see ReloadPlan::nodes): requests from now on see the new
  // list; those under way keep the one they started with. Any thread.
  void set_members(const ClusterConfig& config);

  // How long a switchover or failover may take before it is withdrawn and answered 503.
  void set_request_timeout(std::chrono::milliseconds timeout) { request_timeout_ = timeout; }

  // The connections it holds, and those it refused or cut; for benchmarks and tests.
  HttpServerStats stats();

 private:
  // A route: a method that answers one request.
  using Handler = void (ApiServer::*)(const HttpRequest&, HttpResponse&);
  void route();
  // Routes that are remembered: the other method on their path is a 405, not a 404. A POST
  // route runs only for a request with the bearer token.
  void get(const std::string& path, Handler handler);
  void post(const std::string& path, Handler handler);
  // Every request: the Host check, then the route. Runs on the server's event threads unless
  // is_slow(), then on its workers.
  HttpResponse dispatch(const HttpRequest& request);
  bool is_slow(const HttpRequest& request) const;
  // A POST that needs no token: /wake.
  static bool is_open(const HttpRequest& request);
  bool authorized(const HttpRequest& request, HttpResponse& response) const;
  // The request carries this node's API token (constant time); false without a token.
  bool bearer_valid(const HttpRequest& request) const;
  void serve_asset(const HttpRequest& request, HttpResponse& response);
  Result<ClusterView> read_view();
  Result<std::vector<HistoryEntry>> read_history();

  // GET routes.
  void get_health(const HttpRequest& request, HttpResponse& response);
  void get_ping(const HttpRequest& request, HttpResponse& response);
  void get_cluster(const HttpRequest& request, HttpResponse& response);
  void get_history(const HttpRequest& request, HttpResponse& response);
  void get_lag(const HttpRequest& request, HttpResponse& response);
  void get_metrics(const HttpRequest& request, HttpResponse& response);
  // POST routes. A switchover and a failover differ only in their body and their plan
  // (ops/cluster_requests.h, shared with the CLI); change_leader() does the rest of both.
  void post_switchover(const HttpRequest& request, HttpResponse& response);
  void post_failover(const HttpRequest& request, HttpResponse& response);
  using Planner = std::function<Result<SwitchoverRequest>(const ClusterView&)>;
  void change_leader(const Planner& plan, HttpResponse& response);
  void post_restart(const HttpRequest& request, HttpResponse& response);
  void post_reinitialize(const HttpRequest& request, HttpResponse& response);
  void ask_agent(NodeRequest node_request, const HttpRequest& request, HttpResponse& response);
  void post_pause(const HttpRequest& request, HttpResponse& response);
  void post_resume(const HttpRequest& request, HttpResponse& response);
  void post_wake(const HttpRequest& request, HttpResponse& response);
  void set_paused_to(bool paused, const HttpRequest& request, HttpResponse& response);

  // The config as of now: a copy, replaced whole by set_members.
  std::shared_ptr<const ClusterConfig> config() const;
  void allow_hosts(const ClusterConfig& config);  // REQUIRES: config_mutex_ held
  // The other agents' addresses: their connections are reserved for pings.
  std::set<std::string> agent_addresses(const ClusterConfig& config) const;

  mutable std::mutex config_mutex_;
  std::shared_ptr<const ClusterConfig> config_;
  const NodeConfig self_;
  ClusterLayout layout_;
  AgentBoard& board_;
  Store& store_;
  Clock& clock_;
  ContactBook* contacts_;  // quorum fencing: pings from the other agents are recorded here
  std::string token_;      // empty: changes are refused
  std::chrono::milliseconds request_timeout_{std::chrono::seconds(30)};
  std::unique_ptr<HttpServer> server_;
  std::map<std::string, Handler> gets_;
  std::map<std::string, Handler> posts_;
  std::set<std::string> slow_gets_;
  std::set<std::string> allowed_hosts_;  // names and addresses a Host header may give (locked)
};

}  // namespace tandem
