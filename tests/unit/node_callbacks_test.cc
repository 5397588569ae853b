// The callbacks of tandem.yaml: which one a node's observed change calls for (core), and how the
// agent's runner carries them out beside its cycle (arguments, environment, order, timeout, a
// script another user could change).
#include "core/node_callbacks.h"

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <mutex>
#include <thread>

#include "agent/callback_runner.h"
#include "core/decide.h"
#include "proc/safe_file.h"

namespace tandem {
namespace {

TEST(RoleCallback, FiresOnEachSettledChangeAndNeverAtTheFirstCycle) {
  using enum PgState;
  struct Case {
    std::optional<std::string> before;
    PgState now;
    std::optional<Callback> expected;
  };
  const Case cases[] = {
      {std::nullopt, kPrimary, std::nullopt},  // the first cycle saw no change
      {std::nullopt, kStopped, std::nullopt},
      {"stopped", kStarting, std::nullopt},  // not settled yet
      {"stopped", kPrimary, Callback{CallbackEvent::kStart, "primary"}},
      {"stopped", kStandby, Callback{CallbackEvent::kStart, "standby"}},
      {"stopped", kNoData, std::nullopt},
      {"stopped", kStopped, std::nullopt},
      {"standby", kPrimary, Callback{CallbackEvent::kRoleChange, "primary"}},
      {"primary", kStandby, Callback{CallbackEvent::kRoleChange, "standby"}},
      {"primary", kStopped, Callback{CallbackEvent::kStop, "primary"}},
      {"standby", kNoData, Callback{CallbackEvent::kStop, "standby"}},
      {"primary", kPrimary, std::nullopt},
      {"standby", kStarting, std::nullopt},
  };
  for (const Case& each : cases) {
    SCOPED_TRACE(
        fmt::format("{} -> {}", each.before.value_or("(first cycle)"), pg_state_name(each.now)));
    EXPECT_EQ(role_callback(each.before, each.now), each.expected);
  }
}

// decide's plan carries it, whatever the action: the executor only hands it to the runner.
TEST(RoleCallback, IsPartOfTheCyclesPlan) {
  NodeObservation node;
  node.state = PgState::kPrimary;
  node.settled_role_before = "standby";
  HaConfig config;
  config.self = "node1";
  Decision decision = decide(std::nullopt, node, config, std::chrono::steady_clock::time_point{});
  ASSERT_TRUE(decision.callback);
  EXPECT_EQ(*decision.callback, (Callback{CallbackEvent::kRoleChange, "primary"}));
  node.settled_role_before = "primary";
  EXPECT_FALSE(
      decide(std::nullopt, node, config, std::chrono::steady_clock::time_point{}).callback);
}

// Records what it is asked to run; each run waits until released when `hold` is set.
class RecordingRunner final : public ProcessRunner {
 public:
  Result<ProcessResult> run(const ProcessSpec& spec) override {
    std::unique_lock lock(mutex_);
    specs.push_back(spec);
    changed_.notify_all();
    changed_.wait(lock, [this] { return !hold; });
    if (spec.args[0] == "on_stop") return fail(ErrorCode::kTimeout, "missed its deadline");
    return ProcessResult{.exit_code = 0, .output = "moved the address\n"};
  }
  void release() {
    std::lock_guard lock(mutex_);
    hold = false;
    changed_.notify_all();
  }
  bool wait_for(std::size_t count) {
    std::unique_lock lock(mutex_);
    return changed_.wait_for(lock, std::chrono::seconds(10), [&] { return specs.size() >= count; });
  }
  std::vector<ProcessSpec> specs;
  bool hold = false;

 private:
  std::mutex mutex_;
  std::condition_variable changed_;
};

// A script in a directory only root writes: /usr/bin/true's.
CallbacksConfig trusted_scripts() {
  return {.on_start = "/usr/bin/true",
          .on_stop = "/usr/bin/true",
          .on_role_change = "/usr/bin/true",
          .timeout = std::chrono::seconds(7)};
}

TEST(CallbackRunner, RunsEachInOrderWithItsArgumentsAndEnvironment) {
  RecordingRunner runner;
  {
    CallbackRunner callbacks(trusted_scripts(), "main", "node2", runner);
    callbacks.fire({CallbackEvent::kRoleChange, "primary"});
    ASSERT_TRUE(runner.wait_for(1));
    callbacks.fire({CallbackEvent::kRestart, "primary"});  // no on_restart script: nothing
    callbacks.fire({CallbackEvent::kStop, "primary"});     // times out: said, not fatal
  }  // the destructor runs the last one queued
  ASSERT_EQ(runner.specs.size(), 2u);
  const ProcessSpec& first = runner.specs[0];
  EXPECT_EQ(first.program, "/usr/bin/true");
  EXPECT_EQ(first.args, (std::vector<std::string>{"on_role_change", "primary", "main"}));
  EXPECT_EQ(first.env.at("TANDEM_EVENT"), "on_role_change");
  EXPECT_EQ(first.env.at("TANDEM_ROLE"), "primary");
  EXPECT_EQ(first.env.at("TANDEM_CLUSTER"), "main");
  EXPECT_EQ(first.env.at("TANDEM_NODE"), "node2");
  EXPECT_EQ(first.timeout, std::chrono::seconds(7));
  EXPECT_FALSE(first.run_as);  // as the agent's own user
  EXPECT_EQ(runner.specs[1].args[0], "on_stop");
}

// fire() never waits for a script: the cycle goes on while one hangs, and past kMaxQueued the
// oldest waiting is dropped.
TEST(CallbackRunner, NeverBlocksTheCaller) {
  RecordingRunner runner;
  runner.hold = true;
  CallbackRunner callbacks(trusted_scripts(), "main", "node1", runner);
  callbacks.fire({CallbackEvent::kStart, "standby"});
  ASSERT_TRUE(runner.wait_for(1));  // the first hangs in its script
  for (std::size_t i = 0; i < CallbackRunner::kMaxQueued + 5; ++i) {
    callbacks.fire({CallbackEvent::kRoleChange, i % 2 == 0 ? "primary" : "standby"});
  }
  runner.release();
  ASSERT_TRUE(runner.wait_for(1 + CallbackRunner::kMaxQueued));
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  EXPECT_EQ(runner.specs.size(), 1 + CallbackRunner::kMaxQueued) << "none dropped";
  // The newest kept: the last fired, index kMaxQueued + 4, even.
  EXPECT_EQ(runner.specs.back().args[1], "primary");
  EXPECT_EQ(runner.specs[1].args[1], "standby");  // the five oldest waiting (0-4) dropped
}

// At shutdown, only the last one waiting runs: the on_stop of a clean stop, not every script
// queued behind one that hangs.
TEST(CallbackRunner, AtShutdownRunsOnlyTheLastWaiting) {
  RecordingRunner runner;
  runner.hold = true;
  std::thread releaser;
  {
    CallbackRunner callbacks(trusted_scripts(), "main", "node1", runner);
    callbacks.fire({CallbackEvent::kStart, "standby"});
    ASSERT_TRUE(runner.wait_for(1));
    for (int i = 0; i < 5; ++i) callbacks.fire({CallbackEvent::kRoleChange, "primary"});
    callbacks.fire({CallbackEvent::kStop, "primary"});
    releaser = std::thread([&] {
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
      runner.release();
    });
  }
  releaser.join();
  ASSERT_EQ(runner.specs.size(), 2u);
  EXPECT_EQ(runner.specs[1].args[0], "on_stop");
}

// A reload changes the scripts the next callbacks run.
TEST(CallbackRunner, ReconfiguredByAReload) {
  RecordingRunner runner;
  {
    CallbackRunner callbacks({}, "main", "node1", runner);
    callbacks.fire({CallbackEvent::kStart, "standby"});  // nothing configured yet
    callbacks.reconfigure(trusted_scripts());
    callbacks.fire({CallbackEvent::kStart, "standby"});
  }
  ASSERT_EQ(runner.specs.size(), 1u);
  EXPECT_EQ(runner.specs[0].args[0], "on_start");
}

// Root runs a callback only if nobody else could have changed it, and runs the file it checked.
TEST(TrustedProgram, RefusesWhatAnotherUserCouldChange) {
  auto system = trusted_program("/usr/bin/true");
  ASSERT_TRUE(system) << system.error().message;
  EXPECT_EQ(*system, "/usr/bin/true");
  char pattern[] = "/tmp/tandem-callback-XXXXXX";
  ASSERT_NE(mkdtemp(pattern), nullptr);
  std::string dir = pattern;
  std::string script = dir + "/vip.sh";
  std::ofstream(script) << "#!/bin/sh\n";
  chmod(script.c_str(), 0755);
  chmod(dir.c_str(), 0755);
  // In /tmp, which every user writes (sticky or not: they may rename into it).
  auto in_tmp = trusted_program(script);
  ASSERT_FALSE(in_tmp);
  EXPECT_NE(in_tmp.error().message.find("which another user than root may write"),
            std::string::npos)
      << in_tmp.error().message;
  EXPECT_FALSE(trusted_program(dir + "/missing.sh"));
  // A link in /tmp to a trusted program: the program is what runs, never the link, which its
  // owner could point elsewhere after the check.
  std::filesystem::create_symlink("/usr/bin/true", dir + "/link");
  auto linked = trusted_program(dir + "/link");
  ASSERT_TRUE(linked) << linked.error().message;
  EXPECT_EQ(*linked, "/usr/bin/true");
  std::filesystem::remove_all(dir);
}

// /run is root's, mode 0755 (the tests run as root, as CI does).
TEST(TrustedProgram, RefusesAScriptOthersMayWrite) {
  std::string dir = "/run/tandem-callback-test";
  std::filesystem::remove_all(dir);
  ASSERT_EQ(mkdir(dir.c_str(), 0755), 0);
  std::string script = dir + "/vip.sh";
  std::ofstream(script) << "#!/bin/sh\n";
  chmod(script.c_str(), 0755);
  auto fine = trusted_program(script);
  ASSERT_TRUE(fine) << fine.error().message;
  EXPECT_EQ(*fine, script);
  chmod(script.c_str(), 0644);  // not executable
  auto plain = trusted_program(script);
  ASSERT_FALSE(plain);
  EXPECT_NE(plain.error().message.find("not an executable file"), std::string::npos);
  chmod(script.c_str(), 0775);  // group-writable
  auto group = trusted_program(script);
  ASSERT_FALSE(group);
  EXPECT_NE(group.error().message.find("may be changed by another user"), std::string::npos);
  chmod(script.c_str(), 0755);
  ASSERT_EQ(chown(script.c_str(), 65534, 65534), 0);  // nobody's
  EXPECT_FALSE(trusted_program(script));
  // A link in a trusted place to a script in /tmp is followed, and what it leads to refused.
  char pattern[] = "/tmp/tandem-callback-XXXXXX";
  ASSERT_NE(mkdtemp(pattern), nullptr);
  std::string planted = std::string(pattern) + "/vip.sh";
  std::ofstream(planted) << "#!/bin/sh\n";
  chmod(planted.c_str(), 0755);
  chmod(pattern, 0755);
  std::filesystem::create_symlink(planted, dir + "/linked.sh");
  auto linked = trusted_program(dir + "/linked.sh");
  ASSERT_FALSE(linked);
  EXPECT_NE(linked.error().message.find(pattern), std::string::npos) << linked.error().message;
  std::filesystem::remove_all(pattern);
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace tandem
