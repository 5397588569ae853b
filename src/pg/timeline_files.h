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

// Whether the PostgreSQL of `data_dir` switched to `timeline`: its pg_wal holds that timeline's
// history file with a switch point in it (a placeholder of reserve_timelines has none).
// PostgreSQL writes it at the end of a promotion, before it accepts a write: a promotion that
// went through while its agent was frozen, and was then fenced, is known by it. Read without
// following a link or opening anything but a regular file (the directory is the OS user's).
bool switched_to_timeline(const std::string& data_dir, TimelineId timeline);

}  // namespace tandem
