#include "proc/sync_filesystems.h"

#include <dirent.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <set>
#include <vector>

namespace tandem {

namespace {

// The directories a data directory's files live in: itself, pg_wal, and the tablespaces.
std::vector<std::string> places_of(const std::string& data_dir) {
  std::vector<std::string> places = {data_dir, data_dir + "/pg_wal"};
  std::string tablespaces = data_dir + "/pg_tblspc";
  if (DIR* dir = opendir(tablespaces.c_str())) {
    while (dirent* entry = readdir(dir)) {
      std::string name = entry->d_name;
      if (name != "." && name != "..") places.push_back(tablespaces + "/" + name);
    }
    closedir(dir);
  }
  return places;
}

}  // namespace

Result<int> sync_filesystems_of(const std::string& data_dir) {
  std::set<dev_t> synced;
  for (const std::string& place : places_of(data_dir)) {
    int fd = open(place.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) {
      if (errno == ENOENT && place != data_dir) continue;  // no pg_wal yet, say
      return fail(ErrorCode::kFailed,
                  fmt::format("cannot open {} to sync it: {}", place, std::strerror(errno)));
    }
    struct stat status {};
    bool seen = fstat(fd, &status) == 0 && !synced.insert(status.st_dev).second;
    int synced_now = seen ? 0 : syncfs(fd);
    int error = errno;
    close(fd);
    if (synced_now != 0) {
      return fail(ErrorCode::kFailed,
                  fmt::format("syncing the filesystem of {}: {}", place, std::strerror(error)));
    }
  }
  return static_cast<int>(synced.size());
}

}  // namespace tandem
