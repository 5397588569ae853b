// The non-root OS user that runs PostgreSQL, and files and directories owned by it.
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

#include "common/result.h"

namespace tandem {

struct OsUser {
  std::string name;
  uid_t uid = 0;
  gid_t gid = 0;
  std::string home;
  // Its groups, read once by lookup_os_user: a child forked by a process with threads may make
  // only async-signal-safe calls, and initgroups() reads /etc/group with locks another thread
  // may have held at the fork (an agent's bootstrap hung for ever there under ASan).
  std::vector<gid_t> groups;
};

// Fails with advice when the user does not exist or is root.
Result<OsUser> lookup_os_user(const std::string& name);

// In a forked child, before exec: takes on the user's groups, group and user with
// async-signal-safe calls only. False if the kernel refused one.
bool become_os_user(const OsUser& user);

// True when tandem runs as root (and so must hand PostgreSQL work to another user).
bool running_as_root();

// Creates the directory (and missing parents) owned by `owner` with `mode`. An existing
// directory is left as it is, unless `take_existing` (an empty data directory to fill). A link in
// its place, in a directory another user may write, is refused (proc/safe_file.h).
Status ensure_owned_dir(const std::string& path, const OsUser& owner, mode_t mode,
                        bool take_existing = false);

// Writes the file atomically (temporary file, then rename) owned by `owner` with `mode`, never
// through a link planted at the file or its temporary (proc/safe_file.h).
Status write_owned_file(const std::string& path, std::string_view content, const OsUser& owner,
                        mode_t mode);

// The whole file; never throws (a /proc file whose process exits while it is read fails with
// ESRCH, which std::istreambuf_iterator would throw).
Result<std::string> read_file(const std::string& path);

// Refuses a directory that tandem (as root) would fill with files other users could tamper
// with: it, and every directory above it, must belong to root or `owner`, and neither group nor
// others may write it (above it, a sticky directory such as /tmp is fine). A missing directory
// is judged by the directories above it.
Status check_private_dir(const std::string& dir, const OsUser& owner);

// True when `owner` will be able to use the directory once ensure_owned_dir made it: an
// existing one it can search (and write, with `write`); for a missing one, which will be made
// its own, its nearest existing ancestor must be searchable by it.
bool user_can_use_dir(const std::string& dir, const OsUser& owner, bool write);

}  // namespace tandem
