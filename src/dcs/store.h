// The coordination store: where a cluster's agents agree on who leads. Keys with revisions,
// create-if-absent and compare-and-set, keys that expire, and a way to wait for changes.
// Implementations: MemoryStore (in memory: tests and the simulation), SqliteStore (a SQLite file:
// nodes on one machine) and EtcdStore (etcd v3: nodes on several machines). All three pass
// tests/unit/store_contract_test.cc.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>

#include "common/result.h"

namespace tandem {

using Revision = std::int64_t;

struct StoredValue {
  std::string value;
  Revision mod_revision = 0;     // the store revision of the last write to this key
  Revision create_revision = 0;  // the store revision that created it
  // When its TTL runs out, on this process's steady clock, where the store can say: SQLite's
  // and the memory store's keys lapse by the machine's steady clock. nullopt: it never lapses,
  // or the store cannot say (etcd expires keys by its own clock).
  std::optional<std::chrono::steady_clock::time_point> expires_at;
};

// Every live key under a prefix, read at one store revision.
struct StoreSnapshot {
  Revision revision = 0;  // the store's revision when read
  std::map<std::string, StoredValue> entries;

  const StoredValue* find(const std::string& key) const {
    auto it = entries.find(key);
    return it == entries.end() ? nullptr : &it->second;
  }
};

// The first key after every key that starts with `prefix`, in byte order (etcd's range_end for a
// prefix; "\0", every key, for a prefix of 0xFF bytes only).
std::string prefix_end(std::string_view prefix);
// What Store::read asks of its prefixes: `prefix` not empty nor all 0xFF bytes (it has an end),
// `except` empty or under `prefix`. kInvalidArgument otherwise.
Status check_read_prefixes(std::string_view prefix, std::string_view except);

// How long a key lives without being written again; nullopt: for ever.
using Ttl = std::optional<std::chrono::milliseconds>;

// Errors: kUnavailable when the store cannot be reached (retry, or fence); kConflict when a
// condition failed (someone else won). HA code treats the two differently and so must every
// implementation. Thread-safe.
class Store {
 public:
  virtual ~Store() = default;

  // Every key under `prefix` whose TTL has not run out, at one revision, but those under `except`
  // (a narrower prefix; empty: none left out). The agent's cycle leaves out the history, which
  // only grows.
  virtual Result<StoreSnapshot> read(std::string_view prefix, std::string_view except) = 0;
  Result<StoreSnapshot> read(std::string_view prefix) { return read(prefix, {}); }
  // Creates the key only if it is absent (or expired). kConflict if it exists.
  virtual Result<Revision> create(const std::string& key, const std::string& value, Ttl ttl) = 0;
  // Writes the key only if its mod_revision is `expected` (it must exist). kConflict otherwise.
  // A write restarts the TTL with `ttl`.
  virtual Result<Revision> compare_and_set(const std::string& key, const std::string& value,
                                           Revision expected, Ttl ttl) = 0;
  // Writes the key whatever it holds.
  virtual Result<Revision> put(const std::string& key, const std::string& value, Ttl ttl) = 0;
  // Deletes the key; with `expected`, only if its mod_revision is that (else kConflict).
  // Deleting an absent key without `expected` succeeds.
  virtual Status remove(const std::string& key, std::optional<Revision> expected) = 0;
  // Returns once the store's revision under `prefix` passes `after` or a key there expires, or
  // when `timeout` passes; returns the current revision either way.
  virtual Result<Revision> wait(std::string_view prefix, Revision after,
                                std::chrono::milliseconds timeout) = 0;
};

}  // namespace tandem
