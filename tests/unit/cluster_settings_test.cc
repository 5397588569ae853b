// The cluster's settings (`tandem config set`): checked as PostgreSQL 15's pg_settings defines
// them, refused when tandem owns them.
#include "core/cluster_settings.h"

#include <gtest/gtest.h>

#include <map>

#include "api/cluster_json.h"
#include "dcs/cluster_layout.h"

namespace tandem {
namespace {

// Rows of PostgreSQL 15's pg_settings, as the server reports them.
std::map<std::string, SettingDefinition> definitions() {
  std::vector<SettingDefinition> rows = {
      {"work_mem", "integer", "user", "kB", 64, 2147483647, {}},
      {"shared_buffers", "integer", "postmaster", "8kB", 16, 1073741823, {}},
      {"statement_timeout", "integer", "user", "ms", 0, 2147483647, {}},
      {"checkpoint_completion_target", "real", "sighup", "", 0, 1, {}},
      {"autovacuum_vacuum_cost_delay", "real", "sighup", "ms", -1, 100, {}},
      {"enable_seqscan", "bool", "user", "", std::nullopt, std::nullopt, {}},
      {"log_statement",
       "enum",
       "superuser",
       "",
       std::nullopt,
       std::nullopt,
       {"none", "ddl", "mod", "all"}},
      {"application_name", "string", "user", "", std::nullopt, std::nullopt, {}},
      {"wal_block_size", "integer", "internal", "", 8192, 8192, {}},
      {"max_wal_senders", "integer", "postmaster", "", 0, 262143, {}},
  };
  std::map<std::string, SettingDefinition> by_name;
  for (SettingDefinition& row : rows) by_name[row.name] = row;
  return by_name;
}

TEST(ClusterSettings, ValuesAreCheckedAsPostgresqlReadsThem) {
  struct Case {
    const char* name;
    const char* value;
    const char* stored;  // nullptr: refused
    const char* error = "";
  };
  std::vector<Case> cases = {
      {"work_mem", "64MB", "64MB"},
      {"work_mem", "64 MB", "64 MB"},
      {"work_mem", "64", "64"},
      {"work_mem", "1.5MB", "1.5MB"},
      {"work_mem", "0x100", "0x100"},  // strtol's base 0: hex...
      {"work_mem", "0100", "0100"},    // ...and octal: 64 kB
      {"work_mem", "077", nullptr, "outside its range 64 .. 2147483647 (in kB)"},  // 63 kB
      {"work_mem", "63", nullptr, "outside its range"},
      {"work_mem", "3TB", nullptr, "outside its range"},
      {"work_mem", "64mb", nullptr, "its units are B, kB, MB, GB, TB"},  // units are exact
      {"work_mem", "64ms", nullptr, "its units are B, kB, MB, GB, TB"},
      {"work_mem", "abc", nullptr, "\"abc\" is not a number"},
      {"work_mem", "", nullptr, "is not a number"},
      {"shared_buffers", "128kB", "128kB"},
      {"shared_buffers", "127kB", "127kB"},  // 15.875 blocks, rounded to 16
      {"shared_buffers", "64kB", nullptr, "outside its range 16 .. 1073741823 (in 8kB)"},
      {"shared_buffers", "256MB", "256MB"},
      {"statement_timeout", "30s", "30s"},
      {"statement_timeout", "1min", "1min"},
      {"statement_timeout", "5 d", "5 d"},
      {"statement_timeout", "30d", nullptr, "outside its range"},
      {"statement_timeout", "30kB", nullptr, "its units are us, ms, s, min, h, d"},
      {"checkpoint_completion_target", "0.9", "0.9"},
      {"checkpoint_completion_target", "1.1", nullptr, "outside its range 0 .. 1"},
      {"checkpoint_completion_target", "90%", nullptr, "this setting takes no unit"},
      {"checkpoint_completion_target", "nan", nullptr, "is not a number"},
      {"checkpoint_completion_target", "1e-400", nullptr, "is not a number"},  // ERANGE
      {"statement_timeout", "1e-400", nullptr, "is not a number"},
      {"autovacuum_vacuum_cost_delay", "2ms", "2ms"},
      {"autovacuum_vacuum_cost_delay", "500us", "500us"},
      {"autovacuum_vacuum_cost_delay", "1s", nullptr, "outside its range"},
      {"enable_seqscan", "off", "off"},
      {"enable_seqscan", "OFF", "off"},
      {"enable_seqscan", "f", "off"},
      {"enable_seqscan", "yes", "on"},
      {"enable_seqscan", "1", "on"},
      {"enable_seqscan", "o", nullptr, "is not a boolean"},  // on or off?
      {"enable_seqscan", "2", nullptr, "is not a boolean"},
      {"log_statement", "DDL", "ddl"},
      {"log_statement", "some", nullptr, "\"some\" is not one of none, ddl, mod, all"},
      {"application_name", "it's mine", "it's mine"},
      {"application_name", "two\nlines", nullptr, "a value cannot hold a line break"},
      {"application_name", "bell\a", nullptr, "another control character"},
      {"wal_block_size", "8192", nullptr, "cannot be set: PostgreSQL fixes it"},
      {"max_wal_senders", "20", nullptr,
       "max_wal_senders is tandem's to set: tandem.yaml's replication.max_wal_senders sets it"},
  };
  auto known = definitions();
  for (const Case& each : cases) {
    SCOPED_TRACE(std::string(each.name) + " = " + each.value);
    auto checked = check_setting(known.at(each.name), each.value);
    if (each.stored != nullptr) {
      ASSERT_TRUE(checked) << checked.error().message;
      EXPECT_EQ(*checked, each.stored);
    } else {
      ASSERT_FALSE(checked) << *checked;
      EXPECT_EQ(checked.error().code, ErrorCode::kInvalidArgument);
      EXPECT_NE(checked.error().message.find(each.error), std::string::npos)
          << checked.error().message;
      EXPECT_EQ(checked.error().message.find('\n'), std::string::npos);
    }
  }
}

TEST(ClusterSettings, AssignmentsAreSplitAndNamesLowerCased) {
  struct Case {
    const char* text;
    const char* name;  // nullptr: refused
    const char* value = "";
  };
  std::vector<Case> cases = {
      {"work_mem=64MB", "work_mem", "64MB"},
      {" Work_Mem = 64MB ", "work_mem", "64MB"},
      {"application_name=a=b", "application_name", "a=b"},
      {"pg_stat_statements.max=10000", "pg_stat_statements.max", "10000"},
      {"search_path=", "search_path", ""},
      {"work_mem", nullptr},
      {"=64MB", nullptr},
      {"work mem=64MB", nullptr},
      {"work_mem;drop=1", nullptr},
      {"a.b.c=x", nullptr},  // each breaks the file it would be written to
      {"x.=x", nullptr},
      {".x=x", nullptr},
      {"1a.b=x", nullptr},
      {"foo.bar=a\nb", nullptr},
      {"TimeZone=UTC", "timezone", "UTC"},
  };
  for (const Case& each : cases) {
    auto parsed = parse_assignment(each.text);
    if (each.name == nullptr) {
      EXPECT_FALSE(parsed) << each.text;
      continue;
    }
    ASSERT_TRUE(parsed) << each.text << ": " << parsed.error().message;
    EXPECT_EQ(parsed->first, each.name);
    EXPECT_EQ(parsed->second, each.value);
  }
}

TEST(ClusterSettings, WhatTandemWritesIsTandemsToSet) {
  for (const char* name :
       {"port", "PORT", "listen_addresses", "wal_level", "hot_standby", "primary_conninfo",
        "synchronous_standby_names", "archive_command", "restore_command", "max_slot_wal_keep_size",
        "synchronous_commit", "hba_file", "recovery_target_time"}) {
    EXPECT_TRUE(owned_setting(name)) << name;
  }
  for (const char* name : {"work_mem", "shared_buffers", "log_min_duration_statement",
                           "hot_standby_feedback", "search_path"}) {
    EXPECT_FALSE(owned_setting(name)) << name;
  }
  // What a standby needs at least as much of as its primary, and what the agents read.
  for (const char* name : {"max_connections", "max_worker_processes", "max_prepared_transactions",
                           "max_locks_per_transaction", "full_page_writes", "lc_messages",
                           "update_process_title", "recovery_end_command", "ssl"}) {
    EXPECT_TRUE(owned_setting(name)) << name;
  }
  auto known = definitions();
  EXPECT_TRUE(needs_restart(known.at("shared_buffers")));
  EXPECT_FALSE(needs_restart(known.at("work_mem")));
}

// The agent checks what the store holds before writing it: the store may hold what no `tandem
// config set` would have written.
TEST(ClusterSettings, AnAgentRefusesStoredSettingsThatWouldBreakTheFile) {
  struct Case {
    std::map<std::string, std::string> values;
    const char* refusal;  // nullptr: written
  };
  std::vector<Case> cases = {
      {{}, nullptr},
      {{{"work_mem", "64MB"}, {"pg_stat_statements.max", "1000"}}, nullptr},
      {{{"work_mem", "64MB\nport = 1"}}, "line break"},
      {{{"work_mem\nport", "1"}}, "is not a setting's name"},
      {{{"Work_Mem", "64MB"}}, "is not a setting's name"},
      {{{"a.b.c", "1"}}, "is not a setting's name"},
      {{{"port", "6000"}}, "port is tandem's to set"},
  };
  for (const Case& each : cases) {
    auto checked = check_stored_settings(each.values);
    if (each.refusal == nullptr) {
      EXPECT_TRUE(checked) << checked.error().message;
    } else {
      ASSERT_FALSE(checked) << each.refusal;
      EXPECT_NE(checked.error().message.find(each.refusal), std::string::npos)
          << checked.error().message;
    }
  }
}

// The settings travel through the store (their revision is the key's), each agent's record says
// which revision it applied and what waits for a restart, and /cluster shows both.
TEST(ClusterSettings, TravelThroughTheStoreToCluster) {
  ClusterLayout layout("main");
  StoreSnapshot snapshot;
  snapshot.entries[layout.settings()] = {encode_settings({{"work_mem", "64MB"}}), 12, 3};
  MemberRecord member{.name = "node1",
                      .state = PgState::kPrimary,
                      .timeline = 1,
                      .settings_revision = 12,
                      .pending_restart = {"shared_buffers"},
                      .configuration_errors = {"/d/1/tandem.settings.conf:3 timezone: invalid"}};
  snapshot.entries[layout.member("node1")] = {encode_member(member), 13, 13};
  ClusterView view = layout.view(snapshot);
  ASSERT_TRUE(view.settings);
  EXPECT_EQ(view.settings->revision, 12);
  EXPECT_EQ(view.settings->values, (std::map<std::string, std::string>{{"work_mem", "64MB"}}));
  EXPECT_EQ(view.members.at("node1"), member);
  for (const char* bad : {"", "[]", "{\"settings\": []}", "{\"settings\": {\"a\": 1}}"}) {
    EXPECT_FALSE(decode_settings(bad)) << bad;
  }
  ClusterConfig config;
  config.nodes = {{.name = "node1", .port = 5432, .data_dir = "/d/1"}};
  auto document = cluster_json(config, view);
  EXPECT_EQ(document["members"][0]["pending_restart"][0], "shared_buffers") << document.dump();
  EXPECT_EQ(document["settings"]["names"][0], "work_mem") << document.dump();
  EXPECT_EQ(document.dump().find("64MB"), std::string::npos) << "a value shown to anyone";
}

}  // namespace
}  // namespace tandem
