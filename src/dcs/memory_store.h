// A Store in this process's memory, for tests: time comes from the injected Clock, so a test can
// make keys expire by moving it.
#pragma once

#include <condition_variable>
#include <mutex>

#include "common/clock.h"
#include "dcs/store.h"

namespace tandem {

class MemoryStore final : public Store {
 public:
  explicit MemoryStore(Clock& clock) : clock_(clock) {}

  using Store::read;
  Result<StoreSnapshot> read(std::string_view prefix, std::string_view except) override;
  Result<Revision> create(const std::string& key, const std::string& value, Ttl ttl) override;
  Result<Revision> compare_and_set(const std::string& key, const std::string& value,
                                   Revision expected, Ttl ttl) override;
  Result<Revision> put(const std::string& key, const std::string& value, Ttl ttl) override;
  Status remove(const std::string& key, std::optional<Revision> expected) override;
  Result<Revision> wait(std::string_view prefix, Revision after,
                        std::chrono::milliseconds timeout) override;

  // Makes every call fail with kUnavailable until set back, as an unreachable store would.
  void set_unavailable(bool unavailable);

 private:
  struct Entry {
    StoredValue stored;  // its expires_at: when the entry lapses (nullopt: never)
  };

  // REQUIRES: mutex_ held. The live entry, or nullptr when absent or expired.
  const Entry* live(const std::string& key) const;
  // REQUIRES: mutex_ held.
  Revision write(const std::string& key, const std::string& value, Ttl ttl);
  Status check_available() const;

  Clock& clock_;
  mutable std::mutex mutex_;
  std::condition_variable changed_;
  std::map<std::string, Entry> entries_;
  std::map<std::string, Revision> last_change_;  // key -> revision that last wrote or removed it
  Revision revision_ = 0;
  bool unavailable_ = false;
};

}  // namespace tandem
