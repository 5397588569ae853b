#include "bench/node_writers.h"

#include <fmt/chrono.h>
#include <fmt/format.h>

#include <algorithm>
#include <optional>

#include "bench/local_queries.h"
#include "pg/connection.h"

namespace tandem::bench {

using std::chrono::milliseconds;
using WallClock = std::chrono::system_clock;

std::string time_of_day(WallClock::time_point at) {
  auto seconds = std::chrono::floor<std::chrono::seconds>(at);
  return fmt::format("{:%H:%M:%S}.{:03}", seconds,
                     std::chrono::duration_cast<milliseconds>(at - seconds).count());
}

NodeWriters::NodeWriters(const ClusterConfig& config) {
  for (const NodeConfig& node : config.nodes) {
    threads_.emplace_back([this, name = node.name, conninfo = node_conninfo(config, node.name)] {
      run(name, conninfo);
    });
  }
}

void NodeWriters::stop() {
  stop_ = true;
  for (std::thread& thread : threads_) {
    if (thread.joinable()) thread.join();
  }
}

std::vector<std::string> NodeWriters::overlaps() const {
  std::lock_guard lock(mutex_);
  std::vector<std::string> found;
  for (auto a = runs_.begin(); a != runs_.end(); ++a) {
    for (auto b = std::next(a); b != runs_.end(); ++b) {
      for (const auto& [a_from, a_to] : a->second) {
        for (const auto& [b_from, b_to] : b->second) {
          auto from = std::max(a_from, b_from), to = std::min(a_to, b_to);
          if (from <= to) {
            found.push_back(fmt::format(
                "{} and {} both writable for {} ms from {}", a->first, b->first,
                std::chrono::duration_cast<milliseconds>(to - from).count(), time_of_day(from)));
          }
        }
      }
    }
  }
  return found;
}

std::vector<std::string> NodeWriters::late() const {
  std::lock_guard lock(mutex_);
  return late_;
}

void NodeWriters::run(const std::string& name, const std::string& conninfo) {
  std::optional<Connection> connection;
  bool in_run = false;
  while (!stop_) {
    bool ok = false;
    if (!connection) {
      auto opened = Connection::open(conninfo);
      if (opened) connection.emplace(std::move(*opened));
    }
    auto sent = WallClock::now();
    if (connection) {
      ok = connection->execute("INSERT INTO chaos_writer VALUES (1)").has_value();
      if (!ok) connection.reset();
    }
    auto at = WallClock::now();  // dated by its answer, as every acknowledged write is
    if (ok && at - sent > kLate) {
      std::lock_guard lock(mutex_);
      late_.push_back(fmt::format("{} acknowledged a write {} ms after it was sent", name,
                                  std::chrono::duration_cast<milliseconds>(at - sent).count()));
      auto& runs = runs_[name];
      if (in_run) runs.back().second = std::max(runs.back().second, sent);
      if (!in_run) runs.push_back({sent, sent});
      in_run = false;  // the next write, if acknowledged, starts a run of its own
      std::this_thread::sleep_for(milliseconds(20));
      continue;
    }
    {
      std::lock_guard lock(mutex_);
      auto& runs = runs_[name];
      if (ok && in_run) runs.back().second = at;
      if (ok && !in_run) runs.push_back({at, at});
    }
    in_run = ok;
    std::this_thread::sleep_for(milliseconds(20));
  }
}

}  // namespace tandem::bench
