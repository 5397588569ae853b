// The clock seam: code that needs "now" takes a Clock so tests can set time.
#pragma once

#include <time.h>

#include <chrono>
#include <thread>

namespace tandem {

class Clock {
 public:
  virtual ~Clock() = default;
  // Wall-clock time, for records a person reads (history, "inactive since").
  virtual std::chrono::system_clock::time_point wall_now() const = 0;
  // Monotonic time, for deadlines and intervals. SystemClock's goes on while the machine is
  // suspended (CLOCK_BOOTTIME): a lease or a majority of answers confirmed before a suspend
  // must look as old as it is after the resume (CLOCK_MONOTONIC stops meanwhile, and a resumed
  // primary believed no time had passed). Every process of tandem reads the same clock.
  virtual std::chrono::steady_clock::time_point steady_now() const = 0;
  virtual void sleep_for(std::chrono::milliseconds duration) = 0;
};

// The wall clock in milliseconds since the epoch (what the store's records hold).
inline std::int64_t wall_ms_of(const Clock& clock) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(clock.wall_now().time_since_epoch())
      .count();
}

class SystemClock final : public Clock {
 public:
  std::chrono::system_clock::time_point wall_now() const override {
    return std::chrono::system_clock::now();
  }
  std::chrono::steady_clock::time_point steady_now() const override {
    timespec now{};
    clock_gettime(CLOCK_BOOTTIME, &now);
    return std::chrono::steady_clock::time_point(std::chrono::seconds(now.tv_sec) +
                                                 std::chrono::nanoseconds(now.tv_nsec));
  }
  void sleep_for(std::chrono::milliseconds duration) override {
    std::this_thread::sleep_for(duration);
  }
};

// Asks `done` every `interval` until it says true or `timeout` has passed; returns its last
// answer. Polling with a deadline, never a fixed sleep, is how tandem waits for a server.
template <typename Predicate>
bool poll_until(Clock& clock, std::chrono::milliseconds timeout, std::chrono::milliseconds interval,
                Predicate done) {
  auto deadline = clock.steady_now() + timeout;
  while (true) {
    if (done()) return true;
    if (clock.steady_now() >= deadline) return false;
    clock.sleep_for(interval);
  }
}

}  // namespace tandem
