#include "sim_fibers.h"

#include <cstdint>
#include <cstdlib>
#include <stdexcept>

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/common_interface_defs.h>
#define TANDEM_SIM_ASAN 1
#endif

namespace tandem::sim {
namespace {

// The agent's code formats log lines and builds plans on these stacks; the sanitizer's build
// takes about three times the stack of the release build.
constexpr std::size_t kStackSize = 1024 * 1024;

// The address sanitizer must be told of each switch of stacks (its documented fiber API), or it
// reports the other stack's frames as overflows.
void start_switch([[maybe_unused]] void** fake_stack, [[maybe_unused]] const void* bottom,
                  [[maybe_unused]] std::size_t size) {
#ifdef TANDEM_SIM_ASAN
  __sanitizer_start_switch_fiber(fake_stack, bottom, size);
#endif
}

void finish_switch([[maybe_unused]] void* fake_stack, [[maybe_unused]] const void** bottom,
                   [[maybe_unused]] std::size_t* size) {
#ifdef TANDEM_SIM_ASAN
  __sanitizer_finish_switch_fiber(fake_stack, bottom, size);
#endif
}

}  // namespace

struct Fibers::Fiber {
  Fibers* owner = nullptr;
  ucontext_t context{};
  ucontext_t caller{};
  std::unique_ptr<char[]> stack;
  std::function<void()> body;
  std::exception_ptr failure;  // an exception the body let out, raised again in its resumer
  Fiber* outer = nullptr;      // the fiber that ran or resumed this one
  int tag = 0;
  bool running = false;  // started and not returned
  void* fake_stack = nullptr;
  const void* caller_bottom = nullptr;
  std::size_t caller_size = 0;
};

Fibers::Fibers() = default;

Fibers::~Fibers() {
  // A fiber that never returned holds objects on its stack: they are not destroyed. The world
  // finishes every fiber before it goes (finish_all).
  if (waiting() != 0) std::abort();
}

int Fibers::tag(const Fiber* fiber) { return fiber->tag; }

std::size_t Fibers::waiting() const {
  std::size_t count = 0;
  for (const auto& fiber : fibers_) count += fiber->running ? 1 : 0;
  return count;
}

void Fibers::run(std::function<void()> body, int tag) {
  Fiber* fiber = nullptr;
  for (const auto& idle : fibers_) {
    if (!idle->running) {
      fiber = idle.get();
      break;
    }
  }
  if (fiber == nullptr) {
    fibers_.push_back(std::make_unique<Fiber>());
    fiber = fibers_.back().get();
    fiber->owner = this;
    fiber->stack.reset(new char[kStackSize]);
  }
  fiber->body = std::move(body);
  fiber->tag = tag;
  fiber->running = true;
  fiber->failure = nullptr;
  getcontext(&fiber->context);
  fiber->context.uc_stack.ss_sp = fiber->stack.get();
  fiber->context.uc_stack.ss_size = kStackSize;
  fiber->context.uc_link = nullptr;
  auto address = reinterpret_cast<std::uintptr_t>(fiber);
  // makecontext passes int arguments: the pointer goes in two halves.
  makecontext(&fiber->context, reinterpret_cast<void (*)()>(&Fibers::entry), 2,
              static_cast<unsigned>(address >> 32), static_cast<unsigned>(address & 0xffffffffU));
  switch_into(fiber);
}

void Fibers::resume(Fiber* fiber) {
  if (!fiber->running) return;
  switch_into(fiber);
}

void Fibers::switch_into(Fiber* fiber) {
  fiber->outer = current_;
  current_ = fiber;
  void* fake_stack = nullptr;
  start_switch(&fake_stack, fiber->stack.get(), kStackSize);
  swapcontext(&fiber->caller, &fiber->context);
  finish_switch(fake_stack, nullptr, nullptr);
  current_ = fiber->outer;
  if (fiber->failure) {
    std::exception_ptr failure = fiber->failure;
    fiber->failure = nullptr;
    std::rethrow_exception(failure);
  }
}

void Fibers::wait() {
  Fiber* fiber = current_;
  if (fiber == nullptr) throw std::logic_error("Fibers::wait outside a fiber");
  start_switch(&fiber->fake_stack, fiber->caller_bottom, fiber->caller_size);
  swapcontext(&fiber->context, &fiber->caller);
  finish_switch(fiber->fake_stack, &fiber->caller_bottom, &fiber->caller_size);
}

void Fibers::entry(unsigned high, unsigned low) {
  auto* fiber = reinterpret_cast<Fiber*>((static_cast<std::uintptr_t>(high) << 32) |
                                         static_cast<std::uintptr_t>(low));
  finish_switch(nullptr, &fiber->caller_bottom, &fiber->caller_size);
  try {
    fiber->body();
  } catch (...) {
    fiber->failure = std::current_exception();
  }
  fiber->body = nullptr;
  fiber->running = false;
  // This stack is done with: the sanitizer forgets its fake frames (a null save).
  start_switch(nullptr, fiber->caller_bottom, fiber->caller_size);
  setcontext(&fiber->caller);
}

void Fibers::finish_all() {
  for (bool again = true; again;) {
    again = false;
    for (std::size_t i = 0; i < fibers_.size(); ++i) {
      if (!fibers_[i]->running) continue;
      resume(fibers_[i].get());
      again = true;
    }
  }
}

}  // namespace tandem::sim
