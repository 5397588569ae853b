#include "ops/wal_archive.h"

#include <gtest/gtest.h>
#include <pwd.h>
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

std::string duplicate(const std::string& segment) {
  return "ERROR: [045]: WAL file '" + segment +
         "' already exists in the repo1 archive with a different checksum\n";
}

// pgBackRest's answer to archive-push, and what tandem archive-push makes of it: another copy
// counts as archived only for a segment of a timeline that ended in the node's newest history
// (here timeline 1, at 0/7000060).
TEST_F(WalArchiveTest, ArchivePushCountsOnlyAnotherCopyOfATimelineTheNodeLeft) {
  std::ofstream(dir_ / "pg_wal" / "00000002.history")
      << "1\t0/7000060\tno recovery target specified\n";
  for (const char* name :
       {"000000010000000000000006", "000000010000000000000007", "000000010000000000000008",
        "000000020000000000000009", "000000010000000000000005"}) {
    add(name);
  }
  struct Case {
    std::string segment;
    ProcessResult answer;
    bool ok;
    bool noted;
  };
  for (const Case& c : std::vector<Case>{
           {"000000010000000000000006", {0, ""}, true, false},
           {"000000010000000000000006", {45, duplicate("000000010000000000000006")}, true, true},
           {"000000010000000000000005", {1, duplicate("000000010000000000000005")}, true, true},
           // Another segment's refusal, not this one's.
           {"000000010000000000000006", {45, duplicate("000000010000000000000005")}, false, false},
           // Holding the switch point, or after it (found by BackupTest: a standby's part of
           // it against the old primary's whole one; a segment begun at a switch point).
           {"000000010000000000000007", {45, duplicate("000000010000000000000007")}, true, true},
           {"000000010000000000000008", {45, duplicate("000000010000000000000008")}, true, true},
           {"000000020000000000000009", {45, duplicate("000000020000000000000009")}, false, false},
           {"00000002.history", {45, duplicate("00000002.history")}, false, false},
           {"000000010000000000000006", {45, "ERROR: [045]: something else"}, false, false},
           {"000000010000000000000006",
            {82, "ERROR: [082]: WAL segment ... timed out"},
            false,
            false},
       }) {
    AnsweringRunner runner(c.answer);
    std::string path = (dir_ / "pg_wal" / c.segment).string();
    std::string output;
    auto pushed =
        archive_push_segment(runner, {"/usr/bin/pgbackrest", "--stanza=s", "archive-push", path},
                             {{"PGBACKREST_REPO1_PATH", "/srv/repo"}}, output);
    ASSERT_EQ(runner.calls.size(), 1u);
    EXPECT_EQ(runner.calls[0].program, "/usr/bin/pgbackrest");
    EXPECT_EQ(runner.calls[0].args.back(), path);
    EXPECT_EQ(runner.calls[0].env.at("PGBACKREST_REPO1_PATH"), "/srv/repo") << "passed on";
    EXPECT_EQ(output, c.answer.output);
    ASSERT_EQ(pushed.has_value(), c.ok) << c.segment << " " << c.answer.output;
    if (pushed) {
      EXPECT_EQ(!pushed->empty(), c.noted) << *pushed;
    } else {
      EXPECT_NE(pushed.error().message.find(c.segment), std::string::npos)
          << pushed.error().message;
    }
  }
  // No newest history to read: nothing counted.
  std::filesystem::remove(dir_ / "pg_wal" / "00000002.history");
  AnsweringRunner refused({45, duplicate("000000010000000000000006")});
  std::string output;
  EXPECT_FALSE(archive_push_segment(refused,
                                    {"/usr/bin/pgbackrest", "archive-push",
                                     (dir_ / "pg_wal" / "000000010000000000000006").string()},
                                    {}, output));
  AnsweringRunner runner({0, ""});
  EXPECT_FALSE(archive_push_segment(runner, {"pgbackrest", "x"}, {}, output));
  EXPECT_FALSE(archive_push_segment(runner, {}, {}, output));
  EXPECT_TRUE(runner.calls.empty()) << "bad arguments run nothing";
}

// A standby about to be promoted: the whole segments it received (.done) after the old
// primary's last archived one are marked — .done renamed .ready by one shell as the OS user, the
// names its arguments — not one still owed already (.ready), not the one it is receiving (no
// status); all of them when the last archived is unknown.
TEST_F(WalArchiveTest, MarksWhatTheStandbyReceivedAfterTheLastArchived) {
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
            {"000000010000000000000005", "000000020000000000000006", "000000020000000000000007",
             "000000020000000000000009"}},
           {"000000020000000000000009", {}},
       }) {
    AnsweringRunner runner({0, std::to_string(c.marked.size()) + "\n"});
    auto marked = mark_received_wal(config, runner, node, c.archived);
    ASSERT_TRUE(marked) << marked.error().message;
    EXPECT_EQ(*marked, static_cast<int>(c.marked.size())) << c.archived;
    if (c.marked.empty()) {
      EXPECT_TRUE(runner.calls.empty()) << "nothing to mark, nothing run";
      continue;
    }
    ASSERT_EQ(runner.calls.size(), 1u);
    EXPECT_EQ(runner.calls[0].program, "/bin/sh");
    EXPECT_EQ(runner.calls[0].run_as, config.os_user);
    ASSERT_GE(runner.calls[0].args.size(), 3u);
    EXPECT_NE(runner.calls[0].args[1].find("mv -fT -- \"$f.done\" \"$f.ready\""),
              std::string::npos);
    std::vector<std::string> names(runner.calls[0].args.begin() + 3, runner.calls[0].args.end());
    std::vector<std::string> expected;
    for (const std::string& name : c.marked) expected.push_back(status_dir + "/" + name);
    EXPECT_EQ(names, expected) << c.archived;
  }

  // The shell failing: an error that says so.
  AnsweringRunner refusing({1, "sh: cannot fork\n"});
  auto refused = mark_received_wal(config, refusing, node, "");
  ASSERT_FALSE(refused);
  EXPECT_NE(refused.error().message.find("cannot fork"), std::string::npos);
}

// The real shell, as this user: .done becomes .ready, and a status file gone meanwhile (a
// restartpoint recycled its segment) is skipped.
TEST_F(WalArchiveTest, TheShellRenamesEachStatusFile) {
  add("000000010000000000000005");
  add("000000010000000000000006");
  status("000000010000000000000005.done");
  status("000000010000000000000006.done");
  ClusterConfig config;  // the runner runs nothing as root: as postgres, its files then
  if (geteuid() == 0) {
    passwd* postgres = getpwnam(config.os_user.c_str());
    ASSERT_NE(postgres, nullptr);
    for (const auto& entry : fs::recursive_directory_iterator(dir_)) {
      ASSERT_EQ(chown(entry.path().c_str(), postgres->pw_uid, postgres->pw_gid), 0);
    }
    ASSERT_EQ(chown(dir_.c_str(), postgres->pw_uid, postgres->pw_gid), 0);
  } else {
    config.os_user = getpwuid(geteuid())->pw_name;
  }
  NodeConfig node{.name = "node2", .data_dir = dir_.string()};

  class RemovingOne final : public ProcessRunner {
   public:
    explicit RemovingOne(fs::path gone) : gone_(std::move(gone)) {}
    Result<ProcessResult> run(const ProcessSpec& spec) override {
      fs::remove(gone_);
      return real_.run(spec);
    }

   private:
    fs::path gone_;
    SystemProcessRunner real_;
  } runner(dir_ / "pg_wal" / "archive_status" / "000000010000000000000005.done");
  auto marked = mark_received_wal(config, runner, node, "");
  ASSERT_TRUE(marked) << marked.error().message;
  EXPECT_EQ(*marked, 1);
  fs::path status_dir = dir_ / "pg_wal" / "archive_status";
  EXPECT_TRUE(fs::exists(status_dir / "000000010000000000000006.ready"));
  EXPECT_FALSE(fs::exists(status_dir / "000000010000000000000006.done"));
  EXPECT_FALSE(fs::exists(status_dir / "000000010000000000000005.ready"));
}

}  // namespace
}  // namespace tandem

namespace tandem {
namespace {

// PostgreSQL runs archive_command with its own environment: pgBackRest's options set there
// (PGBACKREST_REPO1_PATH, say) reach pgBackRest through tandem's wrapper, and nothing else does.
TEST(PgbackrestVariables, OnlyPgBackRestsOwnArePassedOn) {
  const char* environment[] = {"PATH=/usr/bin",
                               "PGBACKREST_REPO1_PATH=/srv/repo",
                               "PGBACKREST_LOG_LEVEL_CONSOLE=info",
                               "PGBACKREST_EMPTY=",
                               "XPGBACKREST_NOT=1",
                               "PGBACKREST_NO_EQUALS",
                               "PGDATA=/var/lib/postgresql",
                               nullptr};
  std::map<std::string, std::string> expected = {{"PGBACKREST_EMPTY", ""},
                                                 {"PGBACKREST_LOG_LEVEL_CONSOLE", "info"},
                                                 {"PGBACKREST_REPO1_PATH", "/srv/repo"}};
  EXPECT_EQ(pgbackrest_variables(environment), expected);
  EXPECT_TRUE(pgbackrest_variables(nullptr).empty());
}

}  // namespace
}  // namespace tandem
