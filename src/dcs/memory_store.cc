#include "dcs/memory_store.h"

#include <fmt/format.h>

namespace tandem {
namespace {

bool under(std::string_view key, std::string_view prefix) { return key.starts_with(prefix); }

}  // namespace

Status MemoryStore::check_available() const {
  if (unavailable_) return fail(ErrorCode::kUnavailable, "memory store: made unavailable");
  return {};
}

void MemoryStore::set_unavailable(bool unavailable) {
  std::lock_guard lock(mutex_);
  unavailable_ = unavailable;
}

const MemoryStore::Entry* MemoryStore::live(const std::string& key) const {
  auto it = entries_.find(key);
  if (it == entries_.end()) return nullptr;
  const auto& expires_at = it->second.stored.expires_at;
  if (expires_at && *expires_at <= clock_.steady_now()) return nullptr;
  return &it->second;
}

Revision MemoryStore::write(const std::string& key, const std::string& value, Ttl ttl) {
  ++revision_;
  const Entry* existing = live(key);
  Entry entry{
      {value, revision_, existing ? existing->stored.create_revision : revision_, std::nullopt}};
  if (ttl) entry.stored.expires_at = clock_.steady_now() + *ttl;
  entries_[key] = entry;
  last_change_[key] = revision_;
  changed_.notify_all();
  return revision_;
}

Result<StoreSnapshot> MemoryStore::read(std::string_view prefix, std::string_view except) {
  if (auto ok = check_read_prefixes(prefix, except); !ok) return std::unexpected(ok.error());
  std::lock_guard lock(mutex_);
  if (auto ok = check_available(); !ok) return std::unexpected(ok.error());
  StoreSnapshot snapshot{revision_, {}};
  for (const auto& [key, entry] : entries_) {
    if (!under(key, prefix) || (!except.empty() && under(key, except))) continue;
    if (live(key) != nullptr) snapshot.entries[key] = entry.stored;
  }
  return snapshot;
}

Result<Revision> MemoryStore::create(const std::string& key, const std::string& value, Ttl ttl) {
  std::lock_guard lock(mutex_);
  if (auto ok = check_available(); !ok) return std::unexpected(ok.error());
  if (live(key) != nullptr) return fail(ErrorCode::kConflict, key + " exists");
  return write(key, value, ttl);
}

Result<Revision> MemoryStore::compare_and_set(const std::string& key, const std::string& value,
                                              Revision expected, Ttl ttl) {
  std::lock_guard lock(mutex_);
  if (auto ok = check_available(); !ok) return std::unexpected(ok.error());
  const Entry* existing = live(key);
  if (existing == nullptr || existing->stored.mod_revision != expected) {
    return fail(ErrorCode::kConflict, fmt::format("{} is not at revision {}", key, expected));
  }
  return write(key, value, ttl);
}

Result<Revision> MemoryStore::put(const std::string& key, const std::string& value, Ttl ttl) {
  std::lock_guard lock(mutex_);
  if (auto ok = check_available(); !ok) return std::unexpected(ok.error());
  return write(key, value, ttl);
}

Status MemoryStore::remove(const std::string& key, std::optional<Revision> expected) {
  std::lock_guard lock(mutex_);
  if (auto ok = check_available(); !ok) return ok;
  const Entry* existing = live(key);
  if (expected && (existing == nullptr || existing->stored.mod_revision != *expected)) {
    return fail(ErrorCode::kConflict, fmt::format("{} is not at revision {}", key, *expected));
  }
  if (existing == nullptr) {
    entries_.erase(key);
    return {};
  }
  entries_.erase(key);
  last_change_[key] = ++revision_;
  changed_.notify_all();
  return {};
}

Result<Revision> MemoryStore::wait(std::string_view prefix, Revision after,
                                   std::chrono::milliseconds timeout) {
  std::unique_lock lock(mutex_);
  auto changed_under_prefix = [&] {
    for (const auto& [key, revision] : last_change_) {
      if (revision > after && under(key, prefix)) return true;
    }
    return false;
  };
  changed_.wait_for(lock, timeout, [&] { return unavailable_ || changed_under_prefix(); });
  if (auto ok = check_available(); !ok) return std::unexpected(ok.error());
  return revision_;
}

}  // namespace tandem
