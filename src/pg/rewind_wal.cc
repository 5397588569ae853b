#include "pg/rewind_wal.h"

#include <dirent.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>

#include "core/lsn.h"
#include "core/timeline.h"

namespace tandem {
namespace {

// The value after `key` on its own line of `label`, up to the end of the line.
std::optional<std::string_view> label_value(std::string_view label, std::string_view key) {
  for (std::size_t at = 0; at < label.size();) {
    std::size_t end = label.find('\n', at);
    std::string_view line = label.substr(at, end == std::string_view::npos ? end : end - at);
    if (line.starts_with(key)) return line.substr(key.size());
    if (end == std::string_view::npos) break;
    at = end + 1;
  }
  return std::nullopt;
}

// Names of the regular files in the directory of `dir` (an O_PATH descriptor) that are WAL
// segments, in the order of their names.
Result<std::vector<std::string>> segment_files(int dir, const std::string& path) {
  int listed = openat(dir, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (listed < 0)
    return fail(ErrorCode::kFailed, fmt::format("cannot list {}: {}", path, std::strerror(errno)));
  DIR* stream = fdopendir(listed);
  if (stream == nullptr) {
    close(listed);
    return fail(ErrorCode::kFailed, fmt::format("cannot list {}: {}", path, std::strerror(errno)));
  }
  std::vector<std::string> names;
  while (dirent* entry = readdir(stream)) {
    std::string name = entry->d_name;
    struct stat info {};
    if (segment_timeline(name) && fstatat(dir, name.c_str(), &info, AT_SYMLINK_NOFOLLOW) == 0 &&
        S_ISREG(info.st_mode)) {
      names.push_back(name);
    }
  }
  closedir(stream);
  std::sort(names.begin(), names.end());
  return names;
}

}  // namespace

Result<std::vector<std::string>> segments_to_restore(std::string_view backup_label,
                                                     const std::vector<std::string>& held,
                                                     const std::set<std::string>& present,
                                                     std::uint64_t segment_bytes) {
  auto start = label_value(backup_label, "START WAL LOCATION: ");
  auto checkpoint = label_value(backup_label, "CHECKPOINT LOCATION: ");
  std::size_t file_at = start ? start->find("(file ") : std::string_view::npos;
  if (!start || !checkpoint || file_at == std::string_view::npos || segment_bytes == 0) {
    return fail(ErrorCode::kFailed, "backup_label names no start and checkpoint location");
  }
  std::string first(start->substr(file_at + 6, 24));
  auto timeline = segment_timeline(first);
  auto start_at = Lsn::parse(start->substr(0, start->find(' ')));
  auto checkpoint_at = Lsn::parse(*checkpoint);
  if (!timeline || !start_at || !checkpoint_at) {
    return fail(ErrorCode::kFailed, fmt::format("backup_label's locations are not WAL positions: "
                                                "{}, {}",
                                                *start, *checkpoint));
  }
  bool power_of_two = (segment_bytes & (segment_bytes - 1)) == 0;
  if (!power_of_two || segment_bytes < (1ULL << 20) || segment_bytes > (1ULL << 30) ||
      wal_segment_name(*timeline, *start_at, segment_bytes) != first) {
    return fail(ErrorCode::kFailed,
                fmt::format("WAL segments of {} bytes do not fit backup_label's start ({})",
                            segment_bytes, *start));
  }
  std::string last = wal_segment_name(*timeline, *checkpoint_at, segment_bytes);
  std::vector<std::string> restore;
  for (const std::string& name : held) {
    // One timeline: the names compare as positions in the WAL.
    if (segment_timeline(name) == timeline && name >= first && name <= last &&
        !present.contains(name)) {
      restore.push_back(name);
    }
  }
  std::sort(restore.begin(), restore.end());
  return restore;
}

Result<HeldWal> HeldWal::hold(const std::string& data_dir, std::uint64_t segment_bytes) {
  std::filesystem::path path = std::filesystem::path(data_dir).lexically_normal();
  if (!path.has_filename()) path = path.parent_path();
  auto wal = open_trusted_dir(data_dir + "/pg_wal");
  if (!wal) return std::unexpected(wal.error());
  auto parent = open_trusted_dir(path.parent_path().string());
  if (!parent) return std::unexpected(parent.error());
  std::string name = path.filename().string() + ".rewind-wal";
  std::string shown = data_dir + ".rewind-wal";
  if (mkdirat(parent->get(), name.c_str(), 0700) != 0 && errno != EEXIST) {
    return fail(ErrorCode::kFailed, fmt::format("cannot make {}: {}", shown, std::strerror(errno)));
  }
  Fd held(openat(parent->get(), name.c_str(), O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  struct stat info {};
  if (held.get() < 0 || fstat(held.get(), &info) != 0 || info.st_uid != geteuid() ||
      (info.st_mode & 07777) != 0700) {
    return fail(ErrorCode::kFailed, fmt::format("{} is not a directory of tandem's own", shown));
  }
  HeldWal holding(data_dir, name, std::move(*parent), std::move(held), segment_bytes);
  auto stale = segment_files(holding.held_.get(), shown);
  if (!stale) return std::unexpected(stale.error());
  if (!stale->empty()) {
    // Left by a tandem that died between pg_rewind and its restore: its links may be the only
    // copy of the segment recovery starts in. Put back now what the restore would have.
    auto label = read_file_nofollow(data_dir + "/backup_label");
    if (label && label->find("BACKUP METHOD: pg_rewind") != std::string::npos) {
      (void)holding.link_back(*stale, [&](const std::set<std::string>& present) {
        return segments_to_restore(*label, *stale, present, segment_bytes);
      });
    }
    for (const std::string& segment : *stale) unlinkat(holding.held_.get(), segment.c_str(), 0);
  }
  auto segments = segment_files(wal->get(), data_dir + "/pg_wal");
  if (!segments) return std::unexpected(segments.error());
  for (const std::string& segment : *segments) {
    if (linkat(wal->get(), segment.c_str(), holding.held_.get(), segment.c_str(), 0) != 0) {
      return fail(ErrorCode::kFailed, fmt::format("cannot link {}/pg_wal/{} into {}: {}", data_dir,
                                                  segment, shown, std::strerror(errno)));
    }
    holding.segments_.push_back(segment);
  }
  return holding;
}

Result<std::vector<std::string>> HeldWal::link_back(
    const std::vector<std::string>& held,
    const std::function<Result<std::vector<std::string>>(const std::set<std::string>&)>& choose) {
  if (held.empty()) return std::vector<std::string>{};
  auto wal = open_trusted_dir(data_dir_ + "/pg_wal");
  if (!wal) return std::unexpected(wal.error());
  auto now = segment_files(wal->get(), data_dir_ + "/pg_wal");
  if (!now) return std::unexpected(now.error());
  auto chosen = choose(std::set<std::string>(now->begin(), now->end()));
  if (!chosen) return chosen;
  for (const std::string& segment : *chosen) {
    if (linkat(held_.get(), segment.c_str(), wal->get(), segment.c_str(), 0) != 0) {
      return fail(ErrorCode::kFailed, fmt::format("cannot put {} back into {}/pg_wal: {}", segment,
                                                  data_dir_, std::strerror(errno)));
    }
  }
  return chosen;
}

Result<std::vector<std::string>> HeldWal::restore() {
  if (segments_.empty()) return std::vector<std::string>{};
  auto label = read_file_nofollow(data_dir_ + "/backup_label");
  // None: pg_rewind found nothing to rewind (and removed nothing).
  if (!label && label.error().code == ErrorCode::kNotFound) return std::vector<std::string>{};
  if (!label) return std::unexpected(label.error());
  return link_back(segments_, [&](const std::set<std::string>& present) {
    return segments_to_restore(*label, segments_, present, segment_bytes_);
  });
}

Result<std::vector<std::string>> HeldWal::put_back_all() {
  return link_back(segments_,
                   [&](const std::set<std::string>& present) -> Result<std::vector<std::string>> {
                     std::vector<std::string> missing;
                     for (const std::string& segment : segments_) {
                       if (!present.contains(segment)) missing.push_back(segment);
                     }
                     return missing;
                   });
}

HeldWal::~HeldWal() {
  if (held_.get() < 0) return;  // moved from
  for (const std::string& segment : segments_) unlinkat(held_.get(), segment.c_str(), 0);
  unlinkat(parent_.get(), name_.c_str(), AT_REMOVEDIR);
}

}  // namespace tandem
