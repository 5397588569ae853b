#include "sim_network.h"

#include <algorithm>

namespace tandem::sim {

SimNetwork::SimNetwork(int hosts, const SimTime& now)
    : hosts_(hosts), now_(now), down_until_((hosts + 1) * (hosts + 1), SimTime(0)) {}

bool SimNetwork::linked(int a, int b) const {
  return a == b || down_until_[a * (hosts_ + 1) + b] <= now_;
}

void SimNetwork::cut(int a, int b, SimTime until) {
  cut_one_way(a, b, until);
  cut_one_way(b, a, until);
}

void SimNetwork::cut_one_way(int from, int to, SimTime until) {
  if (from == to) return;
  SimTime& down = down_until_[from * (hosts_ + 1) + to];
  down = std::max(down, until);
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
  auto name = [&](int i) { return i == hosts_ ? std::string("store") : names[i]; };
  std::string text;
  for (int a = 0; a <= hosts_; ++a) {
    for (int b = a + 1; b <= hosts_; ++b) {
      if (connected(a, b)) continue;
      std::string link = !linked(a, b) && !linked(b, a) ? name(a) + "-" + name(b)
                         : !linked(a, b)                ? name(a) + "->" + name(b)
                                                        : name(b) + "->" + name(a);
      text += (text.empty() ? "" : " ") + link;
    }
  }
  return text.empty() ? "none" : text;
}

}  // namespace tandem::sim
