// Files that root writes in directories another user (the PostgreSQL OS user) can write. That user
// could plant a symbolic link (or a hard link, or a FIFO) where tandem is about to write and make
// root overwrite, truncate or chown a file of its choice. Every function here opens the last
// component relative to a descriptor of its directory, without following links, and refuses what
// is not a plain file of its own. The error says what was refused.
#pragma once

#include <sys/types.h>

#include <string>

#include "common/result.h"

namespace tandem {

// An open descriptor that closes itself.
class Fd {
 public:
  Fd() = default;
  explicit Fd(int fd) : fd_(fd) {}
  Fd(Fd&& other) noexcept : fd_(other.release()) {}
  Fd& operator=(Fd&& other) noexcept;
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd();

  int get() const { return fd_; }
  int release();

 private:
  int fd_ = -1;
};

// Opens a directory for *at() calls. Symbolic links on the way are followed only where they sit
// in a directory that root owns and nobody else may write (so they were not planted); a link in
// /tmp or in a directory of the OS user is refused.
Result<Fd> open_trusted_dir(const std::string& dir);

// Opens `path` (flags as for open(2), O_CREAT allowed) without following a link at its last
// component or in an untrusted directory on the way. Refuses anything but a regular file with a
// single name. O_CLOEXEC is always added.
Result<Fd> open_file_nofollow(const std::string& path, int flags, mode_t mode = 0600);

// The whole content of `path`, opened as open_file_nofollow opens it: what root reads of a file in
// a directory of the OS user is that file, never one a planted link leads to (which root might
// then copy somewhere that user reads). kNotFound when there is no such file.
Result<std::string> read_file_nofollow(const std::string& path);
// Removes `path` (a file) if it is there, through a descriptor of its directory opened as
// open_trusted_dir opens it: a link planted on the way cannot make root remove a file elsewhere
// (/etc/pgbackrest.conf, say). A missing file is no error.
Status remove_file_nofollow(const std::string& path);
// Replaces `path` atomically with `content`: a fresh temporary (`path`.tmp, created with O_EXCL
// and no link followed; a stale regular one is removed first, a link there is refused), fchown'd
// to uid:gid when running as root (-1: keep), fchmod'd, fsync'd, renamed over `path`.
Status write_file_atomically(const std::string& path, std::string_view content, uid_t uid,
                             gid_t gid, mode_t mode);

// Creates `dir` if missing (its parent must exist) and, when created or `take_existing`, gives it
// to uid:gid with `mode` through a descriptor opened without following a link.
Status make_owned_dir(const std::string& dir, uid_t uid, gid_t gid, mode_t mode,
                      bool take_existing);

// The program root may run for `path` (a callback): `path` with every link resolved, when that
// file and every directory on its way belong to root or tandem's own user and nobody else may
// write them — else the PostgreSQL OS user (or anyone) could swap in a program of theirs and
// have root run it. A regular file its owner may execute. Run what it returns, never `path`
// itself: a link on the way may be changed after the check, the resolved path cannot. The
// error names what is not trusted.
Result<std::string> trusted_program(const std::string& path);

}  // namespace tandem
