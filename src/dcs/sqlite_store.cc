#include "dcs/sqlite_store.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>
#include <map>
#include <mutex>

namespace tandem {
namespace {

// A store that cannot be read or written is unavailable, whatever SQLite's reason.
std::unexpected<Error> unavailable(sqlite3* db, std::string_view doing) {
  return fail(ErrorCode::kUnavailable,
              fmt::format("sqlite store: {}: {}", doing, db ? sqlite3_errmsg(db) : "no database"));
}

// A statement of the store's connection, prepared once and kept (an agent reads and writes the
// store several times a second, and preparing was a fifth of its idle cost): each use binds,
// steps, and on its end is reset with its bindings cleared. REQUIRES: the store's mutex held.
class Statement {
 public:
  Statement(sqlite3* db, std::map<std::string, sqlite3_stmt*>& cache, const std::string& sql)
      : db_(db) {
    auto [entry, added] = cache.try_emplace(sql, nullptr);
    if (added && sqlite3_prepare_v3(db, sql.c_str(), -1, SQLITE_PREPARE_PERSISTENT, &entry->second,
                                    nullptr) != SQLITE_OK) {
      sqlite3_finalize(entry->second);
      cache.erase(entry);  // prepared again next time
      return;
    }
    statement_ = entry->second;
  }
  ~Statement() {
    if (statement_ == nullptr) return;
    sqlite3_reset(statement_);
    sqlite3_clear_bindings(statement_);
  }
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;
  bool ok() const { return statement_ != nullptr; }
  Statement& bind(int index, std::string_view text) {
    // An empty view may point nowhere, and SQLite binds a null pointer as NULL, not as ''.
    sqlite3_bind_text(statement_, index, text.data() != nullptr ? text.data() : "",
                      static_cast<int>(text.size()), SQLITE_TRANSIENT);
    return *this;
  }
  Statement& bind(int index, std::int64_t number) {
    sqlite3_bind_int64(statement_, index, number);
    return *this;
  }
  Statement& bind_null(int index) {
    sqlite3_bind_null(statement_, index);
    return *this;
  }
  // SQLITE_ROW, SQLITE_DONE, or an error code.
  int step() { return sqlite3_step(statement_); }
  // Ends a statement read only partly, so that its transaction can commit.
  void reset() { sqlite3_reset(statement_); }
  std::int64_t integer(int column) { return sqlite3_column_int64(statement_, column); }
  bool is_null(int column) { return sqlite3_column_type(statement_, column) == SQLITE_NULL; }
  std::string text(int column) {
    const unsigned char* value = sqlite3_column_text(statement_, column);
    return value ? reinterpret_cast<const char*>(value) : "";
  }

 private:
  sqlite3* db_;
  sqlite3_stmt* statement_ = nullptr;
};

bool run(sqlite3* db, const char* sql) {
  return sqlite3_exec(db, sql, nullptr, nullptr, nullptr) == SQLITE_OK;
}

// A statement without results (BEGIN, COMMIT, ROLLBACK), from the cache.
bool run(sqlite3* db, std::map<std::string, sqlite3_stmt*>& cache, const char* sql) {
  Statement statement(db, cache, sql);
  return statement.ok() && statement.step() == SQLITE_DONE;
}

std::string read_boot_id() {
  std::ifstream in("/proc/sys/kernel/random/boot_id");
  std::string id;
  in >> id;
  return id;
}

constexpr char kSchema[] =
    "CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, value TEXT NOT NULL, "
    "  mod_revision INTEGER NOT NULL, create_revision INTEGER NOT NULL, "
    "  expires_at_ms INTEGER, boot_id TEXT);"
    "CREATE TABLE IF NOT EXISTS changes (key TEXT PRIMARY KEY, revision INTEGER NOT NULL);"
    "CREATE TABLE IF NOT EXISTS meta (id INTEGER PRIMARY KEY CHECK (id = 1), "
    "  revision INTEGER NOT NULL);"
    "INSERT OR IGNORE INTO meta VALUES (1, 0);";

// A key is live when it has no expiry, or expires later in this boot.
constexpr char kLive[] = "(expires_at_ms IS NULL OR (boot_id = ?1 AND expires_at_ms > ?2))";

}  // namespace

namespace {

// The store's files are the agents' alone (0600): anyone who can open one can take SQLite's
// locks on it — a read lock on the -shm's write byte held for ever blocks every write. A new
// store is made 0600 before SQLite opens it (SQLite gives its -wal and -shm the database file's
// mode); an existing one of this user's is narrowed to 0600. Never through a symbolic link,
// and never by opening the file: closing any descriptor of a file drops every POSIX lock this
// process holds on it — those of its other connections to the store too.
void restrict_to_owner(const std::string& path) {
  struct stat info {};
  if (lstat(path.c_str(), &info) != 0 || !S_ISREG(info.st_mode) || info.st_uid != geteuid() ||
      (info.st_mode & 077) == 0) {
    return;
  }
  (void)fchmodat(AT_FDCWD, path.c_str(), 0600, AT_SYMLINK_NOFOLLOW);
}

// O_EXCL: a file that did not exist, so no connection of this process holds a lock on it.
void create_private(const std::string& path) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (fd >= 0) close(fd);
}

}  // namespace

Result<std::unique_ptr<SqliteStore>> SqliteStore::open(const std::string& path, Clock& clock) {
  // Every connection's page cache would take 20 pages at once (about 87 KiB) at its first read,
  // for a store of a few pages, in each of an agent's connections: with no bulk, pages come one
  // at a time (issue 19.2). Set before SQLite initialises, else refused, harmlessly.
  static std::once_flag page_cache;
  std::call_once(page_cache, [] { sqlite3_config(SQLITE_CONFIG_PAGECACHE, nullptr, 0, 0); });
  create_private(path);
  for (const char* suffix : {"", "-wal", "-shm"}) restrict_to_owner(path + suffix);
  sqlite3* db = nullptr;
  if (sqlite3_open_v2(
          path.c_str(), &db,
          SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX | SQLITE_OPEN_NOFOLLOW,
          nullptr) != SQLITE_OK) {
    // SQLITE_OPEN_NOFOLLOW: a link planted at the store's path (in a directory the OS user
    // owns) is refused rather than followed by root.
    auto error = unavailable(db, "opening " + path + " (a symbolic link there is refused)");
    sqlite3_close(db);
    return error;
  }
  // Opening waits longer for a lock than a call does: a command started while every agent
  // renews its lease must not fail on "database is locked". An existing store is not written
  // on open (its schema is there), so a busy cluster rarely makes it wait at all.
  sqlite3_busy_timeout(db, 5000);
  // WAL: readers never block the writer; synchronous=NORMAL is durable across process crashes,
  // which is what a store on one machine must survive.
  // SQLite answers "database is locked" at once, whatever the busy timeout, where waiting
  // could deadlock — switching a new store to WAL while another process creates it too (two
  // `tandem promote` at once, the first to open a manual cluster's store): tried again.
  auto deadline = clock.steady_now() + std::chrono::seconds(5);
  bool prepared = false;
  while (true) {
    prepared = run(db, "PRAGMA synchronous=NORMAL;") &&
               (run(db, "SELECT revision FROM meta WHERE id = 1") ||
                (run(db, "PRAGMA journal_mode=WAL;") && run(db, kSchema)));
    int code = sqlite3_errcode(db) & 0xff;
    if (prepared || (code != SQLITE_BUSY && code != SQLITE_LOCKED) ||
        clock.steady_now() >= deadline) {
      break;
    }
    clock.sleep_for(std::chrono::milliseconds(20));
  }
  if (!prepared) {
    auto error = unavailable(db, "preparing " + path);
    sqlite3_close(db);
    return error;
  }
  // Then short: a renewal that waits longer than a few hundred ms for a lock is late anyway,
  // and the watchdog fences on the deadline whatever the store does.
  sqlite3_busy_timeout(db, 400);
  auto file = file_id(path);
  if (!file) {
    sqlite3_close(db);
    return fail(ErrorCode::kUnavailable, "sqlite store: " + path + " vanished while opened");
  }
  return std::unique_ptr<SqliteStore>(new SqliteStore(db, clock, read_boot_id(), path, *file));
}

std::optional<SqliteStore::FileId> SqliteStore::file_id(const std::string& path) {
  struct stat info {};
  if (stat(path.c_str(), &info) != 0) return std::nullopt;
  return FileId{info.st_dev, info.st_ino};
}

Status SqliteStore::check_identity() const {
  auto now = file_id(path_);
  if (!now || now->device != file_.device || now->inode != file_.inode) {
    return fail(ErrorCode::kUnavailable,
                fmt::format("sqlite store: {} was deleted or replaced while in use: this agent "
                            "no longer shares a store with the others",
                            path_));
  }
  return {};
}

SqliteStore::~SqliteStore() {
  for (auto& [sql, statement] : statements_) sqlite3_finalize(statement);
  sqlite3_close(db_);
}

std::int64_t SqliteStore::now_ms() const {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             clock_.steady_now().time_since_epoch())
      .count();
}

// One statement, so one read transaction of its own (a consistent snapshot without BEGIN and
// COMMIT, two more steps every cycle): the store's revision comes as the row without a key. The
// keys come as two ranges of the key's index, [?3, ?4) and [?5, ?6): the prefix with `except`
// cut out of it, or the prefix and nothing. Only their rows are read, not the history's.
Result<StoreSnapshot> SqliteStore::read(std::string_view prefix, std::string_view except) {
  if (auto ok = check_read_prefixes(prefix, except); !ok) return std::unexpected(ok.error());
  static const std::string kRead = fmt::format(
      "SELECT NULL, NULL, revision, 0, NULL FROM meta WHERE id = 1 UNION ALL "
      "SELECT key, value, mod_revision, create_revision, expires_at_ms FROM kv WHERE {0} AND "
      "key >= ?3 AND key < ?4 UNION ALL "
      "SELECT key, value, mod_revision, create_revision, expires_at_ms FROM kv WHERE {0} AND "
      "key >= ?5 AND key < ?6",
      kLive);
  std::string end = prefix_end(prefix);
  std::string below = except.empty() ? end : std::string(except);
  std::string above = except.empty() ? end : prefix_end(except);
  std::lock_guard lock(mutex_);
  if (auto ok = check_identity(); !ok) return std::unexpected(ok.error());
  StoreSnapshot snapshot;
  Statement keys(db_, statements_, kRead);
  if (!keys.ok()) return unavailable(db_, "read");
  keys.bind(1, boot_id_).bind(2, now_ms()).bind(3, prefix).bind(4, below).bind(5, above);
  keys.bind(6, end);
  int step = SQLITE_ROW;
  bool revision_read = false;
  while ((step = keys.step()) == SQLITE_ROW) {
    if (keys.is_null(0)) {
      snapshot.revision = keys.integer(2);
      revision_read = true;
    } else {
      StoredValue& entry = snapshot.entries[keys.text(0)];
      entry = {keys.text(1), keys.integer(2), keys.integer(3), std::nullopt};
      // A live key with a TTL was written on this boot (kLive): its time is this clock's.
      if (!keys.is_null(4)) {
        entry.expires_at =
            std::chrono::steady_clock::time_point(std::chrono::milliseconds(keys.integer(4)));
      }
    }
  }
  if (step != SQLITE_DONE || !revision_read) return unavailable(db_, "read");
  return snapshot;
}

Result<Revision> SqliteStore::write(const std::string& key, const std::optional<std::string>& value,
                                    Condition condition, Revision expected, Ttl ttl) {
  std::lock_guard lock(mutex_);
  if (auto ok = check_identity(); !ok) return std::unexpected(ok.error());
  if (!run(db_, statements_, "BEGIN IMMEDIATE")) return unavailable(db_, "write " + key);
  auto rollback = [&](Result<Revision> result) {
    run(db_, statements_, "ROLLBACK");
    return result;
  };
  Statement current(db_, statements_,
                    fmt::format("SELECT mod_revision, create_revision FROM kv "
                                "WHERE {} AND key = ?3",
                                kLive));
  if (!current.ok()) return rollback(unavailable(db_, "write " + key));
  current.bind(1, boot_id_).bind(2, now_ms()).bind(3, key);
  int step = current.step();
  if (step != SQLITE_ROW && step != SQLITE_DONE) return rollback(unavailable(db_, "write " + key));
  bool exists = step == SQLITE_ROW;
  Revision mod_revision = exists ? current.integer(0) : 0;
  Revision create_revision = exists ? current.integer(1) : 0;
  current.reset();
  if (condition == Condition::kAbsent && exists) {
    return rollback(fail(ErrorCode::kConflict, key + " exists"));
  }
  if (condition == Condition::kAtRevision && (!exists || mod_revision != expected)) {
    return rollback(
        fail(ErrorCode::kConflict, fmt::format("{} is not at revision {}", key, expected)));
  }
  if (!value && !exists) {
    Statement leftover(db_, statements_,
                       "DELETE FROM kv WHERE key = ?1");  // an expired one, if any
    if (leftover.ok()) leftover.bind(1, key).step();
    run(db_, statements_, "COMMIT");
    return Revision{0};
  }
  Statement bump(db_, statements_,
                 "UPDATE meta SET revision = revision + 1 WHERE id = 1 RETURNING revision");
  if (!bump.ok() || bump.step() != SQLITE_ROW) return rollback(unavailable(db_, "write " + key));
  Revision revision = bump.integer(0);
  bump.reset();
  Statement change(db_, statements_, "INSERT OR REPLACE INTO changes VALUES (?1, ?2)");
  bool ok = change.ok() && change.bind(1, key).bind(2, revision).step() == SQLITE_DONE;
  if (value) {
    Statement upsert(db_, statements_, "INSERT OR REPLACE INTO kv VALUES (?1, ?2, ?3, ?4, ?5, ?6)");
    ok = ok && upsert.ok();
    if (ok) {
      upsert.bind(1, key).bind(2, *value).bind(3, revision);
      upsert.bind(4, exists ? create_revision : revision);
      if (ttl) {
        upsert.bind(5, now_ms() + ttl->count()).bind(6, boot_id_);
      } else {
        upsert.bind_null(5).bind_null(6);
      }
      ok = upsert.step() == SQLITE_DONE;
    }
  } else {
    Statement erase(db_, statements_, "DELETE FROM kv WHERE key = ?1");
    ok = ok && erase.ok() && erase.bind(1, key).step() == SQLITE_DONE;
  }
  if (!ok || !run(db_, statements_, "COMMIT")) return rollback(unavailable(db_, "write " + key));
  return revision;
}

Result<Revision> SqliteStore::create(const std::string& key, const std::string& value, Ttl ttl) {
  return write(key, value, Condition::kAbsent, 0, ttl);
}

Result<Revision> SqliteStore::compare_and_set(const std::string& key, const std::string& value,
                                              Revision expected, Ttl ttl) {
  return write(key, value, Condition::kAtRevision, expected, ttl);
}

Result<Revision> SqliteStore::put(const std::string& key, const std::string& value, Ttl ttl) {
  return write(key, value, Condition::kNone, 0, ttl);
}

Status SqliteStore::remove(const std::string& key, std::optional<Revision> expected) {
  auto result = write(key, std::nullopt, expected ? Condition::kAtRevision : Condition::kNone,
                      expected.value_or(0), std::nullopt);
  if (!result) return std::unexpected(result.error());
  return {};
}

Result<Revision> SqliteStore::wait(std::string_view prefix, Revision after,
                                   std::chrono::milliseconds timeout) {
  // Other processes write the file, so there is nothing to be woken by: poll, cheaply.
  auto deadline = clock_.steady_now() + timeout;
  while (true) {
    Revision revision = 0;
    bool changed = false;
    {
      std::lock_guard lock(mutex_);
      Statement query(db_, statements_,
                      "SELECT (SELECT revision FROM meta WHERE id = 1), EXISTS (SELECT 1 FROM "
                      "changes WHERE revision > ?1 AND substr(key, 1, ?2) = ?3)");
      if (!query.ok()) return unavailable(db_, "wait");
      query.bind(1, after).bind(2, static_cast<std::int64_t>(prefix.size())).bind(3, prefix);
      if (query.step() != SQLITE_ROW) return unavailable(db_, "wait");
      revision = query.integer(0);
      changed = query.integer(1) != 0;
    }
    if (changed || clock_.steady_now() >= deadline) return revision;
    clock_.sleep_for(std::chrono::milliseconds(10));
  }
}

}  // namespace tandem
