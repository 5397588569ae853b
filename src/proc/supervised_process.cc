#include "proc/supervised_process.h"

#include <fmt/format.h>
#include <signal.h>
#include <spdlog/spdlog.h>

#include <algorithm>

namespace tandem {

SupervisedProcess::SupervisedProcess(ProcessRunner& runner, ProcessSpec spec, std::string what)
    : runner_(runner), spec_(std::move(spec)), what_(std::move(what)) {
  // A year: it runs until stopped (the runner kills it at its deadline).
  spec_.timeout = std::chrono::hours(24 * 365);
  // Its output in the log as it comes, the result's copy capped.
  spec_.on_line = [this](std::string_view line) {
    if (!line.empty()) spdlog::info("{}: {}", what_, line);
  };
  spec_.on_start = [this](int pid) {
    std::lock_guard lock(mutex_);
    pid_ = pid;
    ++starts_;
    // Stopped while it was being started: it goes at once.
    if (stopping_) kill(-pid, SIGTERM);
  };
  // Forgotten while its pid is still its own (unreaped): a stop never signals a pid the system
  // has given to another process since.
  spec_.on_exit = [this](int) {
    std::lock_guard lock(mutex_);
    pid_ = 0;
  };
  thread_ = std::thread([this] { loop(); });
}

SupervisedProcess::~SupervisedProcess() {
  std::unique_lock lock(mutex_);
  stopping_ = true;
  if (pid_ != 0) kill(-pid_, SIGTERM);
  wake_.notify_all();
  if (!wake_.wait_for(lock, kStopGrace, [this] { return ended_; }) && pid_ != 0) {
    spdlog::warn("{}: still running {} s after SIGTERM: killed", what_, kStopGrace.count());
    kill(-pid_, SIGKILL);
  }
  lock.unlock();
  thread_.join();
}

int SupervisedProcess::starts() const {
  std::lock_guard lock(mutex_);
  return starts_;
}

void SupervisedProcess::loop() {
  struct Ended {
    SupervisedProcess& self;
    ~Ended() {
      std::lock_guard lock(self.mutex_);
      self.ended_ = true;
      self.wake_.notify_all();
    }
  } ended{*this};
  // Started again a second after it ends; after each quick end twice as late, up to 8 s (a
  // configuration file not written yet, a port taken).
  std::chrono::seconds delay{1};
  while (true) {
    {
      std::lock_guard lock(mutex_);
      if (stopping_) return;
    }
    spdlog::info("{}: started ({})", what_, spec_.program);
    auto started = std::chrono::steady_clock::now();
    auto result = runner_.run(spec_);
    std::unique_lock lock(mutex_);
    pid_ = 0;
    if (stopping_) return;
    if (std::chrono::steady_clock::now() - started > std::chrono::seconds(30)) {
      delay = std::chrono::seconds(1);
    }
    std::string said = result ? failure_line(result->output) : "";
    std::string why = !result ? result.error().message
                              : fmt::format("ended (exit {}): {}", result->exit_code,
                                            said.empty() ? "no output" : said);
    spdlog::error("{}: {}; started again in {} s", what_, why, delay.count());
    wake_.wait_for(lock, delay, [this] { return stopping_; });
    delay = std::min(delay * 2, std::chrono::seconds(8));
  }
}

}  // namespace tandem
