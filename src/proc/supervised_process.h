// A server kept running for as long as this object lives (pgBackRest's TLS server beside an
// agent, or on the repository host): started at once, started again a second after it ends,
// each line it prints in the log; stopped, with its process group, when the object goes
// (SIGTERM, then SIGKILL after kStopGrace).
#pragma once

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <string>
#include <thread>

#include "proc/process_runner.h"

namespace tandem {

class SupervisedProcess {
 public:
  // pgBackRest 2.45's server checks for SIGTERM only between two connections it accepts.
  static constexpr std::chrono::seconds kStopGrace{10};

  // `what` names it in the log. `spec.timeout` is ignored: it runs until stopped.
  SupervisedProcess(ProcessRunner& runner, ProcessSpec spec, std::string what);
  ~SupervisedProcess();
  SupervisedProcess(const SupervisedProcess&) = delete;
  SupervisedProcess& operator=(const SupervisedProcess&) = delete;

  // How many times it was started.
  int starts() const;

 private:
  void loop();

  ProcessRunner& runner_;
  ProcessSpec spec_;
  std::string what_;
  mutable std::mutex mutex_;
  std::condition_variable wake_;
  bool stopping_ = false;
  bool ended_ = false;  // the loop returned
  int pid_ = 0;         // of the running one; 0: none
  int starts_ = 0;
  std::thread thread_;  // last: it uses the rest
};

}  // namespace tandem
