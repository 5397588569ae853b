// The agents' pings of each other in a multi-host simulation: what the PeerPinger does for real
// (per peer, GET /ping every cycle with the cycle as its timeout; an answer goes into the
// ContactBook, and the watchdog learns the new majority contact) and what the API's /ping
// handler does (records the ping as served, answers with this node's last published state,
// whether it leads, and its silence map), over the simulated network.
//
// The pinger and the API are threads of the agent's process: a frozen agent (or host) neither
// pings nor answers. A request that reaches a frozen agent waits in its socket and is served
// when it thaws; an answer that reaches a frozen caller is read when it thaws, with the time of
// reading — as poll() hands over data that arrived while the process was stopped.
//
// Each pinger keeps one TCP connection per peer and drops it when a ping goes unanswered (a
// fresh connection next time). Over a link cut one way, the ping sent on a connection made
// before the cut still arrives and its answer does not; a new connection needs both ways (its
// SYN-ACK is lost), so nothing more arrives until the link heals.
#pragma once

#include <cstdint>
#include <set>
#include <utility>

#include "agent/contact_book.h"
#include "sim_network.h"

namespace tandem::sim {

class World;

class SimPings {
 public:
  explicit SimPings(World& world) : world_(world) {}
  // The agent of `index` (re)started with a fresh ContactBook: it pings every peer every cycle.
  void start(int index);

 private:
  struct Ping {
    int from = 0;
    int to = 0;
    std::uint64_t generation = 0;  // of the caller's agent: a restarted agent pings anew
    SimTime sent{0};
  };
  void tick(int from, int to, std::uint64_t generation);
  void arrive(Ping ping);
  void serve(Ping ping);
  void read(Ping ping, const PingReply& reply);
  bool caller_gone(const Ping& ping) const;
  SimTime latency();

  World& world_;
  std::set<std::pair<int, int>> dropped_;  // (from, to): connections a timeout ended
};

}  // namespace tandem::sim
