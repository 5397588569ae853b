// LeaseKeeper: the one writer of this agent's lease. While the lease is held, a thread of its own
// renews it every `renew_every`, so that no long step of the cycle — a promotion, a checkpoint,
// a rewind, a slow read of the store — lets it lapse under its holder (a lapse mid-promotion
// used to start a chain of promotions on a busy machine).
//
// Every renewal is a compare-and-set on the revision of the keeper's own last write. A renewal
// that finds another holder (or cannot tell) ends the keeping and calls `on_lost` at once (from
// the keeper's thread): the agent stops a writable PostgreSQL without waiting for its cycle. One
// that finds the key gone ends the keeping only: the cycle decides. A renewal is
// confirmed as of the moment it was SENT: the store started the new TTL later than that, so a
// deadline measured from the confirmation never outlives the key.
//
// Thread-safe. The thread is optional (start()): tests and the simulation call tick().
#pragma once

#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include "common/clock.h"
#include "dcs/store.h"

namespace tandem {

class LeaseKeeper {
 public:
  using SteadyTime = std::chrono::steady_clock::time_point;

  // REQUIRES: `store` and `clock` outlive the keeper.
  LeaseKeeper(Store& store, std::string key, std::string self, std::chrono::milliseconds ttl,
              Clock& clock);
  ~LeaseKeeper();
  LeaseKeeper(const LeaseKeeper&) = delete;
  LeaseKeeper& operator=(const LeaseKeeper&) = delete;

  // Called from whichever thread confirmed a renewal, with the time it was sent.
  void on_renewed(std::function<void(SteadyTime)> callback);
  // Called after every write of the lease the store answered (done or refused), with how long
  // it took (a store slow to answer fences a primary long before it fails outright).
  void on_answered(std::function<void(std::chrono::milliseconds)> callback);
  // Called from whichever thread found that another node holds the lease now (or could not
  // read the store right after a failed compare-and-set to tell).
  void on_lost(std::function<void()> callback);

  // Creates the lease if nobody holds it and keeps it; kConflict if somebody does.
  Status acquire();
  // Keeps a lease this node holds at `revision` in the store (handed over to it, or held
  // before the agent restarted): renews it at once.
  Status adopt(Revision revision);
  // Renews now, unless a renewal was confirmed less than `fresh` ago. REQUIRES: held().
  Status renew(std::chrono::milliseconds fresh = std::chrono::milliseconds(0));
  // Gives the lease to `target` by compare-and-set; not kept any more, whatever the outcome.
  Status hand_over(const std::string& target);
  // Removes the lease by compare-and-set; not kept any more, whatever the outcome.
  Status release();
  // Stops keeping the lease without writing (fenced, demoted: its TTL ends it).
  void drop();

  bool held() const;
  // When the last confirmed renewal (or the creation) was sent; nullopt while not held.
  std::optional<SteadyTime> confirmed_at() const;

  // A held lease, as a keeper passes it on to the one that replaces it (the agent built again
  // on a new member list): the revision of its last write and when that write was confirmed.
  struct Kept {
    Revision revision = 0;
    SteadyTime confirmed_at{};
  };
  // nullopt when not held. REQUIRES: the thread stopped (stop()), so that no renewal changes it.
  std::optional<Kept> kept() const;
  // Holds the lease as `kept` says, before start(): renewed from there as if by this keeper.
  void resume(const Kept& kept);

  // The agent's cycle ran at `at`. The thread renews for a cycle that runs: once the cycle has
  // not run for `limit` (set_stall_limit; a call that never returns), it asks `on_stalled`
  // (with how long the cycle has been silent; held or not, once a stall unless it says no) and,
  // if it says so, stops keeping the lease — the lease lapses, another node leads. A keeper
  // renewing for a hung cycle kept a leader whose PostgreSQL had died, and nobody led, for as long
  // as the hang. `on_stalled` says no where nobody else may lead (synchronous mode, no synchronous
  // standby): it is asked again.
  void cycle_ran(SteadyTime at);
  void set_stall_limit(std::chrono::milliseconds limit);
  void on_stalled(std::function<bool(std::chrono::milliseconds)> callback);

  // Renews from a thread of its own every `renew_every` while the lease is held; not held, the
  // thread wakes only when a cycle would count as stalled, or when the lease is kept again.
  void start(std::chrono::milliseconds renew_every);
  void stop();
  // What that thread does each time: renews a held lease whose last confirmation is at least
  // `renew_every` old.
  void tick(std::chrono::milliseconds renew_every);
  // How long that thread sleeps after a tick. Held: until the next renewal is due, or a quarter
  // of `renew_every` when it is due already (a renewal that failed, a write of the cycle's under
  // way), at most `renew_every` (it used to tick four times per renewal: sixteen wakes a second
  // with the defaults, where four do); or, if sooner, when the cycle that ran last would count
  // as stalled (a quarter of `renew_every` at least), which is all it waits for when not held.
  std::chrono::milliseconds next_tick(std::chrono::milliseconds renew_every) const;

  // How a write waits while another thread's write is out: blocked on the lock, unless this is
  // set (the simulation, whose threads are fibers of one thread: it lets simulated time pass
  // between tries, as a blocked thread's would).
  void set_lock_wait(std::function<void()> wait);

 private:
  std::unique_lock<std::mutex> lock_for_write();
  Status renew_locked(std::chrono::milliseconds fresh);
  Status write_locked(const std::function<Result<Revision>(Revision)>& write, bool keep);
  void lost_locked();
  void wake_thread();

  Store& store_;
  const std::string key_;
  const std::string self_;
  const std::chrono::milliseconds ttl_;
  Clock& clock_;

  // Held during every store write, so that the thread and the cycle never race on a revision.
  std::mutex write_mutex_;
  std::function<void()> lock_wait_;
  mutable std::mutex state_mutex_;
  bool held_ = false;
  Revision revision_ = 0;
  std::optional<SteadyTime> confirmed_at_;
  std::function<void(SteadyTime)> renewed_callback_;
  std::function<void(std::chrono::milliseconds)> answered_callback_;
  std::function<void()> lost_callback_;
  std::function<bool(std::chrono::milliseconds)> stalled_callback_;
  std::optional<SteadyTime> cycle_ran_at_;
  std::uint64_t stalls_handled_ = 0;  // a write under way while one is handled keeps nothing
  bool stall_handled_ = false;        // on_stalled said yes for this stall: not asked again
  std::chrono::milliseconds stall_limit_{0};  // 0: no limit

  std::thread thread_;
  std::mutex thread_mutex_;
  std::condition_variable wake_;
  bool stopping_ = false;
  bool woken_ = false;  // the lease is kept again: the next tick at once
};

}  // namespace tandem
