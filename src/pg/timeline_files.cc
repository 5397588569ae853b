#include "pg/timeline_files.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <unistd.h>

#include <cctype>

#include "proc/safe_file.h"

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

bool switched_to_timeline(const std::string& data_dir, TimelineId timeline) {
  auto file = open_file_nofollow(fmt::format("{}/pg_wal/{:08X}.history", data_dir, timeline),
                                 O_RDONLY | O_NONBLOCK);
  if (!file) return false;
  std::string text;
  char buffer[4096];
  for (ssize_t got;
       text.size() < (1 << 20) && (got = read(file->get(), buffer, sizeof buffer)) > 0;) {
    text.append(buffer, static_cast<std::size_t>(got));
  }
  // A switch point: "1\t0/3000060\tno recovery target specified", one per earlier timeline.
  for (std::size_t at = 0; at < text.size(); at = text.find('\n', at) + 1) {
    if (std::isdigit(static_cast<unsigned char>(text[at]))) return true;
    if (text.find('\n', at) == std::string::npos) break;
  }
  return false;
}

}  // namespace tandem
