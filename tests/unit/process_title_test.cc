// What tandem reads in PostgreSQL's process titles: the WAL segment a starting server's recovery
// waits for, and nothing a client could write into a backend's title by its user name.
#include <gtest/gtest.h>

#include <optional>
#include <string>

#include "pg/postmaster.h"

namespace tandem {
namespace {

using namespace std::string_literals;

TEST(ProcessTitle, OnlyTheStartupProcessWaitingNamesASegment) {
  struct Case {
    const char* name;
    std::string title;  // as /proc/PID/cmdline reads
    std::optional<std::string> segment;
  };
  const Case cases[] = {
      {"the startup process waiting", "postgres: startup waiting for 000000010000000000000004\0"s,
       "000000010000000000000004"},
      {"with the cluster's name", "postgres: node2: startup waiting for 00000002000000000000000A"s,
       "00000002000000000000000A"},
      {"padded with spaces", "postgres: startup waiting for 000000010000000000000004      "s,
       "000000010000000000000004"},
      {"replaying", "postgres: startup recovering 000000010000000000000004"s, std::nullopt},
      {"a backend whose user name says it",
       "postgres: startup waiting for 000000010000000000000004 test_app 127.0.0.1(5555) "
       "authentication"s,
       std::nullopt},
      {"a backend whose user name ends with it, no database",
       "postgres: x startup waiting for 000000010000000000000004"s, std::nullopt},
      {"a segment too short", "postgres: startup waiting for 00000001000000000000004"s,
       std::nullopt},
      {"not hexadecimal", "postgres: startup waiting for 00000001000000000000000G"s, std::nullopt},
      {"another program", "/usr/bin/startup waiting for 000000010000000000000004"s, std::nullopt},
      {"empty", ""s, std::nullopt},
  };
  for (const Case& each : cases) {
    EXPECT_EQ(waiting_segment(each.title), each.segment) << each.name;
  }
}

}  // namespace
}  // namespace tandem
