// A process that stops while it holds a SQLite store's write lock, for the tests of
// agent/store_lock_watch: hold_store_lock STORE once|always. It begins a write transaction,
// then stops itself (SIGSTOP). "once": resumed, it rolls back and exits 0. "always": every
// SIGCONT stops it again at once, so that only SIGKILL ends it.
#include <signal.h>
#include <sqlite3.h>

#include <cstdio>
#include <cstring>

namespace {

void stop_again(int) { raise(SIGSTOP); }

}  // namespace

int main(int argc, char** argv) {
  if (argc != 3 || (std::strcmp(argv[2], "once") != 0 && std::strcmp(argv[2], "always") != 0)) {
    std::fprintf(stderr, "usage: hold_store_lock STORE once|always\n");
    return 2;
  }
  sqlite3* db = nullptr;
  if (sqlite3_open_v2(argv[1], &db, SQLITE_OPEN_READWRITE, nullptr) != SQLITE_OK) return 1;
  sqlite3_busy_timeout(db, 5000);
  if (sqlite3_exec(db, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr) != SQLITE_OK) return 1;
  if (std::strcmp(argv[2], "always") == 0) {
    struct sigaction action {};
    action.sa_handler = stop_again;
    sigaction(SIGCONT, &action, nullptr);
  }
  raise(SIGSTOP);
  sqlite3_exec(db, "ROLLBACK", nullptr, nullptr, nullptr);
  sqlite3_close(db);
  return 0;
}
