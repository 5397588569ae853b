#include "ops/cluster_lock.h"

#include <fmt/format.h>
#include <unistd.h>

namespace tandem {
namespace {

constexpr std::chrono::seconds kTtl{30};
constexpr std::chrono::seconds kRenewEvery{10};

}  // namespace

Result<std::unique_ptr<ClusterLock>> ClusterLock::take(Store& store, const ClusterLayout& layout,
                                                       const std::string& command) {
  char host[256] = {};
  gethostname(host, sizeof(host) - 1);
  std::string holder = fmt::format("tandem {} (pid {} on {})", command, getpid(), host);
  std::string key = layout.prefix() + "lock";
  auto created = store.create(key, holder, kTtl);
  if (!created) {
    if (created.error().code != ErrorCode::kConflict) {
      return fail_with_context(created.error(), "taking the cluster's command lock");
    }
    std::string other = "another command";
    if (auto snapshot = store.read(key)) {
      if (const StoredValue* value = snapshot->find(key)) other = value->value;
    }
    return fail(
        ErrorCode::kConflict,
        fmt::format("{} is changing the cluster right now: try again when it is done", other));
  }
  return std::unique_ptr<ClusterLock>(new ClusterLock(store, key, holder, *created));
}

ClusterLock::ClusterLock(Store& store, std::string key, std::string holder, Revision revision)
    : store_(store), key_(std::move(key)), holder_(std::move(holder)), revision_(revision) {
  renewer_ = std::thread([this] {
    std::unique_lock lock(mutex_);
    while (!wake_.wait_for(lock, kRenewEvery, [this] { return stopping_; })) {
      auto renewed = store_.compare_and_set(key_, holder_, revision_, kTtl);
      if (renewed) revision_ = *renewed;
    }
  });
}

ClusterLock::~ClusterLock() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  renewer_.join();
  (void)store_.remove(key_, revision_);
}

}  // namespace tandem
