#include "agent/peer_pinger.h"

#include <fmt/format.h>
#include <httplib.h>

#include <nlohmann/json.hpp>

#include "proc/secret_file.h"

namespace tandem {
namespace {

using nlohmann::json;
using std::chrono::milliseconds;

}  // namespace

std::string encode_ping_reply(const std::string& name, const PingReply& reply) {
  json silence = json::object();
  for (const auto& [peer, quiet] : reply.silence) silence[peer] = quiet.count();
  return json{{"name", name},
              {"state", pg_state_name(reply.state)},
              {"leader", reply.leader},
              {"follows", reply.follows},
              {"standby_data", reply.standby_data},
              {"silence_ms", silence},
              {"list", reply.list}}
      .dump();
}

std::optional<PingReply> decode_ping_reply(std::string_view body) {
  json object = json::parse(body, nullptr, false);
  if (!object.is_object()) return std::nullopt;
  auto state = parse_pg_state(object.value("state", ""));
  if (!state) return std::nullopt;
  PingReply reply{.state = *state,
                  .leader = object.value("leader", false),
                  .follows = object.value("follows", std::string()),
                  .standby_data = object.value("standby_data", false)};
  // Agents of earlier versions send no list: they run tandem.yaml's (0).
  if (object.contains("list") && object["list"].is_number_unsigned()) {
    reply.list = object["list"].get<std::uint64_t>();
  }
  auto silence = object.find("silence_ms");
  if (silence != object.end() && silence->is_object()) {
    for (const auto& [peer, quiet] : silence->items()) {
      if (quiet.is_number_integer()) reply.silence[peer] = milliseconds(quiet.get<std::int64_t>());
    }
  }
  return reply;
}

PeerPinger::PeerPinger(const ClusterConfig& config, const NodeConfig& self, ContactBook& contacts,
                       Watchdog* watchdog, Clock& clock)
    : config_(config), self_(self), contacts_(contacts), watchdog_(watchdog), clock_(clock) {}

PeerPinger::~PeerPinger() { stop(); }

void PeerPinger::start() {
  // The other agents' APIs record a ping only with the token they share (api.token_file).
  if (!config_.api.token_file.empty()) {
    if (auto token = read_secret_file(config_.api.token_file)) token_ = *token;
  }
  for (const NodeConfig& peer : config_.nodes) {
    if (peer.name == self_.name || peer.api_port == 0) continue;
    threads_.emplace_back([this, &peer] { ping_loop(peer); });
  }
}

void PeerPinger::stop() {
  stopping_ = true;
  for (std::thread& thread : threads_) {
    if (thread.joinable()) thread.join();
  }
  threads_.clear();
}

void PeerPinger::ping_loop(const NodeConfig& peer) {
  milliseconds interval = config_.ha.loop_interval;
  milliseconds timeout = interval;  // part of proof_of_fencing's arithmetic
  std::string address = api_url(config_, peer);
  std::string path = "/ping?from=" + self_.name;
  std::unique_ptr<httplib::Client> client;
  auto next = clock_.steady_now();
  while (!stopping_) {
    if (!client) {
      client = std::make_unique<httplib::Client>(address);
      client->enable_server_certificate_verification(false);
      client->set_connection_timeout(timeout);
      client->set_read_timeout(timeout);
      client->set_write_timeout(timeout);
      client->set_keep_alive(true);
    }
    // An answer is dated when its ping was sent, not when it was read: the peer served it after
    // that, and a pinger stalled before it reads the answer (a stall of its thread, swap) must
    // not make an old contact look fresh (issue 16.6: the proof's margin is ~90 ms).
    auto sent = clock_.steady_now();
    httplib::Headers headers;
    if (!token_.empty()) headers.emplace("Authorization", "Bearer " + token_);
    auto reply = client->Get(path, headers);
    auto now = clock_.steady_now();
    if (reply && reply->status == 200) {
      if (auto decoded = decode_ping_reply(reply->body)) {
        contacts_.answered(peer.name, std::move(*decoded), sent);
        if (watchdog_ != nullptr) {
          if (auto at = contacts_.majority_contact_at()) watchdog_->keep_alive_by_peers(*at);
        }
      }
    } else {
      client.reset();  // a fresh connection next time
    }
    next += interval;
    if (next < now) next = now;
    auto left = std::chrono::ceil<milliseconds>(next - clock_.steady_now());
    if (left > milliseconds(0)) clock_.sleep_for(left);
  }
}

}  // namespace tandem
