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
#include <limits>
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

// The list a removed agent's answers carry (ContactBook::leave): no agent's.
inline constexpr std::uint64_t kLeftTheCluster = std::numeric_limits<std::uint64_t>::max();

struct QuorumFacts {
  std::chrono::milliseconds majority_contact_age{0};
  std::vector<std::string> proven_fenced;
  // May still write: no fresh answer as a read-only node without the lease, and not fenced.
  std::vector<std::string> takeover_blockers;
};

class ContactBook {
 public:
  // `members`: every node of the cluster, `self` among them; `list`: the version of that list;
  // `previous`: while a change of the members is under way, the list before it (see
  // set_members), else empty.
  ContactBook(std::string self, std::vector<std::string> members, SteadyTime started,
              std::uint64_t list = 0, std::vector<std::string> previous = {});

  // The members changed (several machines, `tandem member`): what the staying peers said is
  // kept, a new peer's silence counted from `now`. Only the answers of agents that run the same
  // list count: one left behind on an older list gets no majority from the others.
  //
  // Until end_change(), every count is made over both lists, `previous` and `members`: a
  // majority contact needs a majority of each, a proof of fencing enough silent members in
  // each, and a member of either may block a takeover. The others move to the new list one by
  // one, and a primary still counting over the old one (its majority of three) and a taker
  // counting over the new one alone (two silent of four) could both be right; counted over
  // both, any majority contact and any proof meet in a member.
  void set_members(std::vector<std::string> members, std::uint64_t list, SteadyTime now,
                   std::vector<std::string> previous = {});
  // The same for an agent that skipped lists (left behind, added back): nothing it heard
  // before counts, as after a restart.
  void start_afresh(std::vector<std::string> members, std::uint64_t list, SteadyTime now,
                    std::vector<std::string> previous);
  // Every agent of the list runs it, and long enough for what an agent left behind counted
  // to have lapsed (the agent waits proof_of_fencing after seeing the last one say so):
  // counted over the list alone from now on.
  void end_change();
  bool changing() const;
  // The list this agent counts over, which its answers carry: kLeftTheCluster once it left.
  std::uint64_t list() const;
  // This agent was removed: from now on, until its process ends, its answers back nobody.
  // Called before it says in the store that it left (its member list acknowledgement), on which
  // word the others end the change (previous_list_left) once what they counted has lapsed. A
  // removed agent that went on backing a primary left on the old list while it shut down kept
  // that primary writing beside the one the new list's agents elected (fresh multi-host seed
  // 980014699).
  void leave();

  void served(const std::string& peer, SteadyTime now);
  // `sent`: when the ping this answers was sent (an answer dated earlier than the one kept is
  // an older ping's, and ignored). An answer from an agent on another member list backs
  // nobody (see set_members); what it says of the pings it served counts.
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
  void set_lists(std::vector<std::string> members, std::vector<std::string> previous);
  // The (needed)-th latest answer backing this agent among `list`'s other members, needed
  // being what makes a majority of `list` with this agent (if on it); nullopt when fewer
  // answered; `now` when none is needed.
  std::optional<SteadyTime> majority_contact_in(const std::set<std::string>& list,
                                                SteadyTime now) const;
  bool proven_fenced_in(const std::set<std::string>& list, const std::string& peer, SteadyTime now,
                        std::chrono::milliseconds proof, std::chrono::milliseconds fresh) const;

  std::string self_;
  SteadyTime started_;
  mutable std::mutex mutex_;
  std::set<std::string> peers_;  // every other member of any list counted over
  // The lists counted over, each with this agent if it is on it: the list, and the one before
  // it while a change is under way.
  std::vector<std::set<std::string>> lists_;
  std::uint64_t list_ = 0;
  bool left_ = false;                         // leave()
  std::map<std::string, SteadyTime> joined_;  // peers added since the start, and when
  std::map<std::string, SteadyTime> served_;
  std::map<std::string, Answer> answered_;
  std::map<std::string, SteadyTime> backed_;  // per peer, its last answer that backs this agent
};

// How many members make a majority of `members`.
inline std::size_t majority_of(std::size_t members) { return members / 2 + 1; }

}  // namespace tandem
