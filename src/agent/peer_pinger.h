// PeerPinger: a thread per other agent that pings it (GET /ping?from=<self>) every cycle, with
// the cycle as its timeout, and records each answer in the ContactBook. Its times come from the
// agent's Clock, the one the API reads when it records a ping served: the ContactBook compares
// the two.
#pragma once

#include <atomic>
#include <thread>
#include <vector>

#include "agent/contact_book.h"
#include "agent/fencing_watchdog.h"
#include "common/clock.h"
#include "core/cluster_config.h"

namespace tandem {

class PeerPinger {
 public:
  // `watchdog`, if any, learns every time a majority has answered. REQUIRES: everything passed
  // outlives the pinger.
  PeerPinger(const ClusterConfig& config, const NodeConfig& self, ContactBook& contacts,
             Watchdog* watchdog, Clock& clock);
  ~PeerPinger();
  void start();
  void stop();

 private:
  void ping_loop(const NodeConfig& peer);

  const ClusterConfig& config_;
  const NodeConfig& self_;
  ContactBook& contacts_;
  Watchdog* watchdog_;
  Clock& clock_;
  std::string token_;  // the API token, sent with every ping; empty without one
  std::atomic<bool> stopping_{false};
  std::vector<std::thread> threads_;
};

// The body of a ping's answer, and back.
std::string encode_ping_reply(const std::string& name, const PingReply& reply);
std::optional<PingReply> decode_ping_reply(std::string_view body);

}  // namespace tandem
