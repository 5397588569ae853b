// The callbacks of tandem.yaml (CallbacksConfig) carried out beside the agent's cycle: queued by
// fire(), run one at a time in order on a thread of their own, each killed after the timeout,
// their output in the agent's log. A cycle never waits for one, nor does a failover.
#pragma once

#include <condition_variable>
#include <deque>
#include <mutex>
#include <string>
#include <thread>

#include "core/cluster_config.h"
#include "core/node_callbacks.h"
#include "proc/process_runner.h"

namespace tandem {

class CallbackRunner {
 public:
  CallbackRunner(CallbacksConfig config, std::string cluster, std::string node,
                 ProcessRunner& runner);
  // Lets the script running finish (within its timeout), runs the last one queued (the on_stop
  // of a clean shutdown) and drops the others, said in the log; then stops.
  ~CallbackRunner();
  CallbackRunner(const CallbackRunner&) = delete;
  CallbackRunner& operator=(const CallbackRunner&) = delete;

  // Queues the callback's script, if one is configured; returns at once. Past kMaxQueued
  // waiting (scripts that hang until their timeout), the oldest is dropped, said in the log.
  void fire(const Callback& callback);
  // A reload: the scripts and timeout from now on.
  void reconfigure(const CallbacksConfig& config);

  static constexpr std::size_t kMaxQueued = 64;

 private:
  void run();
  void call(const Callback& callback, const CallbacksConfig& config);

  std::string cluster_;
  std::string node_;
  ProcessRunner& runner_;
  std::mutex mutex_;
  std::condition_variable wake_;
  CallbacksConfig config_;
  std::deque<Callback> queue_;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace tandem
