// proc/sync_filesystems: one syncfs per filesystem a data directory spans, pg_wal and the
// tablespaces followed through their links.
#include "proc/sync_filesystems.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <string>

namespace tandem {
namespace {

std::string temporary_dir(const std::string& under) {
  std::string pattern = under + "/tandem-sync-XXXXXX";
  return mkdtemp(pattern.data());
}

TEST(SyncFilesystems, EachFilesystemOfADataDirectoryOnce) {
  namespace fs = std::filesystem;
  // /tmp and /dev/shm (a tmpfs) are two filesystems here.
  ASSERT_NE(fs::status("/tmp").type(), fs::file_type::not_found);
  ASSERT_NE(fs::status("/dev/shm").type(), fs::file_type::not_found);
  std::string data = temporary_dir("/tmp");
  std::string elsewhere = temporary_dir("/dev/shm");
  std::string other_tablespace = temporary_dir("/tmp");
  fs::create_directory(data + "/pg_tblspc");
  fs::create_directory(elsewhere + "/wal");
  fs::create_directory(elsewhere + "/tablespace");
  fs::create_directory_symlink(elsewhere + "/wal", data + "/pg_wal");
  fs::create_directory_symlink(elsewhere + "/tablespace", data + "/pg_tblspc/16384");
  fs::create_directory_symlink(other_tablespace, data + "/pg_tblspc/16385");

  auto synced = sync_filesystems_of(data);
  ASSERT_TRUE(synced) << synced.error().message;
  EXPECT_EQ(*synced, 2) << "the data directory's and /dev/shm's, each once";

  // No pg_wal yet (a copy under way) is no error; no data directory is.
  fs::remove(data + "/pg_wal");
  fs::remove(data + "/pg_tblspc/16384");
  synced = sync_filesystems_of(data);
  ASSERT_TRUE(synced) << synced.error().message;
  EXPECT_EQ(*synced, 1);
  auto missing = sync_filesystems_of(data + "/nothing-here");
  ASSERT_FALSE(missing);
  EXPECT_NE(missing.error().message.find("cannot open " + data + "/nothing-here to sync it"),
            std::string::npos)
      << missing.error().message;
  for (const std::string& dir : {data, elsewhere, other_tablespace}) fs::remove_all(dir);
}

}  // namespace
}  // namespace tandem
