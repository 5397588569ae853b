// ClusterLock: one role-changing command by hand at a time in a cluster (tandem promote, rejoin,
// reinit, failover). A key in the cluster's store, created only if absent, kept alive while the
// command runs (renewed every ten seconds, 30 s TTL: a killed command frees it soon) and removed
// at the end. A second command finds it taken and is refused, naming the holder.
#pragma once

#include <atomic>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "common/clock.h"
#include "dcs/cluster_layout.h"
#include "dcs/store.h"

namespace tandem {

class ClusterLock {
 public:
  // kConflict naming the holder when another command holds it. REQUIRES: `store` outlives it.
  static Result<std::unique_ptr<ClusterLock>> take(Store& store, const ClusterLayout& layout,
                                                   const std::string& command);
  ~ClusterLock();
  ClusterLock(const ClusterLock&) = delete;
  ClusterLock& operator=(const ClusterLock&) = delete;

 private:
  ClusterLock(Store& store, std::string key, std::string holder, Revision revision);

  Store& store_;
  std::string key_;
  std::string holder_;
  Revision revision_;
  std::mutex mutex_;
  std::condition_variable wake_;
  bool stopping_ = false;
  std::thread renewer_;
};

}  // namespace tandem
