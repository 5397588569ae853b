#include "ops/store_access.h"

#include "dcs/etcd_store.h"
#include "dcs/sqlite_store.h"
#include "proc/secret_file.h"

namespace tandem {

Result<std::unique_ptr<Store>> open_cluster_store(const ClusterConfig& config, Clock& clock) {
  if (!config.on_several_machines()) {
    auto store = SqliteStore::open(config.store_file, clock);
    if (!store) return std::unexpected(store.error());
    return std::unique_ptr<Store>(std::move(*store));
  }
  EtcdOptions options{.endpoints = config.etcd.endpoints,
                      .user = config.etcd.user,
                      .ca_file = config.etcd.ca_file,
                      .cert_file = config.etcd.cert_file,
                      .key_file = config.etcd.key_file};
  if (!config.etcd.password_file.empty()) {
    auto password = read_secret_file(config.etcd.password_file);
    if (!password) return fail_with_context(password.error(), "etcd.password_file");
    options.password = *password;
  }
  auto store = EtcdStore::open(std::move(options));
  if (!store) return std::unexpected(store.error());
  return std::unique_ptr<Store>(std::move(*store));
}

}  // namespace tandem
