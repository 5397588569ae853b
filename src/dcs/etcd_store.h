// The coordination store on etcd (3.4+), through the JSON gateway every etcd serves (/v3/kv/*,
// /v3/lease/*, /v3/watch; keys and values base64). Compare-and-set is a transaction on
// mod_revision; wait() is a watch. Several endpoints: a request that cannot reach one is retried
// on the next.
//
// Expiring keys: each key this store writes with a TTL has a lease of its own, granted once in
// whole seconds (at least 1 s; etcd may raise it to its minimum, 2 s with default settings) and
// kept alive after that. Every write of the key first renews that lease (/v3/lease/keepalive:
// its TTL starts again, as a new grant's would) and then writes the key bound to it, so the key
// lives the TTL after each write and disappears a TTL after its writer stops writing it — while
// etcd's lease table keeps one lease per key, not one per write. A lease found expired (the
// keepalive answers TTL 0: nobody wrote the key for a whole TTL, and etcd removed it with the
// lease) is granted anew. Leases are never revoked: one left behind expires on its own.
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "common/clock.h"
#include "dcs/store.h"

namespace httplib {
class Client;
}

namespace tandem {

struct EtcdOptions {
  std::vector<std::string> endpoints;  // "http://10.0.0.1:2379", "https://..."
  std::string user;                    // with password: etcd authentication
  std::string password;
  std::string ca_file;    // https: verify the server against this CA
  std::string cert_file;  // https: client certificate and key, when etcd asks for one
  std::string key_file;
  std::chrono::milliseconds request_timeout{500};
};

class EtcdStore final : public Store {
 public:
  // Checks nothing yet: an unreachable etcd is kUnavailable on the first request, as later.
  // `clock` gives wait() its deadline (etcd expires keys by its own clock). REQUIRES: `clock`
  // outlives the store.
  static Result<std::unique_ptr<EtcdStore>> open(EtcdOptions options, Clock& clock);
  ~EtcdStore() override;

  using Store::read;
  Result<StoreSnapshot> read(std::string_view prefix, std::string_view except) override;
  Result<Revision> create(const std::string& key, const std::string& value, Ttl ttl) override;
  Result<Revision> compare_and_set(const std::string& key, const std::string& value,
                                   Revision expected, Ttl ttl) override;
  Result<Revision> put(const std::string& key, const std::string& value, Ttl ttl) override;
  Status remove(const std::string& key, std::optional<Revision> expected) override;
  Result<Revision> wait(std::string_view prefix, Revision after,
                        std::chrono::milliseconds timeout) override;

 private:
  EtcdStore(EtcdOptions options, Clock& clock);
  // POSTs a JSON body to one endpoint after another until one answers.
  Result<std::string> call(const std::string& path, const std::string& body);
  Result<std::string> call_once(std::size_t endpoint, const std::string& path,
                                const std::string& body);
  Status authenticate(std::size_t endpoint);
  std::unique_ptr<httplib::Client> make_client(std::size_t endpoint,
                                               std::chrono::milliseconds read_timeout) const;
  // The lease `key` is written with for `ttl`, renewed now (a keepalive, or a grant when the
  // key has none alive); 0 for no TTL.
  Result<std::int64_t> lease_for(const std::string& key, Ttl ttl);
  Result<std::int64_t> grant(std::int64_t seconds);
  // Restarts the lease's TTL; false when the lease has expired (or never existed).
  Result<bool> keep_alive(std::int64_t lease);
  Result<Revision> write_if(const std::string& compare, const std::string& key,
                            const std::string& value, Ttl ttl);

  EtcdOptions options_;
  Clock& clock_;
  std::mutex mutex_;  // one request at a time on the kept clients
  std::vector<std::unique_ptr<httplib::Client>> clients_;
  std::size_t current_ = 0;  // the endpoint that answered last
  std::string token_;        // from /v3/auth/authenticate

  struct KeptLease {
    std::int64_t id = 0;
    std::int64_t seconds = 0;  // its TTL, as asked for
  };
  std::mutex lease_mutex_;  // held over a lease's keepalive or grant; taken before mutex_
  std::map<std::string, KeptLease> leases_;  // per key written with a TTL
};

}  // namespace tandem
