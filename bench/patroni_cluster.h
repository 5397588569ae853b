// Patroni (Debian's `patroni`) on this machine, for figures side by side with tandem's (issue 19):
// a member per PostgreSQL server on 127.0.0.1, on an etcd the caller gives, each daemon run as the
// postgres OS user as its systemd unit would. Member 0 bootstraps (initdb), the others clone it
// (pg_basebackup) and stream through slots; pg_rewind brings an old primary back.
#pragma once

#include <sys/types.h>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/result.h"

namespace tandem::testing {
class ChildProcess;
}

namespace tandem::bench {

// The timing settings of Patroni's DCS section (seconds). Patroni wants
// loop_wait + 2 * retry_timeout <= ttl.
struct PatroniSettings {
  std::string label;
  int ttl = 30;
  int loop_wait = 10;
  int retry_timeout = 10;
};

PatroniSettings patroni_defaults();  // Patroni's own: ttl 30, loop_wait 10, retry_timeout 10
// The fastest it accepts on this etcd: ttl 5, loop_wait 1, retry_timeout 2 (etcd grants no
// shorter lease than its election allows, and Patroni's rule above).
PatroniSettings patroni_fastest();

class PatroniCluster {
 public:
  // A fresh directory under /tmp and free ports; nothing runs yet. `etcd_endpoint`: host:port.
  PatroniCluster(PatroniSettings settings, std::string etcd_endpoint, int members = 3);
  ~PatroniCluster();  // stops every daemon and server it started, removes its directory
  PatroniCluster(const PatroniCluster&) = delete;
  PatroniCluster& operator=(const PatroniCluster&) = delete;

  // Starts member 0 and waits until it leads, then the others, until each streams (2 min).
  Status up();

  int members() const { return static_cast<int>(names_.size()); }
  const std::string& name(int member) const { return names_[member]; }
  std::string conninfo(int member) const;
  // Every member, target_session_attrs=read-write: what clients use to find the primary.
  std::string any_primary_conninfo() const;
  std::optional<int> writable() const;  // the one member accepting writes, if exactly one
  bool streams(int primary, int standby) const;

  // A host crash: the daemon and its PostgreSQL (postmaster and every backend) SIGKILLed.
  void crash(int member);
  void kill_postmaster(int member);  // only the postmaster
  Status start(int member);          // its daemon again, as its service would
  // `patronictl switchover --leader FROM --candidate TO --force`.
  Status switchover(int from, int to) const;
  pid_t daemon_pid(int member) const;

 private:
  std::string config_path(int member) const;
  Status write_config(int member) const;
  std::optional<pid_t> postmaster_pid(int member) const;
  std::string log_tail(int member) const;  // the last lines of its daemon's log, on one line

  PatroniSettings settings_;
  std::string etcd_endpoint_;
  std::string dir_;
  std::string pg_dir_;
  int base_port_ = 0;  // PostgreSQL's ports, then the REST APIs'
  std::vector<std::string> names_;
  std::vector<std::unique_ptr<testing::ChildProcess>> daemons_;
};

}  // namespace tandem::bench
