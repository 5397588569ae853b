#include "api/http_api.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <nlohmann/json.hpp>

#include "agent/agent.h"
#include "agent/peer_pinger.h"
#include "agent/peer_waker.h"
#include "api/cluster_json.h"
#include "api/dashboard_assets.h"
#include "api/health.h"
#include "api/http_server.h"
#include "api/metrics.h"
#include "core/observe_rest.h"
#include "ops/cluster_requests.h"
#include "proc/os_user.h"
#include "proc/secret_file.h"

namespace tandem {
namespace {

using nlohmann::json;
using std::chrono::milliseconds;

void set_content(HttpResponse& response, std::string body, std::string content_type) {
  response.body = std::move(body);
  response.content_type = std::move(content_type);
}

// A request can put any byte in a path or a parameter, and errors quote them: invalid UTF-8 is
// replaced rather than thrown about.
void reply_json(HttpResponse& response, int status, const json& body) {
  response.status = status;
  set_content(response, body.dump(-1, ' ', false, json::error_handler_t::replace),
              "application/json");
}

void reply_error(HttpResponse& response, int status, const std::string& message) {
  reply_json(response, status, {{"error", message}});
}

int status_for(ErrorCode code) {
  switch (code) {
    case ErrorCode::kInvalidArgument:
    case ErrorCode::kNotFound:
      return 400;
    case ErrorCode::kPermissionDenied:
      return 403;
    case ErrorCode::kConflict:
    case ErrorCode::kAlreadyExists:
      return 409;
    case ErrorCode::kUnavailable:
    case ErrorCode::kTimeout:
    case ErrorCode::kFailed:
      return 503;
  }
  return 500;
}

void reply_failure(HttpResponse& response, const Error& error) {
  reply_error(response, status_for(error.code), error.message);
}

// Constant time in the token's length: the comparison does not tell how much of it matched.
bool same_secret(std::string_view given, std::string_view expected) {
  if (given.size() != expected.size()) return false;
  unsigned char difference = 0;
  for (std::size_t i = 0; i < given.size(); ++i) difference |= given[i] ^ expected[i];
  return difference == 0;
}

// A request body: empty or a JSON object with only the named fields, of the named types.
struct Field {
  const char* name;
  json::value_t type;
};

Result<json> parse_body(const std::string& body, std::initializer_list<Field> fields) {
  if (body.find_first_not_of(" \t\r\n") == std::string::npos) return json::object();
  json object = json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (object.is_discarded()) return fail(ErrorCode::kInvalidArgument, "the body is not JSON");
  if (!object.is_object()) {
    return fail(ErrorCode::kInvalidArgument, "the body must be a JSON object");
  }
  for (const auto& [key, value] : object.items()) {
    const Field* field = nullptr;
    for (const Field& each : fields) {
      if (key == each.name) field = &each;
    }
    if (field == nullptr) {
      std::string known;
      for (const Field& each : fields) {
        known += known.empty() ? "" : ", ";
        known += std::string(each.name);
      }
      return fail(ErrorCode::kInvalidArgument, fmt::format("unknown field '{}' (known: {})", key,
                                                           known.empty() ? "none" : known));
    }
    if (value.type() != field->type) {
      return fail(ErrorCode::kInvalidArgument,
                  fmt::format("field '{}' must be a {}", key,
                              field->type == json::value_t::boolean ? "boolean" : "string"));
    }
  }
  return object;
}

}  // namespace

ApiServer::ApiServer(const ClusterConfig& config, const NodeConfig& self, AgentBoard& board,
                     Store& store, Clock& clock, ContactBook* contacts)
    : config_(std::make_shared<const ClusterConfig>(config)),
      self_(self),
      layout_(config.name),
      board_(board),
      store_(store),
      clock_(clock),
      contacts_(contacts) {}

ApiServer::~ApiServer() { stop(); }

std::shared_ptr<const ClusterConfig> ApiServer::config() const {
  std::lock_guard lock(config_mutex_);
  return config_;
}

void ApiServer::set_members(const ClusterConfig& config) {
  auto next = std::make_shared<const ClusterConfig>(config);
  if (server_) server_->set_reserved_addresses(agent_addresses(config));
  std::lock_guard lock(config_mutex_);
  config_ = std::move(next);
  allow_hosts(*config_);
}

std::set<std::string> ApiServer::agent_addresses(const ClusterConfig& config) const {
  std::set<std::string> addresses;
  for (const NodeConfig& node : config.nodes) {
    if (node.host != self_.host) addresses.insert(node.host);
  }
  return addresses;
}

void ApiServer::allow_hosts(const ClusterConfig& config) {
  allowed_hosts_ = {"localhost", "127.0.0.1", "::1"};
  for (const NodeConfig& node : config.nodes) allowed_hosts_.insert(node.host);
  for (std::string name : config.api.allowed_hosts) {
    std::transform(name.begin(), name.end(), name.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    allowed_hosts_.insert(name);
  }
}

Status ApiServer::start() {
  std::shared_ptr<const ClusterConfig> held = config();
  const ClusterConfig& config = *held;
  if (!config.api.token_file.empty()) {
    auto token = read_secret_file(config.api.token_file);
    if (token) {
      token_ = *token;
    } else if (token.error().code != ErrorCode::kNotFound) {
      return fail_with_context(token.error(), "api.token_file");
    }
  }
  if (token_.empty()) spdlog::warn("API: no token file, so every change (POST) is refused");
  if (token_.empty() && config.on_several_machines()) {
    spdlog::warn(
        "API: no token file, so the other agents' pings are not authenticated: anyone who "
        "reaches this API can claim to be another agent (set api.token_file on every node)");
  }
  HttpServerOptions options{.host = self_.host, .port = self_.api_port};
  bool tls = !config.api.tls_cert_file.empty();
  std::string cannot_use = fmt::format("api: cannot use the certificate {} with the key {}",
                                       config.api.tls_cert_file, config.api.tls_key_file);
  if (tls) {
    auto cert = read_file(config.api.tls_cert_file);
    auto key = read_file(config.api.tls_key_file);
    if (!cert || !key) {
      return fail(ErrorCode::kInvalidArgument,
                  fmt::format("{}: {}", cannot_use, (!cert ? cert : key).error().message));
    }
    options.tls_cert_pem = *cert;
    options.tls_key_pem = *key;
  }
  // The other agents' pings decide fencing: their addresses have connections of their own that
  // public clients cannot take, and no per-address cap.
  options.reserved_addresses = agent_addresses(config);
  {
    std::lock_guard lock(config_mutex_);
    allow_hosts(config);
  }
  route();
  server_ = std::make_unique<HttpServer>(
      std::move(options), [this](const HttpRequest& request) { return is_slow(request); },
      [this](const HttpRequest& request) { return dispatch(request); });
  if (auto ok = server_->start(); !ok) {
    server_.reset();
    if (ok.error().code == ErrorCode::kInvalidArgument && tls) {
      return fail(ErrorCode::kInvalidArgument, cannot_use);
    }
    return fail(ErrorCode::kConflict, "API: " + ok.error().message);
  }
  spdlog::info("API on {}{}", api_url(config, self_), token_.empty() ? " (read-only)" : "");
  return {};
}

void ApiServer::stop() {
  if (server_) server_->stop();
}

HttpServerStats ApiServer::stats() { return server_ ? server_->stats() : HttpServerStats{}; }

void ApiServer::route() {
  // Health checks: GET (and HEAD, which HAProxy may use) on Patroni's paths.
  for (const char* path : {"/primary", "/read-write", "/leader", "/master", "/replica",
                           "/read-only", "/health", "/liveness", "/readiness"}) {
    get(path, &ApiServer::get_health);
  }
  get("/ping", &ApiServer::get_ping);
  // Store reads may wait (etcd): they run on the server's workers, never on its event threads.
  slow_gets_ = {"/cluster", "/history", "/metrics"};
  get("/cluster", &ApiServer::get_cluster);
  get("/history", &ApiServer::get_history);
  get("/lag", &ApiServer::get_lag);
  get("/metrics", &ApiServer::get_metrics);
  // Changes: POST with the bearer token (but /wake, which changes nothing: is_open).
  post("/switchover", &ApiServer::post_switchover);
  post("/failover", &ApiServer::post_failover);
  post("/restart", &ApiServer::post_restart);
  post("/reinitialize", &ApiServer::post_reinitialize);
  post("/pause", &ApiServer::post_pause);
  post("/resume", &ApiServer::post_resume);
  post("/wake", &ApiServer::post_wake);
}

Result<ClusterView> ApiServer::read_view() {
  auto snapshot = layout_.read_state(store_);
  if (!snapshot) return std::unexpected(snapshot.error());
  return layout_.view(*snapshot);
}

Result<std::vector<HistoryEntry>> ApiServer::read_history() {
  auto snapshot = store_.read(layout_.history_prefix());
  if (!snapshot) return std::unexpected(snapshot.error());
  return layout_.history(*snapshot);
}

void ApiServer::get_health(const HttpRequest& request, HttpResponse& response) {
  auto check = health_check_for(request.path);
  std::optional<LagLimit> lag;
  if (request.has_param("lag")) {
    auto parsed = parse_lag_limit(request.param("lag"));
    if (!parsed) return reply_failure(response, parsed.error());
    lag = *parsed;
  }
  AgentSnapshot snapshot = board_.snapshot();
  HealthReply reply =
      check_health(*check, {.self = self_.name,
                            .snapshot = snapshot,
                            .ttl = config()->ha.ttl,
                            .alive_for = agent_alive_for(ha_config_for(*config(), self_)),
                            .now = clock_.steady_now(),
                            .lag_limit = lag});
  reply_json(response, reply.status, reply.body);
}

// Another agent's ping: recorded, and answered with this node's state and what this agent has
// not heard from the others.
// With a token, a ping must carry it (the agents share the token file): a ping decides who may
// take over, and one that says it comes from the primary keeps the standbys from doing so
// (issue 16.8: a host without credentials sending `/ping?from=node1` every 50 ms blocked a
// failover for the whole cut). Refused, it is not recorded.
void ApiServer::get_ping(const HttpRequest& request, HttpResponse& response) {
  if (!token_.empty() && !bearer_valid(request)) {
    response.headers.emplace_back("WWW-Authenticate", "Bearer realm=\"tandem\"");
    reply_error(response, 401, "a ping needs the API token (Authorization: Bearer ...)");
    return;
  }
  PingReply reply =
      answer_ping(board_, contacts_, self_.name, request.param("from"), clock_.steady_now());
  set_content(response, encode_ping_reply(self_.name, reply), "application/json");
}

void ApiServer::get_cluster(const HttpRequest&, HttpResponse& response) {
  auto view = read_view();
  reply_json(
      response, 200,
      cluster_json(*config(), view ? std::optional(*view) : std::nullopt, wall_ms_of(clock_)));
}

void ApiServer::get_history(const HttpRequest&, HttpResponse& response) {
  auto history = read_history();
  if (!history) return reply_failure(response, history.error());
  reply_json(response, 200, history_json(*history));
}

void ApiServer::get_lag(const HttpRequest&, HttpResponse& response) {
  reply_json(response, 200, lag_json(board_.lag_history()));
}

void ApiServer::get_metrics(const HttpRequest&, HttpResponse& response) {
  AgentSnapshot snapshot = board_.snapshot();
  auto history = read_history();
  set_content(response,
              render_metrics({.self = self_.name,
                              .snapshot = snapshot,
                              .history = history ? std::optional(*history) : std::nullopt}),
              "text/plain; version=0.0.4; charset=utf-8");
}

bool ApiServer::bearer_valid(const HttpRequest& request) const {
  std::string header = request.header("Authorization");
  constexpr std::string_view kBearer = "Bearer ";
  return header.starts_with(kBearer) &&
         same_secret(std::string_view(header).substr(kBearer.size()), token_);
}

bool ApiServer::authorized(const HttpRequest& request, HttpResponse& response) const {
  if (token_.empty()) {
    reply_error(response, 403,
                "changes are disabled on this node: it has no API token (api.token_file)");
    return false;
  }
  if (!bearer_valid(request)) {
    std::string header = request.header("Authorization");
    response.headers.emplace_back("WWW-Authenticate", "Bearer realm=\"tandem\"");
    reply_error(response, 401,
                header.empty() ? "this request needs the API token (Authorization: Bearer ...)"
                               : "the API token is wrong");
    return false;
  }
  return true;
}

void ApiServer::post_switchover(const HttpRequest& request, HttpResponse& response) {
  auto body = parse_body(request.body, {{"leader", json::value_t::string},
                                        {"candidate", json::value_t::string},
                                        {"scheduled_at", json::value_t::string}});
  if (!body) return reply_failure(response, body.error());
  if (body->contains("scheduled_at")) {
    return reply_error(response, 400, "scheduled switchovers are not supported");
  }
  change_leader(
      [&](const ClusterView& view) {
        return plan_switchover(view, *config(), body->value("leader", ""),
                               body->value("candidate", ""));
      },
      response);
}

void ApiServer::post_failover(const HttpRequest& request, HttpResponse& response) {
  auto body = parse_body(request.body, {{"leader", json::value_t::string},
                                        {"candidate", json::value_t::string},
                                        {"allow_data_loss", json::value_t::boolean}});
  if (!body) return reply_failure(response, body.error());
  change_leader(
      [&](const ClusterView& view) {
        return plan_failover(view, *config(), body->value("leader", ""),
                             body->value("candidate", ""), body->value("allow_data_loss", false));
      },
      response);
}

// Plans the request on the cluster as it is now, writes it, and waits for the new leader.
void ApiServer::change_leader(const Planner& plan_request, HttpResponse& response) {
  auto view = read_view();
  if (!view) return reply_failure(response, view.error());
  if (auto ok = check_none_pending(*view); !ok)
    return reply_error(response, 409, ok.error().message);
  auto plan = plan_request(*view);
  if (!plan) {
    return reply_error(response, plan.error().code == ErrorCode::kConflict ? 412 : 400,
                       plan.error().message);
  }
  if (plan->allow_data_loss) {
    spdlog::warn("API: failover to {} with allow_data_loss requested", plan->to);
  }
  auto outcome = carry_out(store_, layout_, *plan, clock_, request_timeout_, [this, &plan] {
    board_.wake();  // this API's own agent, without a worker
    wake_agents(*config(), self_.name, plan->to);
  });
  if (!outcome) return reply_failure(response, outcome.error());
  std::string message =
      plan->force ? fmt::format("failed over to {}", outcome->new_leader)
                  : fmt::format("switched over from {} to {}", plan->from, outcome->new_leader);
  reply_json(
      response, 200,
      {{"message", message}, {"leader", outcome->new_leader}, {"took_ms", outcome->took.count()}});
}

void ApiServer::post_restart(const HttpRequest& request, HttpResponse& response) {
  ask_agent(NodeRequest::kRestart, request, response);
}

void ApiServer::post_reinitialize(const HttpRequest& request, HttpResponse& response) {
  ask_agent(NodeRequest::kReinitialize, request, response);
}

// Requests on this node's PostgreSQL are the agent's to carry out, between two of its cycles.
void ApiServer::ask_agent(NodeRequest node_request, const HttpRequest& request,
                          HttpResponse& response) {
  auto body = parse_body(request.body, {});
  if (!body) return reply_failure(response, body.error());
  auto result = board_.request(node_request, std::chrono::minutes(5));
  if (!result) return reply_failure(response, result.error());
  std::string done = node_request == NodeRequest::kRestart ? "restarted" : "reinitialized";
  reply_json(response, 200, {{"message", fmt::format("{} {}", self_.name, done)}});
}

// Another agent handed this node the lease, or released it, or a request was written: the
// agent's sleep at rest ends (core/observe_rest.h, rest_sleep). No token (is_open).
void ApiServer::post_wake(const HttpRequest& /*request*/, HttpResponse& response) {
  board_.wake();
  reply_json(response, 200, {{"message", fmt::format("{}'s agent woken", self_.name)}});
}

void ApiServer::post_pause(const HttpRequest& request, HttpResponse& response) {
  set_paused_to(true, request, response);
}

void ApiServer::post_resume(const HttpRequest& request, HttpResponse& response) {
  set_paused_to(false, request, response);
}

void ApiServer::set_paused_to(bool paused, const HttpRequest& request, HttpResponse& response) {
  auto body = parse_body(request.body, {});
  if (!body) return reply_failure(response, body.error());
  if (auto ok = set_paused(store_, layout_, paused); !ok) {
    return reply_failure(response, ok.error());
  }
  reply_json(response, 200,
             {{"message", paused ? "paused: the agents take no automatic action"
                                 : "resumed: the agents act again"},
              {"paused", paused}});
}

bool ApiServer::is_slow(const HttpRequest& request) const {
  return (request.method == "POST" && !is_open(request)) || slow_gets_.contains(request.path);
}

// POST /wake changes nothing but when the agent's next cycle runs, never sooner than a loop
// interval after the last began: it needs no token, so that no agent ever sends the token to a
// port that another local user may have taken while that node's agent was down. And it is
// answered on the event threads, never queued behind a switchover on the workers.
bool ApiServer::is_open(const HttpRequest& request) {
  return request.method == "POST" && request.path == "/wake";
}

namespace {

bool valid_utf8(std::string_view text) {
  for (std::size_t i = 0; i < text.size();) {
    unsigned char c = static_cast<unsigned char>(text[i]);
    int follow = c < 0x80             ? 0
                 : (c & 0xe0) == 0xc0 ? 1
                 : (c & 0xf0) == 0xe0 ? 2
                 : (c & 0xf8) == 0xf0 ? 3
                                      : -1;
    if (follow < 0 || i + follow >= text.size() + (follow == 0 ? 1 : 0)) return false;
    for (int k = 1; k <= follow; ++k) {
      if ((static_cast<unsigned char>(text[i + k]) & 0xc0) != 0x80) return false;
    }
    i += follow + 1;
  }
  return true;
}

// "10.0.0.11:8008" -> "10.0.0.11"; "[::1]:8008" -> "::1".
std::string host_name(std::string host) {
  if (host.starts_with("[")) return host.substr(1, host.find(']') - 1);
  if (std::count(host.begin(), host.end(), ':') == 1) host = host.substr(0, host.find(':'));
  std::transform(host.begin(), host.end(), host.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return host;
}

}  // namespace

HttpResponse ApiServer::dispatch(const HttpRequest& request) {
  HttpResponse response;
  // DNS rebinding: a page from elsewhere that made its name point here sends that name. Health
  // checks tell only up or down, and load balancers may name a node as they please: exempt.
  bool host_allowed = true;
  if (request.has_header("Host") && !health_check_for(request.path)) {
    std::lock_guard lock(config_mutex_);
    host_allowed = allowed_hosts_.contains(host_name(request.header("Host")));
  }
  if (!host_allowed) {
    reply_error(response, 421,
                fmt::format("this API answers only to its own addresses, not to Host '{}' (add "
                            "names to api.allowed_hosts)",
                            request.header("Host")));
    return response;
  }
  bool utf8 = valid_utf8(request.path);
  for (const auto& [name, value] : request.params)
    utf8 = utf8 && valid_utf8(name) && valid_utf8(value);
  if (!utf8) {
    reply_error(response, 400, "the request's path or query is not valid UTF-8");
    return response;
  }
  bool read = request.method == "GET" || request.method == "HEAD";
  const std::map<std::string, Handler>& same = read ? gets_ : posts_;
  const std::map<std::string, Handler>& other = read ? posts_ : gets_;
  if (read || request.method == "POST") {
    if (auto handler = same.find(request.path); handler != same.end()) {
      if (read || is_open(request) || authorized(request, response)) {
        (this->*handler->second)(request, response);
      }
    } else if (other.contains(request.path)) {
      response.headers.emplace_back("Allow", read ? "POST" : "GET");
      reply_error(response, 405, read ? "use POST" : "use GET");
    } else if (read) {
      serve_asset(request, response);
    } else {
      reply_error(response, 404, "no such request: " + request.path);
    }
  } else if (request.method == "OPTIONS" &&
             (gets_.contains(request.path) || posts_.contains(request.path))) {
    response.headers.emplace_back("Allow", gets_.contains(request.path) ? "GET, HEAD" : "POST");
  } else {
    reply_error(response, 405, fmt::format("{} is not served", request.method));
  }
  return response;
}

void ApiServer::serve_asset(const HttpRequest& request, HttpResponse& response) {
  const Asset* asset = find_asset(request.path);
  if (asset == nullptr) return reply_error(response, 404, "no such page: " + request.path);
  set_content(response, std::string(asset->body), std::string(asset->content_type));
  response.headers.emplace_back("Cache-Control", "no-cache");
}

void ApiServer::get(const std::string& path, Handler handler) { gets_[path] = handler; }

void ApiServer::post(const std::string& path, Handler handler) { posts_[path] = handler; }

}  // namespace tandem
