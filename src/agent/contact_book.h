// ContactBook: what an agent knows from talking to the other agents directly, without the store
// (quorum fencing, used with etcd). Every agent pings every other agent every cycle; a ping
// that reaches a peer is recorded there ("served"), its answer here ("answered").
//
// The two facts the HA policy needs follow from that:
// - a primary's majority contact: how long since the answers of enough peers to make a
//   majority with itself. A primary without it for renew_deadline fences itself.
// - a peer proven fenced: enough members (so many that the peer cannot have had a majority)
//   have not been pinged by it for `proof` now. Because a primary counts only answered pings,
//   and a ping is answered only after the peer recorded it, such a primary has been without a
//   majority for at least proof - (ping timeout + freshness) and so has fenced itself.
#pragma once

#include <chrono>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "core/cluster_view.h"

namespace tandem {

using SteadyTime = std::chrono::steady_clock::time_point;

// What a peer answered to a ping: its state, and how long each agent has not pinged it.
struct PingReply {
  PgState state = PgState::kStopped;
  bool leader = false;
  // Who holds the lease in the answering agent's last view of the store: empty when nobody, or
  // when it could not read the store (issue 16.3: only answers that do not name another leader
  // count towards the caller's majority contact).
  std::string follows;
  // Its data directory is a standby's (standby.signal): starting or not, it accepts no write
  // but after a promotion, which takes the lease first.
  bool standby_data = false;
  std::map<std::string, std::chrono::milliseconds> silence;
  // The member list the answering agent counts over (ClusterConfig::member_list): an answer
  // from another list's agent is not counted (see ContactBook::set_members).
  std::uint64_t list = 0;
};

struct QuorumFacts {
  std::chrono::milliseconds majority_contact_age{0};
  std::vector<std::string> proven_fenced;
  // May still write: no fresh answer as a read-only node without the lease, and not fenced.
  std::vector<std::string> takeover_blockers;
};

class ContactBook {
 public:
  // `members`: every node of the cluster, `self` among them; `list`: the version of that list.
  ContactBook(std::string self, std::vector<std::string> members, SteadyTime started,
              std::uint64_t list = 0);

  // The members changed (several machines, `tandem member`): counted over `members` from now
  // on, what the staying peers said kept, a new peer's silence counted from `now`. Only the
  // answers of agents that run the same list count (see every_agent_took: at most two lists
  // are ever run, and an agent left behind on an older one gets no majority from the others).
  void set_members(std::vector<std::string> members, std::uint64_t list, SteadyTime now);
  std::uint64_t list() const;

  void served(const std::string& peer, SteadyTime now);
  // `sent`: when the ping this answers was sent (an answer dated earlier than the one kept is
  // an older ping's, and ignored). An answer from an agent on another member list is ignored.
  void answered(const std::string& peer, PingReply reply, SteadyTime sent);

  // Per peer, how long it has not pinged this agent (since this agent started, at most).
  std::map<std::string, std::chrono::milliseconds> silence(SteadyTime now) const;

  // `proof`: the silence that proves a peer fenced; `fresh`: how old a peer's answer may be to
  // count as its word now.
  QuorumFacts facts(SteadyTime now, std::chrono::milliseconds proof,
                    std::chrono::milliseconds fresh) const;

  // When the answers of enough peers to make a majority with this agent were last complete: the
  // (majority - 1)-th latest answer; nullopt before there are that many. Only answers that back
  // this agent count: from a peer that neither leads nor takes another node for the leader. A
  // primary frozen or cut off while another took over must not write on because the others,
  // now following the new leader, still answer it (issue 16.3).
  std::optional<SteadyTime> majority_contact_at() const;

  const std::string& self() const { return self_; }
  bool knows(const std::string& peer) const;

 private:
  struct Answer {
    SteadyTime at;
    PingReply reply;
  };
  std::chrono::milliseconds silence_of(const std::string& peer, SteadyTime now) const;
  SteadyTime known_since(const std::string& peer) const;  // its start, or when it joined

  std::string self_;
  SteadyTime started_;
  mutable std::mutex mutex_;
  std::set<std::string> peers_;
  std::uint64_t list_ = 0;
  std::map<std::string, SteadyTime> joined_;  // peers added since the start, and when
  std::map<std::string, SteadyTime> served_;
  std::map<std::string, Answer> answered_;
  std::map<std::string, SteadyTime> backed_;  // per peer, its last answer that backs this agent
};

// How many members make a majority of `members`.
inline std::size_t majority_of(std::size_t members) { return members / 2 + 1; }

}  // namespace tandem
