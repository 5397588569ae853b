// The bad-input paths that need no server: each is refused before any PostgreSQL program runs
// and before anything is created.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "fake_node_controller.h"
#include "ops/clone.h"
#include "ops/init.h"
#include "pg/pg_binaries.h"
#include "proc/os_user.h"
#include "proc/ports.h"

namespace tandem::testing {
namespace {

// A listening socket on a free loopback port, closed at the end of the test.
class Listener {
 public:
  Listener() {
    fd_ = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    inet_pton(AF_INET, "127.0.0.1", &address.sin_addr);
    bind(fd_, reinterpret_cast<sockaddr*>(&address), sizeof(address));
    listen(fd_, 1);
    socklen_t length = sizeof(address);
    getsockname(fd_, reinterpret_cast<sockaddr*>(&address), &length);
    port_ = ntohs(address.sin_port);
  }
  ~Listener() { close(fd_); }
  int port() const { return port_; }

 private:
  int fd_ = -1;
  int port_ = 0;
};

// A port nothing listens on: bound, then released.
int closed_port() {
  Listener listener;
  return listener.port();
}

class PreflightTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char pattern[] = "/tmp/tandem-unit-XXXXXX";
    ASSERT_NE(mkdtemp(pattern), nullptr);
    dir_ = pattern;
    config_.socket_dir = dir_ + "/run";
    config_.log_dir = dir_ + "/log";
    config_.password_file = dir_ + "/tandem.pgpass";
    config_.state_file = dir_ + "/state.json";
    config_.nodes = {{.name = "node1", .port = closed_port(), .data_dir = dir_ + "/node1"},
                     {.name = "node2", .port = closed_port(), .data_dir = dir_ + "/node2"}};
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  Context context() {
    return Context{.config = config_,
                   .os_user = OsUser{"nobody", getuid(), getgid(), "/"},
                   .controller = controller_,
                   .clock = clock_};
  }
  std::vector<std::string> entries() {
    std::vector<std::string> names;
    for (const auto& entry : std::filesystem::directory_iterator(dir_)) {
      names.push_back(entry.path().filename().string());
    }
    return names;
  }

  std::string dir_;
  ClusterConfig config_;
  FakeNodeController controller_;
  FakeClock clock_;
};

TEST_F(PreflightTest, ExistingDataDirectoryIsRefused) {
  std::filesystem::create_directories(config_.nodes[0].data_dir);
  std::ofstream(config_.nodes[0].data_dir + "/precious") << "data";
  Context ctx = context();
  auto status = init_primary(ctx, config_.nodes[0]);
  ASSERT_FALSE(status);
  EXPECT_EQ(status.error().code, ErrorCode::kAlreadyExists);
  EXPECT_NE(status.error().message.find("already exists and is not empty"), std::string::npos);
  EXPECT_TRUE(controller_.calls.empty());
  EXPECT_EQ(entries(), std::vector<std::string>{"node1"});
  EXPECT_TRUE(std::filesystem::exists(config_.nodes[0].data_dir + "/precious"));
}

TEST_F(PreflightTest, PortInUseIsRefused) {
  Listener listener;
  config_.nodes[1].port = listener.port();
  EXPECT_TRUE(port_in_use("127.0.0.1", listener.port()));
  Context ctx = context();
  auto status = clone_standby(ctx, config_.nodes[1], "node1");
  ASSERT_FALSE(status);
  EXPECT_EQ(status.error().code, ErrorCode::kConflict);
  EXPECT_NE(status.error().message.find("is already in use"), std::string::npos);
  EXPECT_TRUE(controller_.calls.empty());
  EXPECT_TRUE(entries().empty());
}

TEST_F(PreflightTest, UnreachablePrimaryIsRefused) {
  Context ctx = context();
  auto status = clone_standby(ctx, config_.nodes[1], "node1");
  ASSERT_FALSE(status);
  EXPECT_EQ(status.error().code, ErrorCode::kUnavailable);
  EXPECT_NE(status.error().message.find("cannot reach the primary node1"), std::string::npos)
      << status.error().message;
  EXPECT_TRUE(controller_.calls.empty());
  EXPECT_TRUE(entries().empty());
}

TEST_F(PreflightTest, CloningFromItselfOrAnUnknownNodeIsRefused) {
  Context ctx = context();
  auto itself = clone_standby(ctx, config_.nodes[1], "node2");
  ASSERT_FALSE(itself);
  EXPECT_EQ(itself.error().message, "node2 cannot clone itself");
  auto unknown = clone_standby(ctx, config_.nodes[1], "node7");
  ASSERT_FALSE(unknown);
  EXPECT_EQ(unknown.error().code, ErrorCode::kNotFound);
  EXPECT_TRUE(controller_.calls.empty());
  EXPECT_TRUE(entries().empty());
}

class NoProcesses final : public ProcessRunner {
 public:
  Result<ProcessResult> run(const ProcessSpec&) override { return ProcessResult{.exit_code = 1}; }
};

TEST(FindPgBinaries, MissingProgramsSayHowToInstallThem) {
  NoProcesses runner;
  auto binaries = find_pg_binaries("/nonexistent/bin", runner);
  ASSERT_FALSE(binaries);
  EXPECT_EQ(binaries.error().code, ErrorCode::kNotFound);
  EXPECT_NE(binaries.error().message.find("apt-get install postgresql-15"), std::string::npos);
  EXPECT_NE(binaries.error().message.find("/nonexistent/bin lacks postgres"), std::string::npos);
}

TEST(LookupOsUser, MissingOrRootUserIsRefusedWithAdvice) {
  auto missing = lookup_os_user("no_such_user_tandem");
  ASSERT_FALSE(missing);
  EXPECT_NE(missing.error().message.find("useradd --system no_such_user_tandem"),
            std::string::npos);
  auto root = lookup_os_user("root");
  ASSERT_FALSE(root);
  EXPECT_NE(root.error().message.find("PostgreSQL refuses to run as root"), std::string::npos);
}

}  // namespace
}  // namespace tandem::testing
