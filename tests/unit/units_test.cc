#include "common/units.h"

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include "proc/os_user.h"

namespace tandem {
namespace {

TEST(ParseSize, AcceptsPostgresUnits) {
  struct Case {
    const char* text;
    std::int64_t bytes;
  };
  for (const Case& c :
       {Case{"0", 0}, Case{"1024", 1024}, Case{"512kB", 512 << 10}, Case{"16MB", 16 << 20},
        Case{"1GB", 1LL << 30}, Case{" 2 TB ", 2LL << 40}, Case{"7B", 7}}) {
    auto size = parse_size(c.text);
    ASSERT_TRUE(size) << c.text << ": " << size.error().message;
    EXPECT_EQ(*size, c.bytes) << c.text;
  }
}

TEST(ParseSize, RefusesNonsense) {
  for (const char* text : {"", "MB", "-1MB", "1.5GB", "12XB", "1 gb", "99999999999TB"}) {
    EXPECT_FALSE(parse_size(text)) << text;
  }
}

TEST(FormatSize, ExactAndHuman) {
  EXPECT_EQ(format_size_exact(1LL << 30), "1GB");
  EXPECT_EQ(format_size_exact(1536LL << 20), "1536MB");
  EXPECT_EQ(format_size_exact(1000), "1000B");
  EXPECT_EQ(format_size_exact(0), "0B");
  EXPECT_EQ(format_size_human(312), "312 B");
  EXPECT_EQ(format_size_human(1536LL << 20), "1.5 GiB");
}

TEST(ParseDuration, RequiresAUnit) {
  struct Case {
    const char* text;
    long millis;
  };
  for (const Case& c : {Case{"200ms", 200}, Case{"5s", 5000}, Case{"10min", 600000},
                        Case{"2h", 7200000}, Case{"1d", 86400000}}) {
    auto duration = parse_duration(c.text);
    ASSERT_TRUE(duration) << c.text;
    EXPECT_EQ(duration->count(), c.millis) << c.text;
  }
  for (const char* text : {"5", "", "5m", "s", "-3s"}) {
    EXPECT_FALSE(parse_duration(text)) << text;
  }
}

TEST(FormatDuration, LargestExactUnit) {
  EXPECT_EQ(format_duration(std::chrono::milliseconds(200)), "200ms");
  EXPECT_EQ(format_duration(std::chrono::milliseconds(5000)), "5s");
  EXPECT_EQ(format_duration(std::chrono::milliseconds(600000)), "10min");
  EXPECT_EQ(format_duration(std::chrono::milliseconds(1500)), "1500ms");
}

}  // namespace
}  // namespace tandem

namespace tandem {
namespace {

// A /proc file of a process that exits while it is read fails with ESRCH; read_file says so
// where std::istreambuf_iterator threw (the chaos runner died of it).
TEST(ReadFile, ReadsWholeFilesAndNeverThrows) {
  auto own = read_file("/proc/self/cmdline");
  ASSERT_TRUE(own);
  EXPECT_NE(own->find("tandem_unit_tests"), std::string::npos);
  EXPECT_FALSE(read_file("/nonexistent/file"));
  // Children that exit while their /proc files are read, again and again.
  for (int round = 0; round < 200; ++round) {
    pid_t child = fork();
    if (child == 0) _exit(0);
    EXPECT_NO_THROW((void)read_file("/proc/" + std::to_string(child) + "/stat"));
    EXPECT_NO_THROW((void)read_file("/proc/" + std::to_string(child) + "/cmdline"));
    waitpid(child, nullptr, 0);
    EXPECT_FALSE(read_file("/proc/" + std::to_string(child) + "/stat")) << "reaped: gone";
  }
}

}  // namespace
}  // namespace tandem
