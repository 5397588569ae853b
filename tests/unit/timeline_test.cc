#include "core/timeline.h"

#include <gtest/gtest.h>

namespace tandem {
namespace {

TEST(TimelineHistory, ParsesAHistoryFile) {
  auto history = TimelineHistory::parse(3,
                                        "1\t0/3000060\tno recovery target specified\n"
                                        "\n"
                                        "# a comment\n"
                                        "2\t0/5000000\tno recovery target specified\n");
  ASSERT_TRUE(history) << history.error().message;
  EXPECT_EQ(history->current(), 3u);
  ASSERT_EQ(history->switches().size(), 2u);
  EXPECT_EQ(history->switches()[0].reason, "no recovery target specified");
  EXPECT_EQ(history->switch_point(1), Lsn::parse("0/3000060").value());
  EXPECT_EQ(history->switch_point(2), Lsn::parse("0/5000000").value());
  EXPECT_EQ(history->switch_point(3), std::nullopt);
  EXPECT_TRUE(history->contains(1));
  EXPECT_TRUE(history->contains(3));
  EXPECT_FALSE(history->contains(4));
}

TEST(TimelineHistory, SkippedTimelinesAreStrangers) {
  // Timeline 2 was a branch this history does not descend from.
  auto history = TimelineHistory::parse(3, "1\t0/3000060\treason\n");
  ASSERT_TRUE(history);
  EXPECT_FALSE(history->contains(2));
}

TEST(TimelineHistory, RefusesMalformed) {
  struct Case {
    TimelineId current;
    const char* text;
  };
  for (const Case& c : {Case{2, "x\t0/1\n"}, Case{2, "1\tnot-an-lsn\n"}, Case{2, "2\t0/1\n"},
                        Case{3, "2\t0/5\n1\t0/6\n"}, Case{2, "0\t0/1\n"}, Case{2, "1\n"}}) {
    EXPECT_FALSE(TimelineHistory::parse(c.current, c.text)) << c.text;
  }
}

TEST(TimelineHistory, AcceptsALowerLaterSwitchPoint) {
  // PostgreSQL's readTimeLineHistory requires only increasing timelines, and it accepts such
  // files (seen after a timeline number had been used by two nodes): so must tandem.
  auto history = TimelineHistory::parse(4,
                                        "1\t0/9000000\tno recovery target\n"
                                        "2\t0/5000000\tno recovery target\n"
                                        "3\t0/7000000\tno recovery target\n");
  ASSERT_TRUE(history) << history.error().message;
  EXPECT_EQ(history->switch_point(2), Lsn::parse("0/5000000").value());
  EXPECT_EQ(history->switch_point(3), Lsn::parse("0/7000000").value());
}

TEST(TimelineHistory, FileName) {
  EXPECT_EQ(history_file_name(2), "00000002.history");
  EXPECT_EQ(history_file_name(0x1A), "0000001A.history");
}

// The file a position is in: 256 segments of 16 MB to a "log" of 4 GB (at a segment boundary the
// next one, where the next write goes; pg_walfile_name() names the one before).
TEST(WalSegmentName, NamesTheFileThatHoldsAPosition) {
  struct Case {
    TimelineId timeline;
    std::uint64_t position;
    std::uint64_t segment_bytes;
    const char* name;
  };
  const Case cases[] = {
      {1, 0x0, 16ULL << 20, "000000010000000000000000"},
      {1, 0x3FFFFFF, 16ULL << 20, "000000010000000000000003"},
      {1, 0x4000000, 16ULL << 20, "000000010000000000000004"},
      {2, 0x16B374D848, 16ULL << 20, "0000000200000016000000B3"},
      {0x1A, 0xFFFFFFFF, 16ULL << 20, "0000001A00000000000000FF"},
      {3, 0x100000000, 16ULL << 20, "000000030000000100000000"},
      {1, 0x16B374D848, 1ULL << 30, "000000010000001600000002"},  // initdb --wal-segsize=1024
  };
  for (const Case& each : cases) {
    EXPECT_EQ(wal_segment_name(each.timeline, Lsn(each.position), each.segment_bytes), each.name)
        << std::hex << each.position;
  }
}

// Before a promotion: what the standby received after the old primary's last archived file, in
// the order of the WAL, of any timeline; all of it when that names no segment.
TEST(ReceivedAfter, WhatTheOldPrimaryMayNotHaveArchived) {
  std::vector<std::string> received = {
      "000000020000000000000009", "000000020000000000000007",        "000000010000000000000006",
      "00000002000000000000000A", "000000030000000100000000",        "000000020000000000000008",
      "00000002.history",         "000000010000000000000007.partial"};
  std::vector<std::string> all = {"000000010000000000000006", "000000020000000000000007",
                                  "000000020000000000000008", "000000020000000000000009",
                                  "00000002000000000000000A", "000000030000000100000000"};
  struct Case {
    std::string archived;
    std::vector<std::string> owed;
  };
  for (const Case& c : std::vector<Case>{
           {"000000020000000000000008",
            {"000000020000000000000009", "00000002000000000000000A", "000000030000000100000000"}},
           {"000000010000000000000007",  // another timeline: by position in the WAL
            {"000000020000000000000007", "000000020000000000000008", "000000020000000000000009",
             "00000002000000000000000A", "000000030000000100000000"}},
           {"000000020000000000000009.partial",
            {"00000002000000000000000A", "000000030000000100000000"}},
           // A promotion out of timeline 1 archived its last segment as a .partial: timeline 2's
           // segment at that position is still owed.
           {"000000010000000000000009.partial",
            {"000000020000000000000009", "00000002000000000000000A", "000000030000000100000000"}},
           {"000000010000000000000009",
            {"000000020000000000000009", "00000002000000000000000A", "000000030000000100000000"}},
           {"000000030000000000000009.partial",
            {"00000002000000000000000A", "000000030000000100000000"}},
           {"000000020000000000000009.00000028.backup",
            {"00000002000000000000000A", "000000030000000100000000"}},
           {"000000030000000100000000", {}},
           {"000000030000000100000001", {}},
           {"", all},
           {"00000002.history", all},
           {"garbage", all},
       }) {
    EXPECT_EQ(received_after(received, c.archived), c.owed) << c.archived;
  }
}

// What `tandem archive-push` may count as archived after pgBackRest's error 45: a segment of a
// timeline that ended in the node's newest history, and nothing else.
TEST(OfATimelineLeft, OnlySegmentsOfATimelineTheHistoryEnded) {
  auto history = TimelineHistory::parse(3,
                                        "1\t0/7000060\tno recovery target specified\n"
                                        "2\t0/9000000\tno recovery target specified\n");
  ASSERT_TRUE(history);
  struct Case {
    std::string segment;
    bool left;
  };
  for (const Case& c : std::vector<Case>{
           {"000000010000000000000006", true},
           {"000000010000000000000007", true},  // holds the switch point
           {"000000010000000000000008", true},  // after it: read by no recovery along it
           {"000000020000000000000009", true},
           {"000000030000000000000009", false},  // its own timeline
           {"000000040000000000000009", false},  // not in its history
           {"000000050000000000000001", false},
           {"00000002.history", false},
           {"000000010000000000000006.partial", false},
           {"000000010000000000000006.00000028.backup", false},
           {"00000001000000000000000g", false},
       }) {
    EXPECT_EQ(of_a_timeline_left(c.segment, *history), c.left) << c.segment;
  }
  EXPECT_EQ(newest_history({"0000000A.history", "00000009.history", "0000000Z.history"}), 10u);
  EXPECT_EQ(newest_history({}), 1u);
  EXPECT_EQ(segment_timeline("0000000A0000000000000001"), 10u);
  EXPECT_EQ(segment_timeline("0000000A0000000000000001.partial"), std::nullopt);
}

}  // namespace
}  // namespace tandem
