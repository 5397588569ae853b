// Fibers: each call into an agent (a cycle, a lease keeper's tick) runs on a stack of its own, so
// that a call that waits — for simulated time to pass, for a stall or a freeze to end — steps
// aside, and the world goes on without it. Before them a wait ran the world's events on top of
// the waiting call's stack, and every call further down that stack could not return before it:
// a node's cycle stalled for 30 s held another node's take-over, which had started first, for
// those 30 s too (fresh seed 204537884: a primary that named no synchronous standby for 20 s,
// which no agent had done).
//
// One thread: only one fiber runs at a time, and the world's event queue decides which.
#pragma once

#include <ucontext.h>

#include <cstddef>
#include <exception>
#include <functional>
#include <memory>
#include <vector>

namespace tandem::sim {

class Fibers {
 public:
  struct Fiber;

  Fibers();
  ~Fibers();
  Fibers(const Fibers&) = delete;
  Fibers& operator=(const Fibers&) = delete;

  // Runs `body` on a fiber of its own until it returns or waits. `tag` is the caller's (whose
  // call it is), read back by tag(current()).
  void run(std::function<void()> body, int tag);
  // Inside a fiber: back to whoever ran or resumed it; returns when resume() is called on it.
  void wait();
  // Goes on with a waiting fiber until it returns or waits again.
  void resume(Fiber* fiber);
  // The fiber running now; nullptr on the thread's own stack.
  Fiber* current() const { return current_; }
  static int tag(const Fiber* fiber);
  // How many fibers have started and not returned.
  std::size_t waiting() const;
  // Resumes every waiting fiber until all have returned (their waits must no longer wait).
  void finish_all();

 private:
  static void entry(unsigned high, unsigned low);
  void switch_into(Fiber* fiber);

  std::vector<std::unique_ptr<Fiber>> fibers_;  // every stack made; the idle ones are reused
  Fiber* current_ = nullptr;
};

}  // namespace tandem::sim
