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

}  // namespace
}  // namespace tandem
