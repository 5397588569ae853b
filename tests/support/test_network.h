// Hosts for tests: Linux network namespaces, each with one interface (eth0) and an address on a
// private /24, joined by a bridge that lives in a namespace of its own (nothing is added to the
// machine's own network). A host can be cut off (its link down) and healed. Everything is
// deleted when the object goes, even after a failed test. Needs root (CI runs as root).
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "common/result.h"

namespace tandem::testing {

class TestNetwork {
 public:
  explicit TestNetwork(int hosts);
  ~TestNetwork();
  TestNetwork(const TestNetwork&) = delete;
  TestNetwork& operator=(const TestNetwork&) = delete;

  // Empty when every namespace and link was made; else what failed.
  const std::string& error() const { return error_; }
  int hosts() const { return static_cast<int>(hosts_.size()); }
  const std::string& netns(int host) const { return hosts_[host]; }
  std::string address(int host) const;

  Status cut(int host);   // the host's link goes down: nothing in or out
  Status heal(int host);  // and up again
  // A partial cut: `host` can no longer reach (nor answer) these hosts; the others it still
  // reaches. Blackhole routes in its namespace; unblock() removes them.
  Status block(int host, const std::vector<int>& unreachable);
  Status unblock(int host, const std::vector<int>& unreachable);
  // A one-way cut: whatever `host` sends on the connections it opened to these hosts is dropped
  // on its way out (nftables, in its namespace: what it sends from an ephemeral port), so none
  // of its calls there gets through, while the connections they open to it work both ways.
  Status drop_calls(int host, const std::vector<int>& to);
  Status restore_calls(int host);  // every call of `host` gets through again

 private:
  Status ip(const std::vector<std::string>& args);

  std::string prefix_;  // namespace names start with it
  std::string subnet_;  // "10.213.N."
  std::string switch_;  // the bridge's namespace
  std::vector<std::string> hosts_;
  std::string error_;
};

// Runs `work` on a thread that has entered the named network namespace: sockets it opens live
// there. Returns false when the namespace cannot be entered.
bool run_in_netns(const std::string& netns, const std::function<void()>& work);

}  // namespace tandem::testing
