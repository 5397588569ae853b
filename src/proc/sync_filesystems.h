// Making a data directory durable with one syncfs(2) per filesystem it spans, instead of an
// fsync of every file in it (what pg_rewind and pg_basebackup do unless told --no-sync; their
// --sync-method=syncfs came with PostgreSQL 17).
#pragma once

#include <string>

#include "common/result.h"

namespace tandem {

// syncfs on the filesystem of `data_dir`, of its pg_wal and of each tablespace under pg_tblspc
// (symbolic links followed), each filesystem once. Returns how many were synced; fails, saying
// which, when one cannot be opened or synced (the kernel reports a write error there since 5.8).
Result<int> sync_filesystems_of(const std::string& data_dir);

}  // namespace tandem
