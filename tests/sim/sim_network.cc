#include "sim_network.h"

#include <algorithm>

namespace tandem::sim {

SimNetwork::SimNetwork(int hosts, const SimTime& now)
    : hosts_(hosts), now_(now), down_until_((hosts + 1) * (hosts + 1), SimTime(0)) {}

bool SimNetwork::linked(int a, int b) const {
  return a == b || down_until_[a * (hosts_ + 1) + b] <= now_;
}

void SimNetwork::cut(int a, int b, SimTime until) {
  if (a == b) return;
  for (auto [from, to] : {std::pair{a, b}, std::pair{b, a}}) {
    SimTime& down = down_until_[from * (hosts_ + 1) + to];
    down = std::max(down, until);
  }
  last_heal_ = std::max(last_heal_, until);
}

void SimNetwork::isolate(int host, bool from_hosts, bool from_store, SimTime until) {
  for (int other = 0; other < hosts_ && from_hosts; ++other) cut(host, other, until);
  if (from_store) cut(host, store(), until);
}

void SimNetwork::split(const std::vector<bool>& side, bool store_with_side, SimTime until) {
  for (int a = 0; a < hosts_; ++a) {
    for (int b = a + 1; b < hosts_; ++b) {
      if (side[a] != side[b]) cut(a, b, until);
    }
    if (side[a] != store_with_side) cut(a, store(), until);
  }
}

std::string SimNetwork::describe(const std::vector<std::string>& names) const {
  std::string text;
  for (int a = 0; a <= hosts_; ++a) {
    for (int b = a + 1; b <= hosts_; ++b) {
      if (linked(a, b)) continue;
      text += (text.empty() ? "" : " ") + names[a] + "-" + (b == hosts_ ? "store" : names[b]);
    }
  }
  return text.empty() ? "none" : text;
}

}  // namespace tandem::sim
