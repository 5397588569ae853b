#include "agent/contact_book.h"

#include <algorithm>

namespace tandem {
namespace {

using std::chrono::milliseconds;

milliseconds since(SteadyTime then, SteadyTime now) {
  return std::max(milliseconds(0), std::chrono::duration_cast<milliseconds>(now - then));
}

}  // namespace

ContactBook::ContactBook(std::string self, std::vector<std::string> members, SteadyTime started,
                         std::uint64_t list, std::vector<std::string> previous)
    : self_(std::move(self)), started_(started), list_(list) {
  set_lists(std::move(members), std::move(previous));
}

void ContactBook::set_lists(std::vector<std::string> members, std::vector<std::string> previous) {
  lists_.clear();
  peers_.clear();
  for (auto* names : {&members, &previous}) {
    if (names->empty()) continue;
    std::set<std::string> list(names->begin(), names->end());
    for (const std::string& name : list) {
      if (name != self_) peers_.insert(name);
    }
    lists_.push_back(std::move(list));
  }
}

void ContactBook::set_members(std::vector<std::string> members, std::uint64_t list, SteadyTime now,
                              std::vector<std::string> previous) {
  std::lock_guard lock(mutex_);
  std::set<std::string> before = peers_;
  set_lists(std::move(members), std::move(previous));
  for (const std::string& peer : peers_) {
    if (!before.contains(peer)) joined_[peer] = now;
  }
  for (auto* kept : {&served_, &backed_, &joined_}) {
    std::erase_if(*kept, [&](const auto& entry) { return !peers_.contains(entry.first); });
  }
  std::erase_if(answered_, [&](const auto& entry) { return !peers_.contains(entry.first); });
  list_ = list;
}

void ContactBook::start_afresh(std::vector<std::string> members, std::uint64_t list, SteadyTime now,
                               std::vector<std::string> previous) {
  std::lock_guard lock(mutex_);
  set_lists(std::move(members), std::move(previous));
  served_.clear();
  answered_.clear();
  backed_.clear();
  joined_.clear();
  started_ = now;
  list_ = list;
}

void ContactBook::end_change() {
  std::lock_guard lock(mutex_);
  if (lists_.size() < 2) return;
  std::set<std::string> members = lists_.front();
  set_lists(std::vector<std::string>(members.begin(), members.end()), {});
  std::erase_if(served_, [&](const auto& entry) { return !peers_.contains(entry.first); });
  std::erase_if(backed_, [&](const auto& entry) { return !peers_.contains(entry.first); });
  std::erase_if(joined_, [&](const auto& entry) { return !peers_.contains(entry.first); });
  std::erase_if(answered_, [&](const auto& entry) { return !peers_.contains(entry.first); });
}

bool ContactBook::changing() const {
  std::lock_guard lock(mutex_);
  return lists_.size() > 1;
}

std::uint64_t ContactBook::list() const {
  std::lock_guard lock(mutex_);
  return left_ ? kLeftTheCluster : list_;
}

void ContactBook::leave() {
  std::lock_guard lock(mutex_);
  left_ = true;
}

bool ContactBook::knows(const std::string& peer) const {
  std::lock_guard lock(mutex_);
  return peers_.contains(peer);
}

void ContactBook::served(const std::string& peer, SteadyTime now) {
  std::lock_guard lock(mutex_);
  if (!peers_.contains(peer)) return;
  served_[peer] = now;
}

void ContactBook::answered(const std::string& peer, PingReply reply, SteadyTime sent) {
  std::lock_guard lock(mutex_);
  if (!peers_.contains(peer)) return;
  auto found = answered_.find(peer);
  if (found != answered_.end() && found->second.at > sent) return;  // a newer ping's answer
  // What it says of itself and of the pings it served holds whatever list it runs; its backing
  // counts only from an agent on this list (or, while the change is under way, the one before):
  // an agent left behind on an older list gets no majority contact from the others.
  bool same_list = reply.list != kLeftTheCluster &&
                   (reply.list == list_ || (lists_.size() > 1 && reply.list + 1 == list_));
  bool backs = same_list && !reply.leader && (reply.follows.empty() || reply.follows == self_);
  answered_[peer] = {sent, std::move(reply)};
  if (backs) {
    auto kept = backed_.find(peer);
    if (kept == backed_.end() || kept->second < sent) backed_[peer] = sent;
  }
}

SteadyTime ContactBook::known_since(const std::string& peer) const {
  auto joined = joined_.find(peer);
  return joined == joined_.end() ? started_ : joined->second;
}

milliseconds ContactBook::silence_of(const std::string& peer, SteadyTime now) const {
  auto found = served_.find(peer);
  SteadyTime since_start = known_since(peer);
  return since(found == served_.end() ? since_start : std::max(found->second, since_start), now);
}

std::map<std::string, milliseconds> ContactBook::silence(SteadyTime now) const {
  std::lock_guard lock(mutex_);
  std::map<std::string, milliseconds> silences;
  for (const std::string& peer : peers_) silences[peer] = silence_of(peer, now);
  return silences;
}

std::optional<SteadyTime> ContactBook::majority_contact_in(const std::set<std::string>& list,
                                                           SteadyTime now) const {
  std::size_t needed = majority_of(list.size()) - (list.contains(self_) ? 1 : 0);
  if (needed == 0) return now;
  std::vector<SteadyTime> times;
  for (const auto& [peer, at] : backed_) {
    if (list.contains(peer)) times.push_back(at);
  }
  if (times.size() < needed) return std::nullopt;
  std::sort(times.begin(), times.end(), std::greater<>());
  return times[needed - 1];
}

std::optional<SteadyTime> ContactBook::majority_contact_at() const {
  std::lock_guard lock(mutex_);
  // A cluster of one node: no majority contact to speak of.
  if (lists_.size() == 1 && majority_of(lists_.front().size()) <= 1) return std::nullopt;
  std::optional<SteadyTime> oldest;
  SteadyTime now = SteadyTime::max();
  for (const std::set<std::string>& list : lists_) {
    auto at = majority_contact_in(list, now);
    if (!at) return std::nullopt;
    if (*at != now && (!oldest || *at < *oldest)) oldest = at;
  }
  return oldest;
}

bool ContactBook::proven_fenced_in(const std::set<std::string>& list, const std::string& peer,
                                   SteadyTime now, milliseconds proof, milliseconds fresh) const {
  // So many members have not been pinged by it for `proof` that it cannot have had a majority
  // of `list`: members - majority + 1 of them, this agent included.
  std::size_t needed = list.size() - majority_of(list.size()) + 1;
  std::size_t silent = list.contains(self_) && silence_of(peer, now) >= proof ? 1 : 0;
  for (const auto& [witness, answer] : answered_) {
    if (witness == peer || !list.contains(witness) || since(answer.at, now) > fresh) continue;
    auto heard = answer.reply.silence.find(peer);
    if (heard != answer.reply.silence.end() && heard->second >= proof) ++silent;
  }
  return silent >= needed;
}

QuorumFacts ContactBook::facts(SteadyTime now, milliseconds proof, milliseconds fresh) const {
  std::lock_guard lock(mutex_);
  QuorumFacts facts;
  // Majority contact: in each list counted over, the (majority - 1)-th freshest answer that
  // backs this agent (this agent counting for itself); the oldest of them.
  for (const std::set<std::string>& list : lists_) {
    std::vector<milliseconds> ages;
    for (const std::string& peer : list) {
      if (peer == self_) continue;
      auto backed = backed_.find(peer);
      ages.push_back(since(backed == backed_.end() ? known_since(peer) : backed->second, now));
    }
    std::sort(ages.begin(), ages.end());
    std::size_t needed = majority_of(list.size()) - (list.contains(self_) ? 1 : 0);
    if (needed >= 1 && needed <= ages.size()) {
      facts.majority_contact_age = std::max(facts.majority_contact_age, ages[needed - 1]);
    }
  }

  for (const std::string& peer : peers_) {
    bool fenced = std::all_of(lists_.begin(), lists_.end(), [&](const std::set<std::string>& list) {
      return proven_fenced_in(list, peer, now, proof, fresh);
    });
    if (fenced) {
      facts.proven_fenced.push_back(peer);
      continue;
    }
    auto answer = answered_.find(peer);
    // Read-only now, and without the lease it cannot become writable but by winning it. A
    // server still starting may be a primary in crash recovery, unless its data is a standby's
    // (one whose recovery waits for WAL nobody has starts for ever: it must hold nobody back).
    const PingReply* reply = answer != answered_.end() ? &answer->second.reply : nullptr;
    bool cannot_write = reply != nullptr && since(answer->second.at, now) <= fresh &&
                        !reply->leader && reply->state != PgState::kPrimary &&
                        (reply->state != PgState::kStarting || reply->standby_data);
    if (!cannot_write) facts.takeover_blockers.push_back(peer);
  }
  return facts;
}

}  // namespace tandem
