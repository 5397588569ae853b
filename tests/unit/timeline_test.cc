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

// After a promotion at 0/7000060 from timeline 1 (16 MB segments): the whole segments of
// timeline 1 before segment 7, newest first; not the .partial one, not the recycled files named
// after it, not another timeline's, nor what is no segment at all.
TEST(SegmentsBeforeSwitch, OnlyWholeSegmentsOfTheTimelineLeftNewestFirst) {
  constexpr std::uint64_t k16Mb = 16 * 1024 * 1024;
  std::vector<std::string> names = {
      "000000010000000000000005", "000000010000000000000006", "000000010000000000000007.partial",
      "000000010000000000000008",  // recycled: holds old WAL
      "000000020000000000000007", "00000002.history",         "archive_status",
      "00000001000000000000000G", "000000010000000000000004"};
  auto lsn = Lsn::parse("0/7000060");
  ASSERT_TRUE(lsn);
  EXPECT_EQ(segments_before_switch(names, 1, *lsn, k16Mb),
            (std::vector<std::string>{"000000010000000000000006", "000000010000000000000005",
                                      "000000010000000000000004"}));
  // Across a log id: 1/00000010 with 16 MB segments is segment 256 + 16 of 1/...
  auto high = Lsn::parse("1/1000000");
  ASSERT_TRUE(high);
  EXPECT_EQ(segments_before_switch({"0000000300000000000000FF", "000000030000000100000000",
                                    "000000030000000100000001"},
                                   3, *high, k16Mb),
            (std::vector<std::string>{"000000030000000100000000", "0000000300000000000000FF"}));
  // A switch at a segment's first byte: that segment is the new timeline's alone.
  auto boundary = Lsn::parse("0/6000000");
  ASSERT_TRUE(boundary);
  EXPECT_EQ(segments_before_switch(names, 1, *boundary, k16Mb),
            (std::vector<std::string>{"000000010000000000000005", "000000010000000000000004"}));
  // A segment size that does not divide 4 GiB: nothing.
  EXPECT_TRUE(segments_before_switch(names, 1, *lsn, 3).empty());
}

}  // namespace
}  // namespace tandem
