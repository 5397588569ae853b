// The contract every coordination store keeps. Each implementation joins with one line at the
// bottom: in memory, SQLite, and a real etcd started on loopback ports.
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <httplib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "../support/etcd_server.h"
#include "dcs/etcd_store.h"
#include "dcs/memory_store.h"
#include "dcs/sqlite_store.h"
#include "fake_node_controller.h"
#include "proc/ports.h"

namespace tandem::testing {
namespace {

using std::chrono::milliseconds;

// For the stores that only talk to a server (etcd): real time.
SystemClock real_clock;

// The stores' clock here: time moves when the test says (advance), so that keys expire without
// waiting; a sleep (SqliteStore::wait polls with one) passes as much real time as it advances,
// so that what another thread writes meanwhile is seen. Thread-safe.
class ContractClock final : public Clock {
 public:
  std::chrono::system_clock::time_point wall_now() const override {
    return std::chrono::system_clock::time_point(milliseconds(elapsed_ms_.load()));
  }
  std::chrono::steady_clock::time_point steady_now() const override {
    return std::chrono::steady_clock::time_point(milliseconds(elapsed_ms_.load()));
  }
  void sleep_for(milliseconds duration) override {
    std::this_thread::sleep_for(duration);
    advance(duration);
  }
  void advance(milliseconds duration) { elapsed_ms_ += duration.count(); }

 private:
  std::atomic<std::int64_t> elapsed_ms_{0};
};

struct StoreUnderTest {
  std::unique_ptr<ContractClock> clock = std::make_unique<ContractClock>();
  std::unique_ptr<Store> store;
  std::string dir;  // for stores kept in files
  std::unique_ptr<EtcdCluster> etcd;
  // How time passes for the store: the fake clock's, or real time for a server that expires
  // keys by its own clock.
  std::function<void(milliseconds)> sleep = [this](milliseconds duration) {
    clock->advance(duration);
  };
  // How late a real server may drop an expired key (etcd checks leases every 500 ms).
  milliseconds expiry_slack{0};
  // Whether its reads say when a key lapses (StoredValue::expires_at): not etcd's.
  bool says_expiry = true;
  ~StoreUnderTest() {
    store.reset();
    etcd.reset();
    if (!dir.empty()) std::filesystem::remove_all(dir);
  }
};

using StoreFactory = std::function<std::unique_ptr<StoreUnderTest>()>;

// A directory of the test's, removed when the test ends however it ends.
struct ScopedDir {
  std::string path;
  ScopedDir() {
    char pattern[] = "/tmp/tandem-etcd-XXXXXX";
    path = mkdtemp(pattern);
  }
  ~ScopedDir() { std::filesystem::remove_all(path); }
};

std::unique_ptr<StoreUnderTest> memory_store() {
  auto under_test = std::make_unique<StoreUnderTest>();
  under_test->store = std::make_unique<MemoryStore>(*under_test->clock);
  return under_test;
}

std::unique_ptr<StoreUnderTest> sqlite_store() {
  auto under_test = std::make_unique<StoreUnderTest>();
  char pattern[] = "/tmp/tandem-store-XXXXXX";
  under_test->dir = mkdtemp(pattern);
  auto store = SqliteStore::open(under_test->dir + "/store.db", *under_test->clock);
  EXPECT_TRUE(store) << store.error().message;
  under_test->store = std::move(*store);
  return under_test;
}

std::unique_ptr<StoreUnderTest> etcd_store() {
  auto under_test = std::make_unique<StoreUnderTest>();
  char pattern[] = "/tmp/tandem-etcd-XXXXXX";
  under_test->dir = mkdtemp(pattern);
  under_test->etcd = EtcdCluster::single(under_test->dir);
  EXPECT_TRUE(under_test->etcd->healthy()) << "etcd did not start (see " << under_test->dir << ")";
  auto store = EtcdStore::open({.endpoints = under_test->etcd->endpoints()}, *under_test->clock);
  EXPECT_TRUE(store) << store.error().message;
  under_test->store = std::move(*store);
  under_test->sleep = [](milliseconds duration) { std::this_thread::sleep_for(duration); };
  under_test->expiry_slack = milliseconds(1500);
  under_test->says_expiry = false;
  return under_test;
}

class StoreContract : public ::testing::TestWithParam<StoreFactory> {
 protected:
  void SetUp() override {
    under_test_ = GetParam()();
    store_ = under_test_->store.get();
    clock_ = under_test_->clock.get();
  }
  std::unique_ptr<StoreUnderTest> under_test_;
  Store* store_ = nullptr;
  ContractClock* clock_ = nullptr;
};

TEST_P(StoreContract, CreateOnlyIfAbsent) {
  auto first = store_->create("/c/leader", "node1", std::nullopt);
  ASSERT_TRUE(first) << first.error().message;
  auto second = store_->create("/c/leader", "node2", std::nullopt);
  ASSERT_FALSE(second);
  EXPECT_EQ(second.error().code, ErrorCode::kConflict);
  auto snapshot = store_->read("/c/");
  ASSERT_TRUE(snapshot);
  const StoredValue* leader = snapshot->find("/c/leader");
  ASSERT_NE(leader, nullptr);
  EXPECT_EQ(leader->value, "node1");
  EXPECT_EQ(leader->mod_revision, *first);
  EXPECT_EQ(leader->create_revision, *first);
  EXPECT_GE(snapshot->revision, *first);
}

TEST_P(StoreContract, CompareAndSetOnTheRevisionOnly) {
  Revision created = store_->create("/c/k", "a", std::nullopt).value();
  auto updated = store_->compare_and_set("/c/k", "b", created, std::nullopt);
  ASSERT_TRUE(updated);
  EXPECT_GT(*updated, created);
  auto stale = store_->compare_and_set("/c/k", "c", created, std::nullopt);
  ASSERT_FALSE(stale);
  EXPECT_EQ(stale.error().code, ErrorCode::kConflict);
  auto absent = store_->compare_and_set("/c/none", "x", 1, std::nullopt);
  ASSERT_FALSE(absent);
  EXPECT_EQ(absent.error().code, ErrorCode::kConflict);
  StoreSnapshot snapshot = store_->read("/c/").value();
  const StoredValue* value = snapshot.find("/c/k");
  ASSERT_NE(value, nullptr);
  EXPECT_EQ(value->value, "b");
  EXPECT_EQ(value->create_revision, created);
}

TEST_P(StoreContract, RevisionsOnlyGrow) {
  Revision last = 0;
  for (int i = 0; i < 5; ++i) {
    Revision revision = store_->put("/c/k" + std::to_string(i % 2), "v", std::nullopt).value();
    EXPECT_GT(revision, last);
    last = revision;
  }
  EXPECT_EQ(store_->read("/c/").value().revision, last);
}

TEST_P(StoreContract, KeysExpireAfterTheirTtlUnlessWrittenAgain) {
  Revision leader = store_->create("/c/leader", "node1", milliseconds(1000)).value();
  store_->put("/c/config", "forever", std::nullopt).value();
  under_test_->sleep(milliseconds(600));
  // Renewing restarts the TTL.
  leader = store_->compare_and_set("/c/leader", "node1", leader, milliseconds(1000)).value();
  under_test_->sleep(milliseconds(600));
  EXPECT_NE(store_->read("/c/").value().find("/c/leader"), nullptr);
  under_test_->sleep(milliseconds(400));
  StoreSnapshot snapshot = store_->read("/c/").value();
  auto late_by = std::chrono::steady_clock::now() + under_test_->expiry_slack;
  while (snapshot.find("/c/leader") != nullptr && std::chrono::steady_clock::now() < late_by) {
    std::this_thread::sleep_for(milliseconds(50));
    snapshot = store_->read("/c/").value();
  }
  EXPECT_EQ(snapshot.find("/c/leader"), nullptr);
  EXPECT_NE(snapshot.find("/c/config"), nullptr);
  auto renew_late = store_->compare_and_set("/c/leader", "node1", leader, milliseconds(1000));
  ASSERT_FALSE(renew_late);
  EXPECT_EQ(renew_late.error().code, ErrorCode::kConflict);
  EXPECT_TRUE(store_->create("/c/leader", "node2", milliseconds(1000)));
}

// A standby at rest sleeps until a cycle before the lease lapses (core/observe_rest.h): a read
// says when a key lapses, by the reader's clock, a write later; never for a key without a TTL.
TEST_P(StoreContract, AReadSaysWhenAKeyLapsesWhereTheStoreCan) {
  auto expiry = [&](const std::string& key) {
    StoreSnapshot snapshot = store_->read("/c/").value();
    const StoredValue* value = snapshot.find(key);
    return value != nullptr ? value->expires_at : std::nullopt;
  };
  auto written = clock_->steady_now();
  Revision leader = store_->create("/c/leader", "node1", milliseconds(1000)).value();
  store_->put("/c/config", "forever", std::nullopt).value();
  EXPECT_EQ(expiry("/c/config"), std::nullopt);
  if (!under_test_->says_expiry) {
    EXPECT_EQ(expiry("/c/leader"), std::nullopt);
    return;
  }
  ASSERT_TRUE(expiry("/c/leader").has_value());
  // Whole milliseconds in a file: within one of the write's time plus its TTL.
  EXPECT_LE(std::chrono::abs(*expiry("/c/leader") - (written + milliseconds(1000))),
            milliseconds(1));
  under_test_->sleep(milliseconds(600));
  auto renewed = clock_->steady_now();
  store_->compare_and_set("/c/leader", "node1", leader, milliseconds(1000)).value();
  EXPECT_LE(std::chrono::abs(*expiry("/c/leader") - (renewed + milliseconds(1000))),
            milliseconds(1));
}

// Writing one key does not keep another alive: each key lives its TTL after its own last write.
TEST_P(StoreContract, KeysExpireIndependently) {
  store_->put("/c/members/a", "a", milliseconds(1000)).value();
  store_->put("/c/members/b", "b", milliseconds(1000)).value();
  for (int i = 0; i < 6; ++i) {
    under_test_->sleep(milliseconds(500));
    store_->put("/c/members/a", "a", milliseconds(1000)).value();
  }
  StoreSnapshot snapshot = store_->read("/c/").value();
  auto late_by = std::chrono::steady_clock::now() + under_test_->expiry_slack;
  while (snapshot.find("/c/members/b") != nullptr && std::chrono::steady_clock::now() < late_by) {
    std::this_thread::sleep_for(milliseconds(50));
    snapshot = store_->read("/c/").value();
  }
  EXPECT_EQ(snapshot.find("/c/members/b"), nullptr);
  EXPECT_NE(snapshot.find("/c/members/a"), nullptr);
}

TEST_P(StoreContract, RemoveWithAndWithoutARevision) {
  Revision created = store_->create("/c/k", "a", std::nullopt).value();
  auto wrong = store_->remove("/c/k", created + 100);
  ASSERT_FALSE(wrong);
  EXPECT_EQ(wrong.error().code, ErrorCode::kConflict);
  EXPECT_TRUE(store_->remove("/c/k", created));
  EXPECT_EQ(store_->read("/c/").value().find("/c/k"), nullptr);
  EXPECT_TRUE(store_->remove("/c/k", std::nullopt));
  auto gone = store_->remove("/c/k", created);
  ASSERT_FALSE(gone);
  EXPECT_EQ(gone.error().code, ErrorCode::kConflict);
  EXPECT_TRUE(store_->create("/c/k", "again", std::nullopt));
}

TEST_P(StoreContract, ReadsOnlyThePrefix) {
  store_->put("/a/1", "x", std::nullopt).value();
  store_->put("/a/2", "y", std::nullopt).value();
  store_->put("/b/1", "z", std::nullopt).value();
  auto snapshot = store_->read("/a/").value();
  EXPECT_EQ(snapshot.entries.size(), 2u);
  EXPECT_EQ(snapshot.find("/b/1"), nullptr);
}

// The cycle's read leaves the history out: exactly the keys under `except`, none beside them (the
// keys just before and after its range in byte order), at the revision a whole read gives.
TEST_P(StoreContract, ReadsThePrefixButWhatIsUnderExcept) {
  for (const char* key : {"/a/hist", "/a/history", "/a/history/", "/a/history/1", "/a/history/2",
                          "/a/history0", "/a/historyz", "/a/leader", "/a/members/n1", "/b/1"}) {
    store_->put(key, "v", std::nullopt).value();
  }
  auto whole = store_->read("/a/").value();
  auto some = store_->read("/a/", "/a/history/").value();
  std::vector<std::string> keys;
  for (const auto& [key, stored] : some.entries) keys.push_back(key);
  EXPECT_EQ(keys, (std::vector<std::string>{"/a/hist", "/a/history", "/a/history0", "/a/historyz",
                                            "/a/leader", "/a/members/n1"}));
  EXPECT_EQ(some.revision, whole.revision);
  EXPECT_EQ(whole.entries.size(), 9u);
  auto only = store_->read("/a/history/").value();
  EXPECT_EQ(only.entries.size(), 3u);
  // What is left out must lie inside what is read, and a prefix must have an end.
  for (auto [prefix, except] : std::vector<std::pair<std::string, std::string>>{
           {"/a/", "/b/"}, {"/a/", "/a/"}, {"/a/", "/"}, {"", ""}, {"\xff", ""}}) {
    auto refused = store_->read(prefix, except);
    ASSERT_FALSE(refused) << prefix << " except " << except;
    EXPECT_EQ(refused.error().code, ErrorCode::kInvalidArgument);
  }
}

TEST_P(StoreContract, WaitWakesOnAWriteUnderThePrefixAndOtherwiseTimesOut) {
  Revision start = store_->put("/c/k", "a", std::nullopt).value();
  auto began = std::chrono::steady_clock::now();
  auto quiet = store_->wait("/c/", start, milliseconds(100));
  ASSERT_TRUE(quiet);
  EXPECT_EQ(*quiet, start);
  EXPECT_GE(std::chrono::steady_clock::now() - began, milliseconds(90));

  std::thread writer([&] {
    std::this_thread::sleep_for(milliseconds(50));
    store_->put("/other/k", "ignored", std::nullopt).value();
    std::this_thread::sleep_for(milliseconds(50));
    store_->put("/c/k", "b", std::nullopt).value();
  });
  began = std::chrono::steady_clock::now();
  auto woken = store_->wait("/c/", start, milliseconds(5000));
  writer.join();
  ASSERT_TRUE(woken);
  EXPECT_GE(*woken, start + 2);
  EXPECT_LT(std::chrono::steady_clock::now() - began, milliseconds(2000));
}

INSTANTIATE_TEST_SUITE_P(Memory, StoreContract, ::testing::Values(StoreFactory(memory_store)));
INSTANTIATE_TEST_SUITE_P(Sqlite, StoreContract, ::testing::Values(StoreFactory(sqlite_store)));
INSTANTIATE_TEST_SUITE_P(Etcd, StoreContract, ::testing::Values(StoreFactory(etcd_store)));

// An agent that kept writing to a deleted store file, next to agents that opened a new one,
// could believe it leads while another does: a store whose file was deleted or replaced is
// unavailable, and stays so.
// The store's files are its owner's alone: another local user who could open one could take
// SQLite's locks on it (a read lock on the -shm's write byte blocks every write). A new store
// is 0600, its -wal and -shm too; an older one left 0644 is narrowed when opened.
TEST(SqliteStore, ItsFilesAreItsOwnersAlone) {
  auto under_test = sqlite_store();
  std::string path = under_test->dir + "/store.db";
  ASSERT_TRUE(under_test->store->put("/c/leader", "node1", std::nullopt));
  auto mode = [](const std::string& file) {
    struct stat info {};
    return stat(file.c_str(), &info) == 0 ? static_cast<int>(info.st_mode & 0777) : -1;
  };
  for (const char* suffix : {"", "-wal", "-shm"}) {
    EXPECT_EQ(mode(path + suffix), 0600) << "store.db" << suffix;
  }
  for (const char* suffix : {"", "-wal", "-shm"}) chmod((path + suffix).c_str(), 0644);
  auto again = SqliteStore::open(path, *under_test->clock);
  ASSERT_TRUE(again);
  for (const char* suffix : {"", "-wal", "-shm"}) {
    EXPECT_EQ(mode(path + suffix), 0600) << "store.db" << suffix << ", narrowed";
  }
  // Narrowed by path: the first connection's locks are intact, it writes on.
  EXPECT_TRUE(under_test->store->put("/c/leader", "node2", std::nullopt));
  EXPECT_TRUE((*again)->put("/c/leader", "node3", std::nullopt));
}

TEST(SqliteStore, ADeletedOrReplacedFileIsUnavailable) {
  for (bool replace : {false, true}) {
    auto under_test = sqlite_store();
    Store& store = *under_test->store;
    std::string path = under_test->dir + "/store.db";
    ASSERT_TRUE(store.put("/c/leader", "node1", std::nullopt));
    std::filesystem::remove(path);
    if (replace) {
      auto other = SqliteStore::open(path, *under_test->clock);
      ASSERT_TRUE(other);
      ASSERT_TRUE((*other)->put("/c/leader", "node2", std::nullopt));
    }
    auto read = store.read("/c/");
    ASSERT_FALSE(read) << (replace ? "replaced" : "deleted");
    EXPECT_EQ(read.error().code, ErrorCode::kUnavailable);
    EXPECT_NE(read.error().message.find("deleted or replaced"), std::string::npos);
    auto written = store.put("/c/leader", "node1", std::nullopt);
    ASSERT_FALSE(written);
    EXPECT_EQ(written.error().code, ErrorCode::kUnavailable);
  }
}

TEST(EtcdStore, FailsOverToTheNextEndpointAndIsUnavailableWithout) {
  ScopedDir scoped;
  const std::string& dir = scoped.path;
  {
    auto etcd = EtcdCluster::single(dir);
    ASSERT_TRUE(etcd->healthy());
    int closed = find_free_ports("127.0.0.1", 1).value_or(1);
    auto store = EtcdStore::open(
        {.endpoints = {fmt::format("http://127.0.0.1:{}", closed), etcd->endpoints()[0]}},
        real_clock);
    ASSERT_TRUE(store);
    EXPECT_TRUE((*store)->put("/k", "v", std::nullopt));  // the first endpoint refuses
    etcd->stop(0);
    auto down = (*store)->read("/");
    ASSERT_FALSE(down);
    EXPECT_EQ(down.error().code, ErrorCode::kUnavailable) << down.error().message;
    auto conflict_or_not = (*store)->create("/k", "w", std::nullopt);
    ASSERT_FALSE(conflict_or_not);
    EXPECT_EQ(conflict_or_not.error().code, ErrorCode::kUnavailable);
  }
}

// etcd with authentication on: the store logs in with user and password; without them, or with
// a wrong password, it is refused.
TEST(EtcdStore, LogsInWithUserAndPassword) {
  ScopedDir scoped;
  const std::string& dir = scoped.path;
  {
    auto etcd = EtcdCluster::single(dir);
    ASSERT_TRUE(etcd->healthy());
    httplib::Client admin(etcd->endpoints()[0]);
    for (const auto& [path, body] : std::vector<std::pair<std::string, std::string>>{
             {"/v3/auth/role/add", R"({"name": "root"})"},
             {"/v3/auth/user/add", R"({"name": "root", "password": "s3cret"})"},
             {"/v3/auth/user/grant", R"({"user": "root", "role": "root"})"},
             {"/v3/auth/enable", "{}"}}) {
      auto reply = admin.Post(path, body, "application/json");
      ASSERT_TRUE(reply) << path;
      ASSERT_EQ(reply->status, 200) << path << ": " << reply->body;
    }
    auto anonymous = EtcdStore::open({.endpoints = etcd->endpoints()}, real_clock);
    ASSERT_TRUE(anonymous);
    EXPECT_FALSE((*anonymous)->put("/k", "v", std::nullopt));
    auto wrong = EtcdStore::open(
        {.endpoints = etcd->endpoints(), .user = "root", .password = "guess"}, real_clock);
    ASSERT_TRUE(wrong);
    auto refused = (*wrong)->read("/");
    ASSERT_FALSE(refused);
    EXPECT_EQ(refused.error().code, ErrorCode::kPermissionDenied) << refused.error().message;
    auto store = EtcdStore::open(
        {.endpoints = etcd->endpoints(), .user = "root", .password = "s3cret"}, real_clock);
    ASSERT_TRUE(store);
    Revision created = (*store)->create("/k", "v", milliseconds(1000)).value();
    EXPECT_TRUE((*store)->compare_and_set("/k", "w", created, milliseconds(1000)));
    EXPECT_EQ((*store)->read("/").value().find("/k")->value, "w");
  }
}

// etcd over HTTPS that wants a client certificate: the store verifies etcd against the CA and
// presents its certificate; without one it is refused.
TEST(EtcdStore, SpeaksTlsWithAClientCertificate) {
  ScopedDir scoped;
  const std::string& dir = scoped.path;
  std::string script = fmt::format(R"(cd {} && set -e
openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=test-ca -keyout ca.key -out ca.crt
for who in server client; do
  openssl req -newkey rsa:2048 -nodes -subj /CN=127.0.0.1 -keyout $who.key -out $who.csr
  printf 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth\n' > $who.ext
  openssl x509 -req -in $who.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 1 \
    -extfile $who.ext -out $who.crt
done)",
                                   dir);
  std::ofstream(dir + "/certs.sh") << script << "\n";
  ASSERT_EQ(std::system(("bash " + dir + "/certs.sh >/dev/null 2>&1").c_str()), 0);
  int port = find_free_ports("127.0.0.1", 2).value_or(0);
  std::string url = fmt::format("https://127.0.0.1:{}", port);
  {
    ChildProcess etcd(
        {.program = "etcd",
         .args = {"--data-dir", dir + "/data", "--listen-client-urls", url,
                  "--advertise-client-urls", url, "--listen-peer-urls",
                  fmt::format("http://127.0.0.1:{}", port + 1), "--initial-advertise-peer-urls",
                  fmt::format("http://127.0.0.1:{}", port + 1), "--initial-cluster",
                  fmt::format("default=http://127.0.0.1:{}", port + 1), "--cert-file",
                  dir + "/server.crt", "--key-file", dir + "/server.key", "--trusted-ca-file",
                  dir + "/ca.crt", "--client-cert-auth"},
         .log_file = dir + "/etcd.log"});
    auto store = EtcdStore::open({.endpoints = {url},
                                  .ca_file = dir + "/ca.crt",
                                  .cert_file = dir + "/client.crt",
                                  .key_file = dir + "/client.key"},
                                 real_clock);
    ASSERT_TRUE(store);
    Result<Revision> written = fail(ErrorCode::kUnavailable, "not tried");
    for (int attempt = 0; attempt < 100 && !written; ++attempt) {
      std::this_thread::sleep_for(milliseconds(100));
      written = (*store)->put("/tls", "yes", std::nullopt);
    }
    ASSERT_TRUE(written) << written.error().message;
    EXPECT_EQ((*store)->read("/").value().find("/tls")->value, "yes");
    auto anonymous = EtcdStore::open({.endpoints = {url}, .ca_file = dir + "/ca.crt"}, real_clock);
    ASSERT_TRUE(anonymous);
    EXPECT_FALSE((*anonymous)->read("/"));
  }
}

// How many leases etcd holds now.
std::size_t lease_count(const std::string& endpoint) {
  httplib::Client admin(endpoint);
  auto reply = admin.Post("/v3/lease/leases", "{}", "application/json");
  if (!reply || reply->status != 200) return 0;
  auto object = nlohmann::json::parse(reply->body, nullptr, false);
  return object.is_object() ? object.value("leases", nlohmann::json::array()).size() : 0;
}

// Renewals keep the key's lease alive instead of granting a new one per write: N renewals of the
// leader and N publications of a member record leave one lease per key. A key whose lease has
// expired gets a new one and lives its TTL again.
TEST(EtcdStore, RenewalsKeepOneLeasePerKey) {
  ScopedDir scoped;
  auto etcd = EtcdCluster::single(scoped.path);
  ASSERT_TRUE(etcd->healthy());
  std::string endpoint = etcd->endpoints()[0];
  auto store = EtcdStore::open({.endpoints = etcd->endpoints()}, real_clock);
  ASSERT_TRUE(store);
  std::size_t before = lease_count(endpoint);
  Revision leader = (*store)->create("/c/leader", "node1", milliseconds(1000)).value();
  for (int i = 0; i < 20; ++i) {
    auto renewed = (*store)->compare_and_set("/c/leader", "node1", leader, milliseconds(1000));
    ASSERT_TRUE(renewed) << renewed.error().message;
    EXPECT_GT(*renewed, leader);  // every renewal writes the key: its revision moves
    leader = *renewed;
    ASSERT_TRUE((*store)->put("/c/members/node1", "{}", milliseconds(1000)));
  }
  EXPECT_EQ(lease_count(endpoint), before + 2);

  // Not written for longer than the TTL (etcd's 2 s at least): gone, with its lease.
  auto late_by = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while ((*store)->read("/c/").value().find("/c/leader") != nullptr &&
         std::chrono::steady_clock::now() < late_by) {
    std::this_thread::sleep_for(milliseconds(100));
  }
  ASSERT_EQ((*store)->read("/c/").value().find("/c/leader"), nullptr);
  ASSERT_TRUE((*store)->create("/c/leader", "node1", milliseconds(1000)));
  std::this_thread::sleep_for(milliseconds(1000));
  EXPECT_NE((*store)->read("/c/").value().find("/c/leader"), nullptr);  // a live new lease
  EXPECT_LE(lease_count(endpoint), before + 2);
}

TEST(EtcdStore, RefusesEndpointsThatAreNotUrls) {
  auto store = EtcdStore::open({.endpoints = {"127.0.0.1:2379"}}, real_clock);
  ASSERT_FALSE(store);
  EXPECT_EQ(store.error().code, ErrorCode::kInvalidArgument);
  EXPECT_FALSE(EtcdStore::open({}, real_clock));
}

TEST(EtcdStore, PrefixEnd) {
  EXPECT_EQ(prefix_end("/tandem/"), "/tandem0");
  EXPECT_EQ(prefix_end("a\xff"), "b");
}

TEST(MemoryStore, UnavailableIsNotAConflict) {
  FakeClock clock;
  MemoryStore store(clock);
  store.set_unavailable(true);
  auto created = store.create("/k", "v", std::nullopt);
  ASSERT_FALSE(created);
  EXPECT_EQ(created.error().code, ErrorCode::kUnavailable);
}

TEST(SqliteStore, UnreachableFileIsUnavailable) {
  FakeClock clock;
  auto store = SqliteStore::open("/nonexistent/dir/store.db", clock);
  ASSERT_FALSE(store);
  EXPECT_EQ(store.error().code, ErrorCode::kUnavailable);
}

TEST(SqliteStore, SeveralProcessesRaceAndExactlyOneCreates) {
  ScopedDir scoped;
  const std::string& dir = scoped.path;
  std::string path = dir + "/store.db";
  {
    SystemClock clock;
    ASSERT_TRUE(SqliteStore::open(path, clock));  // the schema exists before the race
  }
  constexpr int kProcesses = 8;
  std::vector<pid_t> children;
  for (int i = 0; i < kProcesses; ++i) {
    pid_t pid = fork();
    if (pid == 0) {
      SystemClock clock;
      auto store = SqliteStore::open(path, clock);
      if (!store) _exit(3);
      auto created = (*store)->create("/c/initialize", std::to_string(i), std::nullopt);
      if (created) _exit(0);
      _exit(created.error().code == ErrorCode::kConflict ? 1 : 2);
    }
    children.push_back(pid);
  }
  int winners = 0, losers = 0;
  for (pid_t pid : children) {
    int status = 0;
    waitpid(pid, &status, 0);
    ASSERT_TRUE(WIFEXITED(status));
    winners += WEXITSTATUS(status) == 0;
    losers += WEXITSTATUS(status) == 1;
  }
  EXPECT_EQ(winners, 1);
  EXPECT_EQ(losers, kProcesses - 1);
}

// Commands open the store while agents and other commands create, open, write and close it
// (two `tandem promote` at once, the first to open a manual cluster's store, failed on
// "database is locked": SQLite does not wait for the lock that switching to WAL takes). Every
// opening succeeds, and no write finds the store unavailable.
TEST(SqliteStore, OpeningWhileOthersCreateOpenWriteAndCloseNeverFails) {
  ScopedDir scoped;
  std::string path = scoped.path + "/store.db";
  constexpr int kProcesses = 6;
  std::vector<pid_t> children;
  for (int i = 0; i < kProcesses; ++i) {
    pid_t pid = fork();
    if (pid == 0) {
      SystemClock clock;
      for (int round = 0; round < 40; ++round) {
        auto store = SqliteStore::open(path, clock);
        if (!store) _exit(3);
        auto written =
            (*store)->put("/c/members/n" + std::to_string(i), std::to_string(round), std::nullopt);
        if (!written) _exit(4);
      }
      _exit(0);
    }
    children.push_back(pid);
  }
  for (pid_t pid : children) {
    int status = 0;
    waitpid(pid, &status, 0);
    ASSERT_TRUE(WIFEXITED(status));
    EXPECT_EQ(WEXITSTATUS(status), 0) << "3: an opening failed, 4: a write found it unavailable";
  }
}

}  // namespace
}  // namespace tandem::testing
