#include "api/http_api.h"

#include <fmt/format.h>
#include <httplib.h>
#include <spdlog/spdlog.h>

#include <nlohmann/json.hpp>

#include "agent/peer_pinger.h"
#include "api/cluster_json.h"
#include "api/dashboard_assets.h"
#include "api/health.h"
#include "api/metrics.h"
#include "ops/cluster_requests.h"
#include "proc/secret_file.h"

namespace tandem {
namespace {

using nlohmann::json;
using std::chrono::milliseconds;

void reply_json(httplib::Response& response, int status, const json& body) {
  response.status = status;
  response.set_content(body.dump(), "application/json");
}

void reply_error(httplib::Response& response, int status, const std::string& message) {
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

void reply_failure(httplib::Response& response, const Error& error) {
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
      for (const Field& each : fields)
        known += (known.empty() ? "" : ", ") + std::string(each.name);
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
    : config_(config),
      self_(self),
      board_(board),
      store_(store),
      clock_(clock),
      contacts_(contacts) {}

ApiServer::~ApiServer() { stop(); }

Status ApiServer::start() {
  if (!config_.api.token_file.empty()) {
    auto token = read_secret_file(config_.api.token_file);
    if (token) {
      token_ = *token;
    } else if (token.error().code != ErrorCode::kNotFound) {
      return fail_with_context(token.error(), "api.token_file");
    }
  }
  if (token_.empty()) spdlog::warn("API: no token file, so every change (POST) is refused");
  bool tls = !config_.api.tls_cert_file.empty();
  if (tls) {
    auto secure = std::make_unique<httplib::SSLServer>(config_.api.tls_cert_file.c_str(),
                                                       config_.api.tls_key_file.c_str());
    if (!secure->is_valid()) {
      return fail(ErrorCode::kInvalidArgument,
                  fmt::format("api: cannot use the certificate {} with the key {}",
                              config_.api.tls_cert_file, config_.api.tls_key_file));
    }
    server_ = std::move(secure);
  } else {
    server_ = std::make_unique<httplib::Server>();
  }
  // A few threads: requests that wait for a switchover must not starve the health checks.
  server_->new_task_queue = [] { return new httplib::ThreadPool(4); };
  server_->set_read_timeout(std::chrono::seconds(5));
  server_->set_payload_max_length(64 * 1024);
  route();
  if (!server_->bind_to_port(self_.host, self_.api_port)) {
    return fail(ErrorCode::kConflict,
                fmt::format("API: cannot listen on {}:{} (in use?)", self_.host, self_.api_port));
  }
  thread_ = std::thread([this] { server_->listen_after_bind(); });
  spdlog::info("API on {}{}", api_url(config_, self_), token_.empty() ? " (read-only)" : "");
  return {};
}

void ApiServer::stop() {
  if (server_) server_->stop();
  if (thread_.joinable()) thread_.join();
}

void ApiServer::route() {
  ClusterLayout layout(config_.name);
  auto read_view = [this, layout]() -> Result<ClusterView> {
    auto snapshot = store_.read(layout.prefix());
    if (!snapshot) return std::unexpected(snapshot.error());
    return layout.view(*snapshot);
  };
  auto read_history = [this, layout]() -> Result<std::vector<HistoryEntry>> {
    auto snapshot = store_.read(layout.prefix());
    if (!snapshot) return std::unexpected(snapshot.error());
    return layout.history(*snapshot);
  };

  // Health checks: GET (and HEAD, which HAProxy may use) on Patroni's paths.
  auto health = [this](const httplib::Request& request, httplib::Response& response) {
    auto check = health_check_for(request.path);
    std::optional<LagLimit> lag;
    if (request.has_param("lag")) {
      auto parsed = parse_lag_limit(request.get_param_value("lag"));
      if (!parsed) return reply_failure(response, parsed.error());
      lag = *parsed;
    }
    AgentSnapshot snapshot = board_.snapshot();
    HealthReply reply = check_health(*check, {.self = self_.name,
                                              .snapshot = snapshot,
                                              .ttl = config_.ha.ttl,
                                              .now = clock_.steady_now(),
                                              .lag_limit = lag});
    reply_json(response, reply.status, reply.body);
  };
  for (const char* path : {"/primary", "/read-write", "/leader", "/master", "/replica",
                           "/read-only", "/health", "/liveness", "/readiness"}) {
    get(path, health);
    server_->Options(
        path, [](const httplib::Request&, httplib::Response& response) { response.status = 200; });
  }

  // Another agent's ping: recorded, and answered with this node's state and what this agent has
  // not heard from the others.
  get("/ping", [this](const httplib::Request& request, httplib::Response& response) {
    auto now = clock_.steady_now();
    PingReply reply;
    if (contacts_ != nullptr) {
      contacts_->served(request.get_param_value("from"), now);
      reply.silence = contacts_->silence(now);
    }
    AgentSnapshot snapshot = board_.snapshot();
    reply.state = snapshot.node.state;
    reply.leader = snapshot.view && snapshot.view->leader_is(self_.name);
    response.set_content(encode_ping_reply(self_.name, reply), "application/json");
  });
  get("/cluster", [this, read_view](const httplib::Request&, httplib::Response& response) {
    auto view = read_view();
    reply_json(response, 200, cluster_json(config_, view ? std::optional(*view) : std::nullopt));
  });
  get("/history", [read_history](const httplib::Request&, httplib::Response& response) {
    auto history = read_history();
    if (!history) return reply_failure(response, history.error());
    reply_json(response, 200, history_json(*history));
  });
  get("/lag", [this](const httplib::Request&, httplib::Response& response) {
    reply_json(response, 200, lag_json(board_.lag_history()));
  });
  get("/metrics", [this, read_history](const httplib::Request&, httplib::Response& response) {
    AgentSnapshot snapshot = board_.snapshot();
    auto history = read_history();
    response.set_content(
        render_metrics({.self = self_.name,
                        .snapshot = snapshot,
                        .history = history ? std::optional(*history) : std::nullopt}),
        "text/plain; version=0.0.4; charset=utf-8");
  });

  // Changes: POST with the bearer token.
  auto authorized = [this](const httplib::Request& request, httplib::Response& response) {
    if (token_.empty()) {
      reply_error(response, 403,
                  "changes are disabled on this node: it has no API token (api.token_file)");
      return false;
    }
    std::string header = request.get_header_value("Authorization");
    constexpr std::string_view kBearer = "Bearer ";
    if (!header.starts_with(kBearer) ||
        !same_secret(std::string_view(header).substr(kBearer.size()), token_)) {
      response.set_header("WWW-Authenticate", "Bearer realm=\"tandem\"");
      reply_error(response, 401,
                  header.empty() ? "this request needs the API token (Authorization: Bearer ...)"
                                 : "the API token is wrong");
      return false;
    }
    return true;
  };

  post("/switchover", [this, authorized, read_view, layout](const httplib::Request& request,
                                                            httplib::Response& response) {
    if (!authorized(request, response)) return;
    auto body = parse_body(request.body, {{"leader", json::value_t::string},
                                          {"candidate", json::value_t::string},
                                          {"scheduled_at", json::value_t::string}});
    if (!body) return reply_failure(response, body.error());
    if (body->contains("scheduled_at")) {
      return reply_error(response, 400, "scheduled switchovers are not supported");
    }
    auto view = read_view();
    if (!view) return reply_failure(response, view.error());
    auto plan =
        plan_switchover(*view, config_, body->value("leader", ""), body->value("candidate", ""));
    if (!plan) {
      return reply_error(response, plan.error().code == ErrorCode::kConflict ? 412 : 400,
                         plan.error().message);
    }
    auto outcome = carry_out(store_, layout, *plan, clock_, request_timeout_);
    if (!outcome) return reply_failure(response, outcome.error());
    reply_json(
        response, 200,
        {{"message", fmt::format("switched over from {} to {}", plan->from, outcome->new_leader)},
         {"leader", outcome->new_leader},
         {"took_ms", outcome->took.count()}});
  });

  post("/failover", [this, authorized, read_view, layout](const httplib::Request& request,
                                                          httplib::Response& response) {
    if (!authorized(request, response)) return;
    auto body = parse_body(request.body, {{"leader", json::value_t::string},
                                          {"candidate", json::value_t::string},
                                          {"allow_data_loss", json::value_t::boolean}});
    if (!body) return reply_failure(response, body.error());
    if (!body->contains("candidate")) {
      return reply_error(response, 400, "a failover needs a candidate: {\"candidate\": \"node2\"}");
    }
    auto view = read_view();
    if (!view) return reply_failure(response, view.error());
    std::string leader = body->value("leader", "");
    if (!leader.empty() && !view->leader_is(leader)) {
      return reply_error(response, 412, fmt::format("{} does not lead", leader));
    }
    auto plan = plan_failover(*view, config_, body->value("candidate", ""),
                              body->value("allow_data_loss", false));
    if (!plan) {
      return reply_error(response, plan.error().code == ErrorCode::kConflict ? 412 : 400,
                         plan.error().message);
    }
    if (plan->allow_data_loss) {
      spdlog::warn("API: failover to {} with allow_data_loss requested", plan->to);
    }
    auto outcome = carry_out(store_, layout, *plan, clock_, request_timeout_);
    if (!outcome) return reply_failure(response, outcome.error());
    reply_json(response, 200,
               {{"message", fmt::format("failed over to {}", outcome->new_leader)},
                {"leader", outcome->new_leader},
                {"took_ms", outcome->took.count()}});
  });

  for (auto [path, node_request] : {std::pair{"/restart", NodeRequest::kRestart},
                                    std::pair{"/reinitialize", NodeRequest::kReinitialize}}) {
    std::string done = node_request == NodeRequest::kRestart ? "restarted" : "reinitialized";
    post(path, [this, authorized, node_request, done](const httplib::Request& request,
                                                      httplib::Response& response) {
      if (!authorized(request, response)) return;
      auto body = parse_body(request.body, {});
      if (!body) return reply_failure(response, body.error());
      auto result = board_.request(node_request, std::chrono::minutes(5));
      if (!result) return reply_failure(response, result.error());
      reply_json(response, 200, {{"message", fmt::format("{} {}", self_.name, done)}});
    });
  }

  for (auto [path, paused] : {std::pair{"/pause", true}, std::pair{"/resume", false}}) {
    post(path, [this, authorized, layout, paused](const httplib::Request& request,
                                                  httplib::Response& response) {
      if (!authorized(request, response)) return;
      auto body = parse_body(request.body, {});
      if (!body) return reply_failure(response, body.error());
      if (auto ok = set_paused(store_, layout, paused); !ok) {
        return reply_failure(response, ok.error());
      }
      reply_json(response, 200,
                 {{"message", paused ? "paused: the agents take no automatic action"
                                     : "resumed: the agents act again"},
                  {"paused", paused}});
    });
  }

  // The other method on a known path.
  for (const auto& [path, handler] : posts_) {
    server_->Get(path, [](const httplib::Request&, httplib::Response& response) {
      response.set_header("Allow", "POST");
      reply_error(response, 405, "use POST");
    });
  }
  server_->Get(R"(/.*)", [](const httplib::Request& request, httplib::Response& response) {
    const Asset* asset = find_asset(request.path);
    if (asset == nullptr) return reply_error(response, 404, "no such page: " + request.path);
    response.set_content(std::string(asset->body), std::string(asset->content_type).c_str());
    response.set_header("Cache-Control", "no-cache");
  });
  auto unknown_post = [this](const httplib::Request& request, httplib::Response& response) {
    if (gets_.contains(request.path)) {
      response.set_header("Allow", "GET");
      return reply_error(response, 405, "use GET");
    }
    reply_error(response, 404, "no such request: " + request.path);
  };
  server_->Post(R"(/.*)", unknown_post);
  // httplib answers 400 to a POST without Content-Length before routing it; `curl -X POST`
  // sends none. Such a request has no body: it is dispatched here.
  server_->set_pre_routing_handler(
      [this, unknown_post](const httplib::Request& request, httplib::Response& response) {
        if (request.method != "POST" || request.has_header("Content-Length") ||
            request.has_header("Transfer-Encoding")) {
          return httplib::Server::HandlerResponse::Unhandled;
        }
        auto handler = posts_.find(request.path);
        if (handler != posts_.end()) {
          handler->second(request, response);
        } else {
          unknown_post(request, response);
        }
        return httplib::Server::HandlerResponse::Handled;
      });
}

void ApiServer::get(const std::string& path, const Handler& handler) {
  server_->Get(path, handler);
  gets_.insert(path);
}

void ApiServer::post(const std::string& path, Handler handler) {
  server_->Post(path, handler);
  posts_[path] = std::move(handler);
}

}  // namespace tandem
