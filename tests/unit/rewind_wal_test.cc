// The old primary's WAL held through pg_rewind (pg/rewind_wal.h): which segments go back, and
// the holding directory beside the data directory, where the PostgreSQL OS user may plant things.
#include "pg/rewind_wal.h"

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

namespace tandem {
namespace {

constexpr std::uint64_t k16MB = 16ULL << 20;

std::string label(std::string_view start_lsn, std::string_view start_file,
                  std::string_view checkpoint) {
  return fmt::format(
      "START WAL LOCATION: {} (file {})\nCHECKPOINT LOCATION: {}\nBACKUP METHOD: pg_rewind\n"
      "BACKUP FROM: standby\nSTART TIME: 2026-12-08 01:49:28 UTC\n",
      start_lsn, start_file, checkpoint);
}

TEST(RewindWal, TheSegmentsFromTheRedoPointToTheCheckpointRecordThatPgRewindRemoved) {
  const std::string tl1_2 = "000000010000000000000002", tl1_3 = "000000010000000000000003",
                    tl1_4 = "000000010000000000000004", tl1_5 = "000000010000000000000005",
                    tl1_6 = "000000010000000000000006", tl2_3 = "000000020000000000000003",
                    tl2_5 = "000000020000000000000005";
  struct Row {
    const char* what;
    std::string label;
    std::vector<std::string> held;
    std::set<std::string> present;
    std::uint64_t segment_bytes;
    std::vector<std::string> restored;
  };
  const std::string spread = label("0/3000028", tl1_3, "0/4000060");  // the bench's
  const std::vector<Row> rows = {
      {"the redo point's segment, removed: back",
       spread,
       {tl1_2, tl1_3, tl1_4, tl1_5},
       {tl1_4, tl1_5, tl2_5},
       k16MB,
       {tl1_3}},
      {"nothing removed: nothing", spread, {tl1_3, tl1_4}, {tl1_3, tl1_4, tl2_5}, k16MB, {}},
      {"the record's segment too, if removed",
       spread,
       {tl1_3, tl1_4},
       {tl2_5},
       k16MB,
       {tl1_3, tl1_4}},
      {"before the redo point: not needed", spread, {tl1_2}, {tl1_4}, k16MB, {}},
      {"after the checkpoint record: the target's own WAL stays removed",
       spread,
       {tl1_5, tl1_6},
       {tl2_5},
       k16MB,
       {}},
      {"another timeline's: stays removed", spread, {tl2_3}, {tl1_4}, k16MB, {}},
      {"one segment for both",
       label("0/4000028", tl1_4, "0/4000060"),
       {tl1_3, tl1_4},
       {},
       k16MB,
       {tl1_4}},
      // 64 MB segments: 0/8000060 lies in segment 2, 0/4000028 in segment 1.
      {"64 MB segments",
       label("0/4000028", "000000010000000000000001", "0/8000060"),
       {"000000010000000000000001", "000000010000000000000002", "000000010000000000000003"},
       {},
       64ULL << 20,
       {"000000010000000000000001", "000000010000000000000002"}},
  };
  for (const Row& row : rows) {
    auto restored = segments_to_restore(row.label, row.held, row.present, row.segment_bytes);
    ASSERT_TRUE(restored) << row.what << ": " << restored.error().message;
    EXPECT_EQ(*restored, row.restored) << row.what;
  }
  for (std::string_view bad : {std::string_view(""), std::string_view("START WAL LOCATION: x\n"),
                               std::string_view("START WAL LOCATION: 0/3000028 (file nonsense)\n"
                                                "CHECKPOINT LOCATION: 0/4000060\n")}) {
    EXPECT_FALSE(segments_to_restore(bad, {tl1_3}, {}, k16MB)) << bad;
  }
  // Segment sizes PostgreSQL would not have, or one the label's start file contradicts: nothing
  // is chosen on a wrong bound (a 5 GB size would also divide by zero).
  for (std::uint64_t bytes :
       {0ULL, 3ULL << 20, 5ULL << 30, 2ULL << 30, 512ULL << 10, 32ULL << 20}) {
    EXPECT_FALSE(segments_to_restore(spread, {tl1_3}, {}, bytes)) << bytes;
  }
}

class HeldWalTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char pattern[] = "/tmp/tandem-heldwal-XXXXXX";
    ASSERT_NE(mkdtemp(pattern), nullptr);
    root_ = pattern;
    data_ = root_ + "/node1";
    std::filesystem::create_directories(data_ + "/pg_wal/archive_status");
    for (const char* name : {"000000010000000000000003", "000000010000000000000004",
                             "000000010000000000000005", "00000002.history"}) {
      std::ofstream(data_ + "/pg_wal/" + name) << std::string(4096, 'w');
    }
  }
  void TearDown() override { std::filesystem::remove_all(root_); }

  // Segments of 1 MB here: 0/300028 lies in segment 3, 0/400060 in segment 4.
  static constexpr std::uint64_t k1MB = 1ULL << 20;
  void rewound(const std::vector<std::string>& removed) {
    for (const std::string& name : removed) std::filesystem::remove(data_ + "/pg_wal/" + name);
    std::ofstream(data_ + "/backup_label")
        << label("0/300028", "000000010000000000000003", "0/400060");
  }

  ino_t inode(const std::string& path) {
    struct stat info {};
    return lstat(path.c_str(), &info) == 0 ? info.st_ino : 0;
  }

  std::string root_, data_;
};

TEST_F(HeldWalTest, WhatPgRewindRemovedFromTheRedoPointOnComesBackAndTheHoldGoes) {
  ino_t original = inode(data_ + "/pg_wal/000000010000000000000003");
  {
    auto held = HeldWal::hold(data_, k1MB);
    ASSERT_TRUE(held) << held.error().message;
    EXPECT_TRUE(std::filesystem::exists(data_ + ".rewind-wal/000000010000000000000003"));
    EXPECT_FALSE(std::filesystem::exists(data_ + ".rewind-wal/00000002.history"));
    // pg_rewind removes the redo point's segment and the diverged one after the checkpoint.
    rewound({"000000010000000000000003", "000000010000000000000005"});
    auto restored = held->restore();
    ASSERT_TRUE(restored) << restored.error().message;
    EXPECT_EQ(*restored, std::vector<std::string>{"000000010000000000000003"});
  }
  EXPECT_EQ(inode(data_ + "/pg_wal/000000010000000000000003"), original);
  EXPECT_FALSE(std::filesystem::exists(data_ + "/pg_wal/000000010000000000000005"));
  EXPECT_FALSE(std::filesystem::exists(data_ + ".rewind-wal"));
}

TEST_F(HeldWalTest, NoRewindNeededPutsNothingBack) {
  auto held = HeldWal::hold(data_, k1MB);
  ASSERT_TRUE(held) << held.error().message;
  auto restored = held->restore();  // no backup_label: pg_rewind found nothing to do
  ASSERT_TRUE(restored) << restored.error().message;
  EXPECT_TRUE(restored->empty());
}

TEST_F(HeldWalTest, AFailedRewindGetsEveryRemovedSegmentBack) {
  {
    auto held = HeldWal::hold(data_, k1MB);
    ASSERT_TRUE(held) << held.error().message;
    rewound({"000000010000000000000003", "000000010000000000000005"});
    auto back = held->put_back_all();
    ASSERT_TRUE(back) << back.error().message;
    EXPECT_EQ(*back,
              (std::vector<std::string>{"000000010000000000000003", "000000010000000000000005"}));
  }
  EXPECT_TRUE(std::filesystem::exists(data_ + "/pg_wal/000000010000000000000005"));
}

// tandem died between pg_rewind and the restore: the next hold puts back from the links it left
// what the restore would have, before it takes new ones.
TEST_F(HeldWalTest, AHoldLeftByATandemThatDiedIsRestoredFromFirst) {
  std::filesystem::create_directory(root_ + "/kept");
  {
    auto held = HeldWal::hold(data_, k1MB);
    ASSERT_TRUE(held) << held.error().message;
    rewound({"000000010000000000000003", "000000010000000000000005"});
    for (const char* name :
         {"000000010000000000000003", "000000010000000000000004", "000000010000000000000005"}) {
      std::filesystem::create_hard_link(data_ + ".rewind-wal/" + name, root_ + "/kept/" + name);
    }
  }  // its directory went: made again as a death would have left it
  std::filesystem::create_directory(data_ + ".rewind-wal");
  ASSERT_EQ(chmod((data_ + ".rewind-wal").c_str(), 0700), 0);
  for (const auto& entry : std::filesystem::directory_iterator(root_ + "/kept")) {
    std::filesystem::rename(entry.path(),
                            data_ + ".rewind-wal/" + entry.path().filename().string());
  }
  auto held = HeldWal::hold(data_, k1MB);
  ASSERT_TRUE(held) << held.error().message;
  EXPECT_TRUE(std::filesystem::exists(data_ + "/pg_wal/000000010000000000000003"));
  EXPECT_FALSE(std::filesystem::exists(data_ + "/pg_wal/000000010000000000000005"));
}

// The OS user owns the data directory's parent in Debian's layout: a link it plants where the
// holding directory goes makes the hold fail, and nothing is linked where the link leads.
TEST_F(HeldWalTest, ALinkPlantedWhereTheHoldGoesIsRefused) {
  std::filesystem::create_directory(root_ + "/elsewhere");
  std::filesystem::create_directory_symlink(root_ + "/elsewhere", data_ + ".rewind-wal");
  auto held = HeldWal::hold(data_, k1MB);
  ASSERT_FALSE(held);
  EXPECT_NE(held.error().message.find("is not a directory of tandem's own"), std::string::npos)
      << held.error().message;
  EXPECT_TRUE(std::filesystem::is_empty(root_ + "/elsewhere"));
  EXPECT_TRUE(std::filesystem::is_symlink(data_ + ".rewind-wal"));
}

TEST_F(HeldWalTest, ADirectoryOfAnotherUserWhereTheHoldGoesIsRefused) {
  ASSERT_EQ(geteuid(), 0u) << "plays root against another user: needs root, as CI runs";
  std::filesystem::create_directory(data_ + ".rewind-wal");
  ASSERT_EQ(chown((data_ + ".rewind-wal").c_str(), 65534, 65534), 0);
  auto held = HeldWal::hold(data_, k1MB);
  ASSERT_FALSE(held);
  EXPECT_TRUE(std::filesystem::is_empty(data_ + ".rewind-wal"));
}

}  // namespace
}  // namespace tandem
