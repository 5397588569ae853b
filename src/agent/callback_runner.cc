#include "agent/callback_runner.h"

#include <spdlog/spdlog.h>

#include <sstream>

#include "proc/safe_file.h"

namespace tandem {
namespace {

const std::string& script_for(const CallbacksConfig& config, CallbackEvent event) {
  switch (event) {
    case CallbackEvent::kStart:
      return config.on_start;
    case CallbackEvent::kStop:
      return config.on_stop;
    case CallbackEvent::kRoleChange:
      return config.on_role_change;
    case CallbackEvent::kRestart:
      return config.on_restart;
  }
  return config.on_start;
}

}  // namespace

CallbackRunner::CallbackRunner(CallbacksConfig config, std::string cluster, std::string node,
                               ProcessRunner& runner)
    : cluster_(std::move(cluster)),
      node_(std::move(node)),
      runner_(runner),
      config_(std::move(config)),
      thread_([this] { run(); }) {}

CallbackRunner::~CallbackRunner() {
  {
    std::lock_guard lock(mutex_);
    // Only the last one still waiting (the on_stop of a clean shutdown): a queue of scripts
    // that hang until their timeout must not hold the agent's exit for each of them.
    if (queue_.size() > 1) {
      spdlog::warn("stopping: {} waiting callbacks dropped, the last one run", queue_.size() - 1);
      queue_.erase(queue_.begin(), queue_.end() - 1);
    }
    stopping_ = true;
  }
  wake_.notify_all();
  thread_.join();
}

void CallbackRunner::fire(const Callback& callback) {
  {
    std::lock_guard lock(mutex_);
    if (script_for(config_, callback.event).empty()) return;
    if (queue_.size() >= kMaxQueued) {
      const Callback& dropped = queue_.front();
      spdlog::warn("callback {} {} dropped: {} callbacks wait for the ones before them",
                   callback_event_name(dropped.event), dropped.role, queue_.size());
      queue_.pop_front();
    }
    queue_.push_back(callback);
  }
  wake_.notify_all();
}

void CallbackRunner::reconfigure(const CallbacksConfig& config) {
  std::lock_guard lock(mutex_);
  config_ = config;
}

void CallbackRunner::run() {
  std::unique_lock lock(mutex_);
  while (true) {
    wake_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
    if (queue_.empty()) return;  // stopping, and nothing left to run
    Callback callback = queue_.front();
    queue_.pop_front();
    CallbacksConfig config = config_;
    lock.unlock();
    call(callback, config);
    lock.lock();
  }
}

void CallbackRunner::call(const Callback& callback, const CallbacksConfig& config) {
  std::string_view event = callback_event_name(callback.event);
  const std::string& script = script_for(config, callback.event);
  if (script.empty()) return;  // removed by a reload meanwhile
  auto program = trusted_program(script);
  if (!program) {
    spdlog::error("callback {} {}: not run: {}", event, callback.role, program.error().message);
    return;
  }
  ProcessSpec spec{.program = *program,
                   .args = {std::string(event), callback.role, cluster_},
                   .env = {{"TANDEM_EVENT", std::string(event)},
                           {"TANDEM_ROLE", callback.role},
                           {"TANDEM_CLUSTER", cluster_},
                           {"TANDEM_NODE", node_}},
                   .timeout = config.timeout};
  auto result = runner_.run(spec);
  if (!result) {
    spdlog::warn("callback {} {}: {}", event, callback.role, result.error().message);
    return;
  }
  std::istringstream lines(result->output);
  for (std::string line; std::getline(lines, line);) {
    if (!line.empty()) spdlog::info("callback {} {}: {}", event, callback.role, line);
  }
  if (result->exit_code != 0) {
    spdlog::warn("callback {} {}: {} exited with status {}", event, callback.role, script,
                 result->exit_code);
  } else {
    spdlog::info("callback {} {}: {} done", event, callback.role, script);
  }
}

}  // namespace tandem
