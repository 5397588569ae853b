#include "agent/lease_keeper.h"

#include <algorithm>

namespace tandem {

LeaseKeeper::LeaseKeeper(Store& store, std::string key, std::string self,
                         std::chrono::milliseconds ttl, Clock& clock)
    : store_(store), key_(std::move(key)), self_(std::move(self)), ttl_(ttl), clock_(clock) {}

LeaseKeeper::~LeaseKeeper() { stop(); }

void LeaseKeeper::on_renewed(std::function<void(SteadyTime)> callback) {
  std::lock_guard lock(state_mutex_);
  renewed_callback_ = std::move(callback);
}

void LeaseKeeper::on_answered(std::function<void(std::chrono::milliseconds)> callback) {
  std::lock_guard lock(state_mutex_);
  answered_callback_ = std::move(callback);
}

void LeaseKeeper::on_lost(std::function<void()> callback) {
  std::lock_guard lock(state_mutex_);
  lost_callback_ = std::move(callback);
}

// The write is sent while write_mutex_ is held; its outcome decides the state. A conflict on a
// lease that was kept means somebody else holds it now — unless the key names this node: then a
// write of its own went through although its answer was lost (etcd timed out on one member and
// the write was retried on another, which found it done), and it is renewed once more at the
// revision found.
Status LeaseKeeper::write_locked(const std::function<Result<Revision>(Revision)>& write,
                                 bool keep) {
  Revision expected = 0;
  bool was_held = false;
  std::uint64_t stalls_before = 0;
  {
    std::lock_guard lock(state_mutex_);
    expected = revision_;
    was_held = held_;
    stalls_before = stalls_handled_;
  }
  SteadyTime sent = clock_.steady_now();
  const SteadyTime first_sent = sent;
  Result<Revision> written = write(expected);
  // Lost to another holder, or found gone: expired (its holder renewed nothing for a whole
  // TTL) or removed by a taker that proved this node fenced. Only the first stops PostgreSQL
  // here; the cycle decides on the second (with quorum fencing, a primary that kept its
  // majority retakes it: stopping it would make a needless failover once etcd is back).
  bool taken = false;
  if (!written && written.error().code == ErrorCode::kConflict && (was_held || keep)) {
    auto now = store_.read(key_);
    const StoredValue* entry = now ? now->find(key_) : nullptr;
    if (keep && entry != nullptr && entry->value == self_) {
      sent = clock_.steady_now();
      written = store_.compare_and_set(key_, self_, entry->mod_revision, ttl_);
    } else {
      taken = was_held && (!now || entry != nullptr);
    }
  }
  std::function<void(SteadyTime)> renewed;
  std::function<void()> lost;
  std::function<void(std::chrono::milliseconds)> answered;
  bool stalled_out = false;
  {
    std::lock_guard lock(state_mutex_);
    answered = answered_callback_;
    // The keeper gave the lease up for a stalled cycle while this write was under way (the
    // write was the stalled cycle's): what it wrote is left to lapse, never kept — its
    // PostgreSQL is stopped and its pings say it leads nothing.
    stalled_out = written && keep && stalls_handled_ != stalls_before;
    if (stalled_out) {
      held_ = false;
      revision_ = 0;
      confirmed_at_.reset();
    } else if (written) {
      held_ = keep;
      revision_ = keep ? *written : 0;
      if (keep) {
        confirmed_at_ = sent;
        renewed = renewed_callback_;
      } else {
        confirmed_at_.reset();
      }
    } else if (written.error().code == ErrorCode::kConflict || !keep) {
      held_ = false;
      revision_ = 0;
      confirmed_at_.reset();
      if (taken) lost = lost_callback_;
    }
  }
  if (renewed) renewed(sent);
  if (written && keep && !stalled_out && !was_held) wake_thread();  // kept now: renewals start
  if (lost) lost();
  // Out of reach is not slow: the cycle says the store is unreachable.
  if (answered && (written || written.error().code == ErrorCode::kConflict)) {
    answered(
        std::chrono::duration_cast<std::chrono::milliseconds>(clock_.steady_now() - first_sent));
  }
  if (!written) return std::unexpected(written.error());
  if (stalled_out) {
    return fail(ErrorCode::kConflict,
                "the cycle stalled out while the lease was written: left to lapse");
  }
  return {};
}

Status LeaseKeeper::acquire() {
  auto write = lock_for_write();
  {
    std::lock_guard lock(state_mutex_);
    held_ = false;  // a creation is no renewal: a conflict here loses nothing
  }
  return write_locked([&](Revision) { return store_.create(key_, self_, ttl_); }, true);
}

Status LeaseKeeper::adopt(Revision revision) {
  auto write = lock_for_write();
  {
    std::lock_guard lock(state_mutex_);
    held_ = true;
    revision_ = revision;
  }
  Status adopted = write_locked(
      [&](Revision expected) { return store_.compare_and_set(key_, self_, expected, ttl_); }, true);
  // Held before the write (write_locked sees it so): the thread, asleep without the lease, is
  // woken here — a switchover's target adopts the lease handed to it, then promotes while the
  // thread renews (found by review: it slept on until a stall would have been due).
  if (adopted) wake_thread();
  return adopted;
}

Status LeaseKeeper::renew(std::chrono::milliseconds fresh) {
  auto write = lock_for_write();
  return renew_locked(fresh);
}

Status LeaseKeeper::renew_locked(std::chrono::milliseconds fresh) {
  {
    std::lock_guard lock(state_mutex_);
    if (!held_) return fail(ErrorCode::kConflict, "the lease is not held by " + self_);
    if (confirmed_at_ && clock_.steady_now() - *confirmed_at_ < fresh) return {};
  }
  return write_locked(
      [&](Revision expected) { return store_.compare_and_set(key_, self_, expected, ttl_); }, true);
}

Status LeaseKeeper::hand_over(const std::string& target) {
  auto write = lock_for_write();
  {
    std::lock_guard lock(state_mutex_);
    if (!held_) return fail(ErrorCode::kConflict, "the lease is not held by " + self_);
  }
  return write_locked(
      [&](Revision expected) { return store_.compare_and_set(key_, target, expected, ttl_); },
      false);
}

Status LeaseKeeper::release() {
  auto write = lock_for_write();
  {
    std::lock_guard lock(state_mutex_);
    if (!held_) return {};
  }
  return write_locked(
      [&](Revision expected) -> Result<Revision> {
        if (auto removed = store_.remove(key_, expected); !removed) {
          return std::unexpected(removed.error());
        }
        return Revision{0};
      },
      false);
}

void LeaseKeeper::drop() {
  auto write = lock_for_write();
  std::lock_guard lock(state_mutex_);
  held_ = false;
  revision_ = 0;
  confirmed_at_.reset();
}

bool LeaseKeeper::held() const {
  std::lock_guard lock(state_mutex_);
  return held_;
}

std::optional<LeaseKeeper::SteadyTime> LeaseKeeper::confirmed_at() const {
  std::lock_guard lock(state_mutex_);
  return held_ ? confirmed_at_ : std::nullopt;
}

void LeaseKeeper::cycle_ran(SteadyTime at) {
  std::lock_guard lock(state_mutex_);
  cycle_ran_at_ = at;
  stall_handled_ = false;
}

void LeaseKeeper::set_stall_limit(std::chrono::milliseconds limit) {
  {
    std::lock_guard lock(state_mutex_);
    stall_limit_ = limit;
  }
  wake_thread();  // its sleep was measured by the old limit
}

void LeaseKeeper::on_stalled(std::function<bool(std::chrono::milliseconds)> callback) {
  std::lock_guard lock(state_mutex_);
  stalled_callback_ = std::move(callback);
}

void LeaseKeeper::set_lock_wait(std::function<void()> wait) { lock_wait_ = std::move(wait); }

std::unique_lock<std::mutex> LeaseKeeper::lock_for_write() {
  if (!lock_wait_) return std::unique_lock(write_mutex_);
  std::unique_lock write(write_mutex_, std::try_to_lock);
  while (!write.owns_lock()) {
    lock_wait_();
    (void)write.try_lock();
  }
  return write;
}

void LeaseKeeper::tick(std::chrono::milliseconds renew_every) {
  // A write already on its way (the cycle's, say) is as good as this tick's renewal — but not
  // as its look at a stall: a cycle stalled inside a write of the lease holds the write lock
  // for the whole stall, and its pings said "leading" from its last snapshot all along (fresh
  // multi-host seed 373602019722: a switchover's target stalled while adopting the lease it
  // was handed, nobody led for 30 s).
  std::unique_lock write(write_mutex_, std::try_to_lock);
  std::optional<std::chrono::milliseconds> stalled;
  std::function<bool(std::chrono::milliseconds)> callback;
  {
    std::lock_guard lock(state_mutex_);
    // Counted from the first tick when no cycle has run yet: an agent built again on a new
    // member list, the lease passed on to it, whose first cycle hung, was kept leading with its
    // PostgreSQL down for the whole hang (multi-host seed 586998697516: nobody led for 25 s).
    if (!cycle_ran_at_) cycle_ran_at_ = clock_.steady_now();
    auto silent =
        std::chrono::duration_cast<std::chrono::milliseconds>(clock_.steady_now() - *cycle_ran_at_);
    if (stall_limit_ > std::chrono::milliseconds(0) && silent >= stall_limit_ && !stall_handled_) {
      stalled = silent;
      callback = stalled_callback_;
    }
  }
  // Asked holding the write lock when it is free: no renewal goes out meanwhile (a write the
  // stalled cycle has under way is a compare-and-set: it renews only a lease nobody else took
  // meanwhile). Asked with the lease lost too
  // (a renewal the store refused, a cut): what the stalled cycle last said — "primary, leading"
  // — must not stand for it (fresh multi-host seed 2596150244: a primary cut off from etcd
  // while its cycle hung answered so for 25 s, its postmaster stopped long since, and nobody
  // took over).
  if (stalled && (!callback || callback(*stalled))) {
    std::lock_guard lock(state_mutex_);
    stall_handled_ = true;  // once a stall
    ++stalls_handled_;
    held_ = false;  // not written: its TTL ends it
    revision_ = 0;
    confirmed_at_.reset();
    return;
  }
  if (!write.owns_lock() || !held()) return;
  (void)renew_locked(renew_every);  // unreachable: retried next tick; the watchdog fences
}

std::optional<LeaseKeeper::Kept> LeaseKeeper::kept() const {
  std::lock_guard lock(state_mutex_);
  if (!held_ || !confirmed_at_) return std::nullopt;
  return Kept{revision_, *confirmed_at_};
}

void LeaseKeeper::resume(const Kept& kept) {
  {
    std::lock_guard lock(state_mutex_);
    held_ = true;
    revision_ = kept.revision;
    confirmed_at_ = kept.confirmed_at;
  }
  wake_thread();
}

void LeaseKeeper::wake_thread() {
  {
    std::lock_guard lock(thread_mutex_);
    woken_ = true;
  }
  wake_.notify_all();
}

std::chrono::milliseconds LeaseKeeper::next_tick(std::chrono::milliseconds renew_every) const {
  using std::chrono::milliseconds;
  const milliseconds retry = renew_every / 4;
  std::lock_guard lock(state_mutex_);
  auto now = clock_.steady_now();
  std::optional<milliseconds> stall_due;
  if (stall_limit_ > milliseconds(0) && cycle_ran_at_) {
    stall_due = std::chrono::ceil<milliseconds>(*cycle_ran_at_ + stall_limit_ - now);
  }
  if (!held_) return stall_due ? std::max(retry, *stall_due) : std::chrono::hours(1);
  milliseconds next = retry;
  if (confirmed_at_) {
    milliseconds due = std::chrono::ceil<milliseconds>(*confirmed_at_ + renew_every - now);
    if (due > milliseconds(0)) next = std::min(due, renew_every);
  }
  if (stall_due) next = std::min(next, std::max(*stall_due, retry));
  return next;
}

void LeaseKeeper::start(std::chrono::milliseconds renew_every) {
  std::lock_guard lock(thread_mutex_);
  if (thread_.joinable()) return;
  stopping_ = false;
  thread_ = std::thread([this, renew_every] {
    std::unique_lock lock(thread_mutex_);
    while (!stopping_) {
      lock.unlock();
      tick(renew_every);
      auto next = next_tick(renew_every);
      lock.lock();
      wake_.wait_for(lock, next, [this] { return stopping_ || woken_; });
      woken_ = false;
    }
  });
}

void LeaseKeeper::stop() {
  {
    std::lock_guard lock(thread_mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
}

}  // namespace tandem
