// The --json form of `tandem status`: every field of the report, nulls where unknown.
#pragma once

#include <nlohmann/json.hpp>

#include "core/status_report.h"

namespace tandem {

// `now_ms`: the wall clock, for ages.
nlohmann::json report_to_json(const ClusterReport& report, std::int64_t now_ms);

// The primary's WAL archiver as status --json and /cluster say it (times in Unix seconds).
nlohmann::json archiver_to_json(const ArchiverRow& row);

// The repository's newest backup as the store has it (status --json and /cluster): its label,
// type and end (Unix seconds), its age at `now_ms` (wall clock), when the repository was read;
// label null when it holds none.
nlohmann::json last_backup_to_json(const LastBackup& last, std::int64_t now_ms);

}  // namespace tandem
