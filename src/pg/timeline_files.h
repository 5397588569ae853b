// Timeline numbers a promotion must skip. PostgreSQL gives a promoted standby the first timeline
// after its own that has no history file in pg_wal; a node promoted behind a newer claim (the
// operator allowed the data loss) must not take a number another node's history already uses,
// so the numbers up to the claim are reserved by placeholder history files first.
#pragma once

#include "core/timeline.h"
#include "pg/connection.h"

namespace tandem {

// Writes a placeholder history file (a comment line only: no switch points) in the pg_wal of the
// standby whose data directory is `data_dir` for every timeline in [first, last] that has none,
// through the server itself (so the files are its OS user's). Never overwrites a history file.
Status reserve_timelines(Connection& standby, const std::string& data_dir, TimelineId first,
                         TimelineId last);

}  // namespace tandem
