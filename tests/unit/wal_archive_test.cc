#include "ops/wal_archive.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

namespace tandem {
namespace {

namespace fs = std::filesystem;

// Runs nothing: answers each run with `answer`, and records what was asked.
class AnsweringRunner final : public ProcessRunner {
 public:
  explicit AnsweringRunner(ProcessResult answer) : answer_(std::move(answer)) {}
  Result<ProcessResult> run(const ProcessSpec& spec) override {
    calls.push_back(spec);
    return answer_;
  }
  std::vector<ProcessSpec> calls;

 private:
  ProcessResult answer_;
};

class WalArchiveTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("tandem-wal-archive-" + std::to_string(getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_ / "pg_wal" / "archive_status");
  }
  void TearDown() override { fs::remove_all(dir_); }
  // A WAL file of 16 MiB (sparse), or a small one (a history file).
  void add(const std::string& name, std::uintmax_t size = 16 << 20) {
    std::ofstream(dir_ / "pg_wal" / name) << "x";
    fs::resize_file(dir_ / "pg_wal" / name, size);
  }
  void status(const std::string& name) { std::ofstream(dir_ / "pg_wal" / "archive_status" / name); }
  fs::path dir_;
};

constexpr char kDuplicate[] =
    "ERROR: [045]: WAL file '000000010000000000000006' already exists in the repo1 archive "
    "with a different checksum\n";

// pgBackRest's answer to archive-push, and what tandem archive-push makes of it.
TEST_F(WalArchiveTest, ArchivePushCountsOnlyAnotherCopyOfATimelineLeftBehind) {
  add("00000002.history", 42);
  struct Case {
    std::string segment;
    ProcessResult answer;
    bool ok;
    bool noted;
  };
  for (const Case& c : std::vector<Case>{
           {"000000010000000000000006", {0, ""}, true, false},
           {"000000010000000000000006", {45, kDuplicate}, true, true},
           {"000000020000000000000009", {45, kDuplicate}, false, false},  // its own timeline
           {"00000002.history", {45, kDuplicate}, false, false},
           {"000000010000000000000007.partial", {45, kDuplicate}, false, false},
           {"000000010000000000000006",
            {82, "ERROR: [082]: WAL segment ... timed out"},
            false,
            false},
       }) {
    AnsweringRunner runner(c.answer);
    std::string path = (dir_ / "pg_wal" / c.segment).string();
    std::string output;
    auto pushed = archive_push_segment(
        runner, {"/usr/bin/pgbackrest", "--stanza=s", "archive-push", path}, output);
    ASSERT_EQ(runner.calls.size(), 1u);
    EXPECT_EQ(runner.calls[0].program, "/usr/bin/pgbackrest");
    EXPECT_EQ(runner.calls[0].args.back(), path);
    EXPECT_EQ(output, c.answer.output);
    ASSERT_EQ(pushed.has_value(), c.ok) << c.segment << " " << c.answer.exit_code;
    if (pushed) {
      EXPECT_EQ(!pushed->empty(), c.noted) << *pushed;
    } else {
      EXPECT_NE(pushed.error().message.find(c.segment), std::string::npos)
          << pushed.error().message;
    }
  }
  AnsweringRunner runner({0, ""});
  std::string output;
  EXPECT_FALSE(archive_push_segment(runner, {"pgbackrest", "x"}, output));
  EXPECT_FALSE(archive_push_segment(runner, {}, output));
  EXPECT_TRUE(runner.calls.empty()) << "bad arguments run nothing";
}

// A standby about to be promoted, following timeline 2: the whole segments of timeline 2 it
// received (.done) after the old primary's last archived one are marked .ready for its
// archiver; not one still owed already (.ready), not the one it is receiving (no status), not
// one of timeline 1; all of timeline 2's when the last archived is unknown.
TEST_F(WalArchiveTest, MarksWhatTheStandbyReceivedOfTheTimelineItFollows) {
  add("00000002.history", 42);
  for (const char* name :
       {"000000010000000000000005", "000000020000000000000006", "000000020000000000000007",
        "000000020000000000000008", "000000020000000000000009", "00000002000000000000000A"}) {
    add(name);
  }
  status("000000010000000000000005.done");
  status("000000020000000000000006.done");
  status("000000020000000000000007.done");
  status("000000020000000000000008.ready");
  status("000000020000000000000009.done");
  ClusterConfig config;
  NodeConfig node{.name = "node2", .data_dir = dir_.string()};
  std::string status_dir = (dir_ / "pg_wal" / "archive_status").string();
  struct Case {
    std::string archived;
    std::vector<std::string> marked;
  };
  for (const Case& c : std::vector<Case>{
           {"000000020000000000000006", {"000000020000000000000007", "000000020000000000000009"}},
           {"",
            {"000000020000000000000006", "000000020000000000000007", "000000020000000000000009"}},
           {"000000020000000000000009", {}},
       }) {
    AnsweringRunner runner({0, ""});
    auto marked = mark_received_wal(config, runner, node, c.archived);
    ASSERT_TRUE(marked) << marked.error().message;
    EXPECT_EQ(*marked, static_cast<int>(c.marked.size())) << c.archived;
    if (c.marked.empty()) {
      EXPECT_TRUE(runner.calls.empty()) << "nothing to mark, nothing run";
      continue;
    }
    ASSERT_EQ(runner.calls.size(), 1u);
    EXPECT_EQ(runner.calls[0].program, "/usr/bin/touch");
    EXPECT_EQ(runner.calls[0].run_as, config.os_user);
    std::vector<std::string> args = {"--"};
    for (const std::string& name : c.marked) args.push_back(status_dir + "/" + name + ".ready");
    EXPECT_EQ(runner.calls[0].args, args) << c.archived;
  }

  // touch failing: an error that says so.
  AnsweringRunner refusing({1, "touch: cannot touch 'x': Permission denied\n"});
  auto refused = mark_received_wal(config, refusing, node, "");
  ASSERT_FALSE(refused);
  EXPECT_NE(refused.error().message.find("Permission denied"), std::string::npos);
}

}  // namespace
}  // namespace tandem
