#include "pg/control_data.h"

#include <gtest/gtest.h>

namespace tandem {
namespace {

constexpr char kCrashedPrimary[] = R"(pg_control version number:            1300
Catalog version number:               202209061
Database system identifier:           7312345678901234567
Database cluster state:               in production
pg_control last modified:             Thu 26 Nov 2026 12:00:00 PM UTC
Latest checkpoint location:           0/3000148
Latest checkpoint's REDO location:    0/3000110
Latest checkpoint's TimeLineID:       1
Minimum recovery ending location:     0/0
Min recovery ending loc's timeline:   0
Data page checksum version:           1
Bytes per WAL segment:                16777216
)";

TEST(ParseControlData, ReadsTheFieldsTandemUses) {
  auto data = parse_control_data(kCrashedPrimary);
  ASSERT_TRUE(data) << data.error().message;
  EXPECT_EQ(data->cluster_state, "in production");
  EXPECT_FALSE(data->cleanly_shut_down());
  EXPECT_EQ(data->system_identifier, "7312345678901234567");
  EXPECT_EQ(data->checkpoint, Lsn::parse("0/3000148").value());
  EXPECT_EQ(data->checkpoint_timeline, 1u);
  EXPECT_EQ(data->min_recovery_end, Lsn());
  EXPECT_TRUE(data->data_checksums);
  EXPECT_EQ(data->wal_segment_bytes, 16ULL << 20);
}

TEST(ParseControlData, MissingFieldIsAnError) {
  auto data = parse_control_data("Database cluster state: shut down\n");
  ASSERT_FALSE(data);
  EXPECT_NE(data.error().message.find("Database system identifier"), std::string::npos);
}

}  // namespace
}  // namespace tandem
