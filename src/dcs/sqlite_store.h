// A Store in a SQLite file, shared by the agents of the nodes on one machine. WAL mode and a
// busy timeout let several processes use it at once; every write is one IMMEDIATE transaction.
// Expiry times are CLOCK_BOOTTIME milliseconds (SystemClock) tagged with the kernel's boot
// id, so a key written before a reboot counts as expired after it. A file deleted or replaced
// under a running store makes every call fail as unavailable: agents that kept writing to the
// old file and agents that opened the new one must never both believe they lead.
#pragma once

#include <sys/types.h>

#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "common/clock.h"
#include "dcs/store.h"

struct sqlite3;
struct sqlite3_stmt;

namespace tandem {

class SqliteStore final : public Store {
 public:
  // Opens the file, creating it and its tables if needed. `clock` gives the expiry times (it
  // must be SystemClock (CLOCK_BOOTTIME) for processes to agree) and times wait()'s polling.
  static Result<std::unique_ptr<SqliteStore>> open(const std::string& path, Clock& clock);
  ~SqliteStore() override;

  // Where SQLite keeps the write lock of the store at `path` in WAL mode: a POSIX lock on one
  // byte of its shared-memory file, held by the writer for as long as its transaction lasts
  // (the lock WAL_WRITE_LOCK, at offset 120 of the -shm file: sqlite.org/walformat.html).
  struct LockByte {
    std::string file;
    long long offset = 0;
  };
  static LockByte write_lock_byte(const std::string& path) { return {path + "-shm", 120}; }

  using Store::read;
  Result<StoreSnapshot> read(std::string_view prefix, std::string_view except) override;
  Result<Revision> create(const std::string& key, const std::string& value, Ttl ttl) override;
  Result<Revision> compare_and_set(const std::string& key, const std::string& value,
                                   Revision expected, Ttl ttl) override;
  Result<Revision> put(const std::string& key, const std::string& value, Ttl ttl) override;
  Status remove(const std::string& key, std::optional<Revision> expected) override;
  Result<Revision> wait(std::string_view prefix, Revision after,
                        std::chrono::milliseconds timeout) override;

 private:
  enum class Condition { kNone, kAbsent, kAtRevision };
  struct FileId {
    dev_t device = 0;
    ino_t inode = 0;
  };
  SqliteStore(sqlite3* db, Clock& clock, std::string boot_id, std::string path, FileId file)
      : db_(db), clock_(clock), boot_id_(std::move(boot_id)), path_(std::move(path)), file_(file) {}
  static std::optional<FileId> file_id(const std::string& path);
  // kUnavailable when the file at path_ is no longer the one opened.
  Status check_identity() const;

  // The write every mutating call makes, in one transaction: checks the condition, bumps the
  // revision, writes (or with `value` nullopt, deletes) the key.
  Result<Revision> write(const std::string& key, const std::optional<std::string>& value,
                         Condition condition, Revision expected, Ttl ttl);
  std::int64_t now_ms() const;

  sqlite3* db_;
  Clock& clock_;
  std::string boot_id_;
  std::string path_;
  FileId file_;
  std::mutex mutex_;  // one statement at a time on db_
  // Prepared statements of db_ by their text, kept until the store closes (Statement).
  std::map<std::string, sqlite3_stmt*> statements_;
};

}  // namespace tandem
