#include "pg/timeline_files.h"

#include <fmt/format.h>

namespace tandem {

Status reserve_timelines(Connection& standby, const std::string& data_dir, TimelineId first,
                         TimelineId last) {
  for (TimelineId timeline = first; timeline <= last; ++timeline) {
    // COPY takes absolute paths only.
    std::string path = fmt::format("{}/pg_wal/{:08X}.history", data_dir, timeline);
    if (path.find('\'') != std::string::npos) {
      return fail(ErrorCode::kInvalidArgument, "a quote in the data directory's path: " + path);
    }
    auto present =
        standby.query("SELECT (pg_stat_file($1, true)).size IS NOT NULL AS present", {path});
    if (!present) return fail_with_context(present.error(), "looking for " + path);
    if (present->text(0, "present") == "t") continue;
    // COPY TO writes as the server (a read, allowed in recovery); the name is ours, not input.
    Status written = standby.execute(
        fmt::format("COPY (SELECT '# timeline {} reserved: claimed by another node, skipped by "
                    "a promotion that allowed data loss') TO '{}'",
                    timeline, path));
    if (!written) return fail_with_context(written.error(), "reserving timeline " + path);
  }
  return {};
}

}  // namespace tandem
