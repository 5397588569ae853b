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
                         std::uint64_t list)
    : self_(std::move(self)), started_(started), list_(list) {
  for (std::string& member : members) {
    if (member != self_) peers_.insert(std::move(member));
  }
}

void ContactBook::set_members(std::vector<std::string> members, std::uint64_t list,
                              SteadyTime now) {
  std::lock_guard lock(mutex_);
  std::set<std::string> next;
  for (std::string& member : members) {
    if (member == self_) continue;
    if (!peers_.contains(member)) joined_[member] = now;
    next.insert(std::move(member));
  }
  for (auto* kept : {&served_, &backed_, &joined_}) {
    std::erase_if(*kept, [&](const auto& entry) { return !next.contains(entry.first); });
  }
  std::erase_if(answered_, [&](const auto& entry) { return !next.contains(entry.first); });
  peers_ = std::move(next);
  list_ = list;
}

std::uint64_t ContactBook::list() const {
  std::lock_guard lock(mutex_);
  return list_;
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
  if (!peers_.contains(peer) || reply.list != list_) return;
  auto found = answered_.find(peer);
  if (found != answered_.end() && found->second.at > sent) return;  // a newer ping's answer
  bool backs = !reply.leader && (reply.follows.empty() || reply.follows == self_);
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

std::optional<SteadyTime> ContactBook::majority_contact_at() const {
  std::lock_guard lock(mutex_);
  std::size_t needed = majority_of(peers_.size() + 1) - 1;
  if (needed == 0) return std::nullopt;
  std::vector<SteadyTime> times;
  for (const auto& [peer, at] : backed_) times.push_back(at);
  if (times.size() < needed) return std::nullopt;
  std::sort(times.begin(), times.end(), std::greater<>());
  return times[needed - 1];
}

QuorumFacts ContactBook::facts(SteadyTime now, milliseconds proof, milliseconds fresh) const {
  std::lock_guard lock(mutex_);
  QuorumFacts facts;
  std::size_t members = peers_.size() + 1;
  std::size_t majority = majority_of(members);

  // Majority contact: the (majority - 1)-th freshest answer that backs this agent, this agent
  // counting for itself.
  std::vector<milliseconds> ages;
  for (const std::string& peer : peers_) {
    auto backed = backed_.find(peer);
    ages.push_back(since(backed == backed_.end() ? known_since(peer) : backed->second, now));
  }
  std::sort(ages.begin(), ages.end());
  if (majority >= 2) facts.majority_contact_age = ages[majority - 2];

  // A peer is proven fenced when so many members have not been pinged by it for `proof` that
  // it cannot have had a majority: members - majority + 1 of them, this agent included.
  std::size_t needed = members - majority + 1;
  for (const std::string& peer : peers_) {
    std::size_t silent = silence_of(peer, now) >= proof ? 1 : 0;
    for (const auto& [witness, answer] : answered_) {
      if (witness == peer || since(answer.at, now) > fresh) continue;
      auto heard = answer.reply.silence.find(peer);
      if (heard != answer.reply.silence.end() && heard->second >= proof) ++silent;
    }
    if (silent >= needed) {
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
