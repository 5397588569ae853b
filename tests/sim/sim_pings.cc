#include "sim_pings.h"

#include "sim_world.h"

namespace tandem::sim {

void SimPings::start(int index) {
  std::uint64_t generation = world_.slots[index].generation;
  for (int peer = 0; peer < static_cast<int>(world_.slots.size()); ++peer) {
    if (peer == index) continue;
    dropped_.insert({index, peer});  // a new process: no connection yet
    SimTime first = world_.clock.now + world_.random_ms(SimTime(1), world_.config.ha.loop_interval);
    world_.at(first, index, [this, index, peer, generation] { tick(index, peer, generation); });
  }
}

// Mostly a few milliseconds each way; now and then long enough that the answer misses the
// ping's timeout.
SimTime SimPings::latency() {
  if (world_.rng() % 20 == 0) return world_.random_ms(SimTime(10), SimTime(90));
  return world_.random_ms(SimTime(1), SimTime(8));
}

// One round of the ping loop: a ping now, the next one a cycle later. The loop waits for the
// answer at most a cycle (its timeout), so the next ping never overtakes the last.
void SimPings::tick(int from, int to, std::uint64_t generation) {
  const Slot& caller = world_.slots[from];
  if (!caller.alive || caller.generation != generation) return;
  if (world_.agent_frozen(from)) {
    world_.at(world_.thaw_of(from), from, [=, this] { tick(from, to, generation); });
    return;
  }
  world_.at(world_.clock.now + world_.config.ha.loop_interval, from,
            [=, this] { tick(from, to, generation); });
  std::pair<int, int> link{from, to};
  if (!world_.network.linked(from, to)) {  // the connection times out
    dropped_.insert(link);
    return;
  }
  if (!world_.network.linked(to, from)) {
    // Cut one way: no new connection is made; the one still open carries this ping, whose
    // answer never comes, and is dropped.
    if (!dropped_.insert(link).second) return;
  } else {
    dropped_.erase(link);
  }
  Ping ping{from, to, generation, world_.clock.now};
  world_.at(world_.clock.now + latency(), to, [this, ping] { arrive(ping); });
}

// The peer's API: records the ping, answers with what its agent published after its last cycle.
// Over a link cut one way the ping may arrive and its answer not: the peer counts a contact
// the caller never has.
void SimPings::arrive(Ping ping) {
  if (world_.network.linked(ping.from, ping.to)) serve(ping);
}

void SimPings::serve(Ping ping) {
  Slot& peer = world_.slots[ping.to];
  if (!peer.alive || !peer.contacts) return;  // refused
  if (world_.agent_frozen(ping.to)) {         // the request waits in the socket
    world_.at(world_.thaw_of(ping.to), ping.to, [this, ping] { serve(ping); });
    return;
  }
  PingReply reply = answer_ping(*peer.board, peer.contacts.get(), world_.config.nodes[ping.to].name,
                                world_.config.nodes[ping.from].name, peer.clock->steady_now());
  world_.at(world_.clock.now + latency(), ping.from, [this, ping, reply] {
    if (world_.network.linked(ping.to, ping.from)) {
      read(ping, reply);
    } else {
      dropped_.insert({ping.from, ping.to});  // no answer: the caller drops the connection
    }
  });
}

// Whether the caller stopped waiting for the answer: its agent died or restarted, or its
// timeout (a cycle) ran out while it was not frozen.
bool SimPings::caller_gone(const Ping& ping) const {
  const Slot& caller = world_.slots[ping.from];
  if (!caller.alive || caller.generation != ping.generation) return true;
  SimTime timeout = ping.sent + world_.config.ha.loop_interval;
  return world_.clock.now > timeout && !world_.agent_frozen_at(ping.from, timeout);
}

void SimPings::read(Ping ping, const PingReply& reply) {
  if (caller_gone(ping)) return;
  if (world_.agent_frozen(ping.from)) {  // the answer waits in the socket
    world_.at(world_.thaw_of(ping.from), ping.from, [this, ping, reply] { read(ping, reply); });
    return;
  }
  Slot& caller = world_.slots[ping.from];
  // Dated when the ping was sent, as the real pinger does: an answer that waited in the socket
  // while the caller was frozen is no fresh contact.
  auto sent_at = caller.clock->steady_now() - (world_.clock.now - ping.sent);
  caller.contacts->answered(world_.config.nodes[ping.to].name, reply, sent_at);
  if (auto contact = caller.contacts->majority_contact_at())
    caller.watchdog->keep_alive_by_peers(*contact);
}

}  // namespace tandem::sim
