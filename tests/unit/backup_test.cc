// What tandem reads from pgBackRest and what it asks of it: `info --output=json` (its shape as
// pgBackRest 2.45 prints it) and the restore targets tandem restore accepts.
#include "ops/backup.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <sstream>

#include "api/cluster_json.h"
#include "dcs/cluster_layout.h"

namespace tandem {
namespace {

// Trimmed from a real `pgbackrest info --output=json` (2.45): a full backup and an incremental
// one, WAL archived on two timelines.
constexpr char kInfo[] = R"([{"name":"other","status":{"code":1,"message":"missing stanza path"}},
 {"name":"s1","status":{"code":0,"message":"ok","lock":{"backup":{"held":false}}},
  "archive":[{"id":"15-1","min":"000000010000000000000001","max":"000000020000000000000012",
              "database":{"id":1,"repo-key":1}}],
  "backup":[{"label":"20261204-222931F","type":"full","prior":null,"reference":null,
             "timestamp":{"start":1796423371,"stop":1796423374},
             "lsn":{"start":"0/9000028","stop":"0/9000100"},
             "archive":{"start":"000000010000000000000009","stop":"000000010000000000000009"},
             "info":{"size":23074000,"delta":23074000,"repository":{"size":3057000,"delta":3057000}},
             "error":false},
            {"label":"20261204-222931F_20261204-222946I","type":"incr",
             "prior":"20261204-222931F","reference":["20261204-222931F"],
             "timestamp":{"start":1796423386,"stop":1796423388},
             "lsn":{"start":"0/B000028","stop":"0/B000100"},
             "archive":{"start":"00000001000000000000000B","stop":"00000001000000000000000B"},
             "info":{"size":23074619,"delta":8458,"repository":{"size":3057046,"delta":430}},
             "error":true}],
  "db":[{"id":1,"repo-key":1,"system-id":7715579227913986634,"version":"15"}],
  "repo":[{"key":1,"cipher":"none","status":{"code":0,"message":"ok"}}],"cipher":"none"}])";

TEST(BackRestInfo, ReadsTheStanzasBackupsAndArchive) {
  auto info = parse_backrest_info(kInfo, "s1");
  ASSERT_TRUE(info) << info.error().message;
  EXPECT_TRUE(info->stanza_exists());
  EXPECT_EQ(info->status, "ok");
  EXPECT_EQ(info->archive_min, "000000010000000000000001");
  EXPECT_EQ(info->archive_max, "000000020000000000000012");
  ASSERT_EQ(info->backups.size(), 2u);
  const BackupSet& full = info->backups[0];
  EXPECT_EQ(full.label, "20261204-222931F");
  EXPECT_EQ(full.type, "full");
  EXPECT_EQ(full.stopped - full.started, 3);
  EXPECT_EQ(full.lsn_start, "0/9000028");
  EXPECT_EQ(full.wal_stop, "000000010000000000000009");
  EXPECT_FALSE(full.error);
  const BackupSet& incr = info->backups[1];
  EXPECT_EQ(incr.type, "incr");
  EXPECT_EQ(incr.size, 23074619);
  EXPECT_EQ(incr.repository_size, 3057046);
  EXPECT_EQ(incr.repository_delta, 430);
  EXPECT_TRUE(incr.error);

  EXPECT_EQ(info->system_ids, (std::vector<std::string>{"7715579227913986634"}));

  auto missing = parse_backrest_info(kInfo, "other");
  ASSERT_TRUE(missing);
  EXPECT_FALSE(missing->stanza_exists());
  EXPECT_TRUE(missing->backups.empty());
  EXPECT_FALSE(parse_backrest_info(kInfo, "nobody"));
  EXPECT_FALSE(parse_backrest_info("ERROR: [055]: unable to load info file", "s1"));
}

TEST(BackupProgress, ReadFromPgBackRestsDetailLog) {
  using Phase = BackupProgress::Phase;
  struct Case {
    const char* line;
    std::optional<Phase> phase;  // nullopt: says nothing of progress
    double percent = 0;
  };
  std::vector<Case> cases = {
      {"2026-12-05 13:39:54.877 P00   INFO: execute non-exclusive backup start: backup begins "
       "after the next regular checkpoint completes",
       Phase::kCheckpoint},
      {"2026-12-05 13:41:34.162 P00   INFO: backup start archive = 00000001000000000000001A, "
       "lsn = 0/1A000028",
       Phase::kCopying, 0},
      {"2026-12-05 13:42:16.578 P01 DETAIL: backup file /tmp/x/data/base/5/16384 (274.2MB, "
       "92.54%) checksum 241e76fe1080b751393572d76ee209bb65ecca66",
       Phase::kCopying, 92.54},
      {"2026-12-05 13:42:17.294 P01 DETAIL: backup file /tmp/x/data/base/1/13399 (0B, 100.00%)",
       Phase::kCopying, 100},
      {"P01 DETAIL: match file from prior backup /tmp/x (a b)/base/1/1255 (768KB, 3%) checksum "
       "adb7",
       Phase::kCopying, 3},
      {"P00   INFO: execute non-exclusive backup stop and wait for all WAL segments to archive",
       Phase::kArchiving, 100},
      {"P00   INFO: new backup label = 20261205-134216F", Phase::kDone, 100},
      {"P00   INFO: backup command begin 2.45: --config=/x --type=full", std::nullopt},
      {"P01 DETAIL: backup file /x (8KB, many%)", std::nullopt},
      {"P01 DETAIL: backup file /x (bundle 1/8192, 8KB, 41.5%) checksum 1", Phase::kCopying, 41.5},
      {"P01 DETAIL: checksum resumed file /x (8KB, 12%)", Phase::kCopying, 12},
      {"WARN: option 'repo1-retention-full' is not set", std::nullopt},
      {"", std::nullopt},
  };
  for (const Case& c : cases) {
    auto progress = parse_backup_progress(c.line);
    ASSERT_EQ(progress.has_value(), c.phase.has_value()) << c.line;
    if (!progress) continue;
    EXPECT_EQ(progress->phase, *c.phase) << c.line;
    EXPECT_DOUBLE_EQ(progress->percent, c.percent) << c.line;
  }
  EXPECT_EQ(progress_text({Phase::kCopying, 42.54}), "copying 42.5 %");

  // For a log: each phase once, the copy by tenths.
  ProgressSteps steps;
  std::vector<std::string> said;
  for (BackupProgress progress : std::vector<BackupProgress>{{Phase::kCheckpoint},
                                                             {Phase::kCopying, 0},
                                                             {Phase::kCopying, 3.5},
                                                             {Phase::kCopying, 19.99},
                                                             {Phase::kCopying, 20},
                                                             {Phase::kCopying, 73},
                                                             {Phase::kCopying, 100},
                                                             {Phase::kCopying, 100},
                                                             {Phase::kArchiving, 100},
                                                             {Phase::kDone, 100}}) {
    if (auto step = steps.next(progress)) said.push_back(progress_text(*step));
  }
  EXPECT_EQ(said, (std::vector<std::string>{
                      "waiting for the primary's checkpoint", "copying 0.0 %", "copying 10.0 %",
                      "copying 20.0 %", "copying 70.0 %", "copying 100.0 %",
                      "copied; waiting for its WAL to reach the archive", "in the repository"}));
}

// pgBackRest as a script: each run answers the next scripted result, and is recorded.
class ScriptedBackRest final : public ProcessRunner {
 public:
  explicit ScriptedBackRest(std::vector<ProcessResult> answers) : answers_(std::move(answers)) {}
  Result<ProcessResult> run(const ProcessSpec& spec) override {
    calls.push_back(spec.args);
    ProcessResult answer = answers_.at(calls.size() - 1);
    if (spec.on_line) {
      std::istringstream lines(answer.output);
      for (std::string line; std::getline(lines, line);) spec.on_line(line);
    }
    return answer;
  }
  std::vector<std::vector<std::string>> calls;

 private:
  std::vector<ProcessResult> answers_;
};

TEST(BackRestBackup, MakesTheStanzaOnlyWhenPgBackRestSaysThereIsNone) {
  ClusterConfig config;
  config.name = "c1";
  config.backup.repository = "/repo";
  NodeConfig primary{.name = "node1", .port = 5432, .data_dir = "/data/node1"};
  const std::string no_stanza =
      "ERROR: [055]: unable to load info file '/repo/backup/c1/backup.info':\n"
      "       HINT: has a stanza-create been performed?\n";
  const std::string copied =
      "P01 DETAIL: backup file /data/node1/base/1/1 (8KB, 100.00%) checksum 1\n";
  // No stanza: made, then the same backup again, its progress heard.
  ScriptedBackRest runner({{55, no_stanza}, {0, ""}, {0, copied}});
  std::vector<double> heard;
  auto done = BackRest(config, runner)
                  .backup(primary, nullptr, BackupType::kFull, [&](const BackupProgress& progress) {
                    heard.push_back(progress.percent);
                  });
  ASSERT_TRUE(done) << done.error().message;
  ASSERT_EQ(runner.calls.size(), 3u);
  EXPECT_EQ(runner.calls[1].back(), "stanza-create");
  EXPECT_EQ(runner.calls[2], runner.calls[0]) << "the backup again, as asked";
  EXPECT_EQ(heard, (std::vector<double>{100}));

  // Another missing file: no stanza-create, the error as pgBackRest said it.
  ScriptedBackRest other({{55, "ERROR: [055]: unable to open missing file '/x/pgbackrest.conf'"}});
  done = BackRest(config, other).backup(primary, nullptr, BackupType::kFull);
  ASSERT_FALSE(done);
  EXPECT_EQ(other.calls.size(), 1u);
  EXPECT_EQ(done.error().code, ErrorCode::kFailed);

  // The stanza's lock held by another pgBackRest: kConflict (tried again soon); the lock file
  // unreadable, the same exit code: a plain failure.
  ScriptedBackRest locked({{50,
                            "ERROR: [050]: unable to acquire lock on file 'x': Resource "
                            "temporarily unavailable\n       HINT: is another pgBackRest process "
                            "running?\n"}});
  done = BackRest(config, locked).backup(primary, nullptr, BackupType::kIncr);
  ASSERT_FALSE(done);
  EXPECT_EQ(done.error().code, ErrorCode::kConflict);
  ScriptedBackRest denied({{50,
                            "ERROR: [050]: unable to acquire lock on file 'x': Permission "
                            "denied\n"}});
  done = BackRest(config, denied).backup(primary, nullptr, BackupType::kIncr);
  ASSERT_FALSE(done);
  EXPECT_EQ(done.error().code, ErrorCode::kFailed);
}

// With a repository host: there, its own settings and the nodes named on the command line
// (the primary as pg1 for what reaches it, the standby as pg2 for a backup, nothing for info);
// on a node's host, the node's settings, and no backup.
TEST(BackRestOnARepositoryHost, NamesTheNodesEachCommandReaches) {
  ClusterConfig config;
  config.name = "c1";
  config.backup.repository = "/repo";
  config.backup.repository_host = "10.0.0.9";
  config.backup.tls = {.cert_file = "/t/c", .key_file = "/t/k", .ca_file = "/t/a"};
  NodeConfig primary{.name = "node1", .host = "10.0.0.1", .port = 5432, .data_dir = "/d/1"};
  NodeConfig standby{.name = "node2", .host = "10.0.0.2", .port = 5432, .data_dir = "/d/2"};
  auto has = [](const std::vector<std::string>& args, const std::string& arg) {
    return std::ranges::find(args, arg) != args.end();
  };
  ScriptedBackRest there({{0, ""}, {0, ""}, {0, "[]"}});
  BackRest repository(config, there, /*here_is_repository_host=*/true);
  ASSERT_TRUE(repository.backup(primary, &standby, BackupType::kFull));
  ASSERT_TRUE(repository.check(primary));
  (void)repository.info(primary);
  ASSERT_EQ(there.calls.size(), 3u);
  const auto& backup = there.calls[0];
  EXPECT_TRUE(has(backup, "--config=/repo/tandem-pgbackrest.conf"));
  for (const char* arg : {"--pg1-host=10.0.0.1", "--pg1-path=/d/1", "--pg1-host-type=tls",
                          "--pg2-host=10.0.0.2", "--pg2-path=/d/2", "--backup-standby"}) {
    EXPECT_TRUE(has(backup, arg)) << arg;
  }
  EXPECT_TRUE(has(there.calls[1], "--pg1-host=10.0.0.1"));
  EXPECT_FALSE(has(there.calls[1], "--pg2-host=10.0.0.2"));
  for (const std::string& arg : there.calls[2]) {
    EXPECT_FALSE(arg.starts_with("--pg")) << "info takes no node: " << arg;
  }
  // On a node's host: its own settings; a backup refused with where to go.
  ScriptedBackRest node_host({{0, ""}});
  BackRest node(config, node_host, /*here_is_repository_host=*/false);
  auto refused = node.backup(primary, &standby, BackupType::kFull);
  ASSERT_FALSE(refused);
  EXPECT_NE(refused.error().message.find("on the repository host 10.0.0.9"), std::string::npos);
  EXPECT_TRUE(node_host.calls.empty());
  ASSERT_TRUE(node.check(primary));
  EXPECT_TRUE(has(node_host.calls[0], "--config=/d/1/pgbackrest.conf"));
  EXPECT_FALSE(has(node_host.calls[0], "--pg1-host=10.0.0.1"));
}

// Before initdb, a stanza already in the repository is another database's: refused, and so is
// a repository that cannot be read. With a repository host, pgBackRest asks it over TLS.
TEST(CheckStanzaFree, AsksTheRepositoryWhereverItIs) {
  ClusterConfig config;
  config.name = "s1";
  config.backup.repository = "/repo";
  auto has = [](const std::vector<std::string>& args, const std::string& arg) {
    return std::ranges::find(args, arg) != args.end();
  };
  constexpr char kNone[] = R"([{"name":"s1","status":{"code":1,"message":"missing stanza path"}}])";
  ScriptedBackRest here({{0, kNone}, {0, kInfo}});
  ASSERT_TRUE(check_stanza_free(config, here));
  auto taken = check_stanza_free(config, here);
  ASSERT_FALSE(taken);
  EXPECT_NE(taken.error().message.find("already holds stanza s1 (a database with system "
                                       "identifier 7715579227913986634, 2 backups)"),
            std::string::npos)
      << taken.error().message;
  for (const char* arg : {"--no-config", "--repo1-path=/repo", "--stanza=s1", "info"}) {
    EXPECT_TRUE(has(here.calls[0], arg)) << arg;
  }
  EXPECT_FALSE(has(here.calls[0], "--repo1-host=10.0.0.9"));

  config.backup.repository_host = "10.0.0.9";
  config.backup.tls = {.cert_file = "/t/c", .key_file = "/t/k", .ca_file = "/t/a"};
  ScriptedBackRest remote(
      {{0, kInfo}, {56, "ERROR: [056]: unable to connect to '10.0.0.9:8432': timeout"}});
  ASSERT_FALSE(check_stanza_free(config, remote));
  for (const char* arg :
       {"--no-config", "--repo1-path=/repo", "--repo1-host=10.0.0.9", "--repo1-host-type=tls",
        "--repo1-host-port=8432", "--repo1-host-cert-file=/t/c", "--repo1-host-key-file=/t/k",
        "--repo1-host-ca-file=/t/a", "--stanza=s1", "info"}) {
    EXPECT_TRUE(has(remote.calls[0], arg)) << arg;
  }
  EXPECT_EQ(remote.calls[0].back(), "info");
  auto unreachable = check_stanza_free(config, remote);
  ASSERT_FALSE(unreachable);
  EXPECT_EQ(unreachable.error().message,
            "pgbackrest info of /repo on the repository host 10.0.0.9 failed: ERROR: [056]: "
            "unable to connect to '10.0.0.9:8432': timeout; nothing was made");
}

TEST(RestoreTarget, EachKindAsPgBackRestTakesIt) {
  struct Case {
    const char* target;
    bool promote;
    std::vector<std::string> args;  // empty: refused
    const char* refusal = "";
  };
  std::vector<Case> cases = {
      {"latest", true, {"--type=default"}},
      {"latest", false, {}, "add --promote"},
      {"immediate", false, {"--type=immediate", "--target-action=pause"}},
      {"0/5000028", false, {"--type=lsn", "--target=0/5000028", "--target-action=pause"}},
      {"2026-12-04 22:30:00+00",
       true,
       {"--type=time", "--target=2026-12-04 22:30:00+00", "--target-action=promote"}},
      {"2026-12-04T22:30:00.123",
       false,
       {"--type=time", "--target=2026-12-04T22:30:00.123", "--target-action=pause"}},
      {"yesterday", false, {}, "is neither latest, immediate, an LSN"},
      {"0/50000X8", false, {}, "is neither"},
  };
  for (const Case& each : cases) {
    auto args = restore_target_args({.target = each.target, .promote = each.promote});
    if (each.args.empty()) {
      ASSERT_FALSE(args) << each.target;
      EXPECT_NE(args.error().message.find(each.refusal), std::string::npos) << args.error().message;
      continue;
    }
    ASSERT_TRUE(args) << each.target << ": " << args.error().message;
    EXPECT_EQ(*args, each.args) << each.target;
  }
}

TEST(BackupType, NamesRoundTripAndOthersAreRefused) {
  for (const char* name : {"full", "diff", "incr"}) {
    auto type = parse_backup_type(name);
    ASSERT_TRUE(type) << name;
    EXPECT_EQ(backup_type_name(*type), name);
  }
  EXPECT_FALSE(parse_backup_type("differential"));
}

// The primary's archiver travels in its member record (written and read back whole) and shows
// in /cluster, where a failing archive_command is seen without asking PostgreSQL.
TEST(BackupStatus, TheArchiverTravelsInThePrimarysRecordToCluster) {
  MemberRecord primary{
      .name = "node1",
      .state = PgState::kPrimary,
      .timeline = 2,
      .primary = PrimaryDetails{
          .archiver = ArchiverRow{.archived_count = 5,
                                  .last_archived_wal = "000000020000000000000004",
                                  .last_archived_at = WallTime(std::chrono::milliseconds(1000)),
                                  .failed_count = 3,
                                  .last_failed_wal = "000000020000000000000005",
                                  .last_failed_at = WallTime(std::chrono::milliseconds(2000))}}};
  auto decoded = decode_member(encode_member(primary));
  ASSERT_TRUE(decoded);
  EXPECT_EQ(*decoded, primary);
  ClusterConfig config;
  config.nodes = {{.name = "node1", .port = 5432, .data_dir = "/d/1"}};
  ClusterView view{.initialized = true, .leader = LeaderRecord{"node1", 4}};
  view.members["node1"] = *decoded;
  auto document = cluster_json(config, view);
  ASSERT_TRUE(document.contains("archiver")) << document.dump();
  EXPECT_EQ(document["archiver"]["archived_count"], 5);
  EXPECT_EQ(document["archiver"]["failed_count"], 3);
  EXPECT_EQ(document["archiver"]["failing"], true);
  EXPECT_EQ(document["archiver"]["last_failed_at"], 2.0);
  // A primary that never archived (no backup:) says nothing of an archiver.
  view.members["node1"].primary->archiver.reset();
  EXPECT_FALSE(cluster_json(config, view).contains("archiver"));
}

// The repository's newest backup travels through the store (last_backup) to /cluster, with its
// age; a repository with no backup says so.
TEST(BackupStatus, TheLastBackupTravelsThroughTheStoreToCluster) {
  constexpr std::int64_t kNow = 1'800'000'000'000;
  ClusterView view{.initialized = true, .leader = LeaderRecord{"node1", 7}};
  LastBackup last{.label = "20261205-050000F_20261205-060000I",
                  .type = "incr",
                  .stopped_s = kNow / 1000 - 90,
                  .checked_ms = kNow - 10};
  auto decoded = decode_last_backup(encode_last_backup(last));
  ASSERT_TRUE(decoded);
  EXPECT_EQ(decoded->label, last.label);
  EXPECT_EQ(decoded->stopped_s, last.stopped_s);
  EXPECT_EQ(decoded->checked_ms, last.checked_ms);
  ClusterConfig config;
  config.nodes = {{.name = "node1", .port = 5432, .data_dir = "/d/1"}};
  view.last_backup = last;
  auto document = cluster_json(config, view, kNow);
  EXPECT_EQ(document["last_backup"]["label"], last.label);
  EXPECT_EQ(document["last_backup"]["type"], "incr");
  EXPECT_EQ(document["last_backup"]["age_seconds"], 90);
  view.last_backup = LastBackup{.checked_ms = kNow};  // a repository with no backup
  EXPECT_TRUE(cluster_json(config, view, kNow)["last_backup"]["label"].is_null());
}

// tandem restore refuses, before pgBackRest copies anything, a target the repository cannot
// reach: none backed up yet, before the oldest backup's end (time or LSN), in the future, or an
// unknown set.
TEST(BackupRestore, ATargetTheRepositoryCannotReachIsRefusedFirst) {
  RepositoryInfo repository;
  repository.backups = {
      {.label = "20261204-221000F", .started = 1000, .stopped = 1100, .lsn_stop = "0/5000100"},
      {.label = "20261204-221000F_20261204-223000I",
       .started = 2000,
       .stopped = 2100,
       .lsn_stop = "0/7000100"}};
  RepositoryInfo none;
  struct Case {
    const char* what;
    RestoreRequest request;
    const RepositoryInfo* repository;
    std::optional<double> target_epoch;
    const char* error;  // "" when it may be restored
  };
  const Case cases[] = {
      {"a time after the oldest backup", {.target = "t"}, &repository, 1500, ""},
      {"a time before the oldest backup's end",
       {.target = "t"},
       &repository,
       1050,
       "before the end of the oldest backup (20261204-221000F): the earliest time to restore to "
       "is 1970-01-01 00:18:21+00"},
      {"a time in the future", {.target = "t"}, &repository, 5001, "in the future"},
      {"no backup yet", {.target = "t"}, &none, 1500, "no backup yet"},
      {"latest, promoted", {.target = "latest", .promote = true}, &repository, {}, ""},
      {"an LSN after the oldest backup's end", {.target = "0/6000000"}, &repository, {}, ""},
      {"an LSN before it", {.target = "0/4000000"}, &repository, {}, "the earliest LSN"},
      {"a set, and a time after its end",
       {.target = "t", .set = "20261204-221000F_20261204-223000I"},
       &repository,
       2200,
       ""},
      {"a set, and a time before its end",
       {.target = "t", .set = "20261204-221000F_20261204-223000I"},
       &repository,
       1500,
       "before the end of the oldest backup of that set"},
      {"an unknown set",
       {.target = "latest", .promote = true, .set = "nope"},
       &repository,
       {},
       "no backup nope"},
  };
  for (const Case& each : cases) {
    SCOPED_TRACE(each.what);
    Status ok = check_restore_target(each.request, *each.repository, each.target_epoch, 5000);
    if (std::string(each.error).empty()) {
      EXPECT_TRUE(ok) << ok.error().message;
    } else {
      ASSERT_FALSE(ok);
      EXPECT_NE(ok.error().message.find(each.error), std::string::npos) << ok.error().message;
    }
  }
}

}  // namespace
}  // namespace tandem
