// tandem-api-load: the agent's API under hostile and busy clients (issue 11). It starts the API
// on loopback with the store in memory, opens SLOW slow sockets (a request line, a Host line,
// then one header line every 3 s, never finishing: the attack of the issue) and IDLE idle ones,
// keeps POLLERS clients polling /health as fast as they are answered, and meanwhile times
// GET /health and GET /ping from a client of its own, as an agent's ping would come. It prints
// the latencies; it asserts nothing.
//
//   tandem-api-load [--slow 500] [--idle 0] [--pollers 500] [--seconds 10]
#include <arpa/inet.h>
#include <fmt/format.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "agent/agent_board.h"
#include "api/http_api.h"
#include "dcs/memory_store.h"
#include "proc/ports.h"

namespace {

using Clock = std::chrono::steady_clock;
using tandem::ClusterConfig;

// A connected socket from `source` (a 127.x.y.z address: loopback has 2^24 of them, so the
// per-address cap is not what limits the load) to 127.0.0.1:port; -1 on failure.
int connect_from(const std::string& source, int port, bool blocking) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | (blocking ? 0 : SOCK_NONBLOCK), 0);
  sockaddr_in local{.sin_family = AF_INET};
  inet_pton(AF_INET, source.c_str(), &local.sin_addr);
  bind(fd, reinterpret_cast<sockaddr*>(&local), sizeof local);
  sockaddr_in remote{.sin_family = AF_INET, .sin_port = htons(static_cast<uint16_t>(port))};
  inet_pton(AF_INET, "127.0.0.1", &remote.sin_addr);
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  if (connect(fd, reinterpret_cast<sockaddr*>(&remote), sizeof remote) != 0 &&
      errno != EINPROGRESS) {
    close(fd);
    return -1;
  }
  return fd;
}

std::string source_address(int index) {
  return fmt::format("127.0.{}.{}", 1 + index / 200, 2 + index % 200);
}

// One GET on a fresh blocking connection: the time until the whole answer, or -1.
double timed_get(int port, const std::string& source, const std::string& path, int& status) {
  auto start = Clock::now();
  int fd = connect_from(source, port, true);
  if (fd < 0) return -1;
  timeval timeout{.tv_sec = 5};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
  std::string request =
      fmt::format("GET {} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n", path);
  send(fd, request.data(), request.size(), MSG_NOSIGNAL);
  std::string answer;
  char buffer[4096];
  ssize_t got;
  while ((got = recv(fd, buffer, sizeof buffer, 0)) > 0) answer.append(buffer, got);
  close(fd);
  status = answer.size() > 12 ? std::atoi(answer.c_str() + 9) : -1;
  return std::chrono::duration<double, std::milli>(Clock::now() - start).count();
}

struct Percentiles {
  double p50 = 0, p99 = 0, max = 0;
  std::size_t count = 0, failed = 0;
};

Percentiles summarize(std::vector<double> samples, std::size_t failed) {
  Percentiles result{.count = samples.size(), .failed = failed};
  if (samples.empty()) return result;
  std::sort(samples.begin(), samples.end());
  result.p50 = samples[samples.size() / 2];
  result.p99 = samples[std::min(samples.size() - 1, samples.size() * 99 / 100)];
  result.max = samples.back();
  return result;
}

// POLLERS clients, each on its own connection, asking /health again as soon as answered.
void poll_health(int port, int pollers, std::atomic<bool>& running, std::atomic<long>& answered) {
  int epoll = epoll_create1(EPOLL_CLOEXEC);
  std::vector<int> fds(pollers, -1);
  std::vector<std::string> pending(pollers);
  auto open_one = [&](int index) {
    fds[index] = connect_from(source_address(1000 + index), port, false);
    if (fds[index] < 0) return;
    pending[index].clear();
    epoll_event event{.events = EPOLLOUT | EPOLLIN, .data = {.u32 = static_cast<uint32_t>(index)}};
    epoll_ctl(epoll, EPOLL_CTL_ADD, fds[index], &event);
  };
  auto ask = [&](int index) {
    static const std::string request = "GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
    send(fds[index], request.data(), request.size(), MSG_NOSIGNAL);
    epoll_event event{.events = EPOLLIN, .data = {.u32 = static_cast<uint32_t>(index)}};
    epoll_ctl(epoll, EPOLL_CTL_MOD, fds[index], &event);
  };
  for (int index = 0; index < pollers; ++index) open_one(index);
  std::vector<epoll_event> events(256);
  char buffer[8192];
  while (running) {
    int ready = epoll_wait(epoll, events.data(), static_cast<int>(events.size()), 100);
    for (int i = 0; i < ready; ++i) {
      int index = static_cast<int>(events[i].data.u32);
      if (events[i].events & EPOLLOUT) {
        ask(index);
        continue;
      }
      ssize_t got = recv(fds[index], buffer, sizeof buffer, 0);
      if (got <= 0) {  // closed (the server's keep-alive deadline): reconnect
        epoll_ctl(epoll, EPOLL_CTL_DEL, fds[index], nullptr);
        close(fds[index]);
        open_one(index);
        continue;
      }
      pending[index].append(buffer, got);
      std::size_t end = pending[index].find("\r\n\r\n");
      if (end == std::string::npos) continue;
      std::size_t length_at = pending[index].find("Content-Length: ");
      std::size_t length =
          length_at == std::string::npos ? 0 : std::stoul(pending[index].substr(length_at + 16));
      if (pending[index].size() < end + 4 + length) continue;
      pending[index].erase(0, end + 4 + length);
      ++answered;
      ask(index);
    }
  }
  for (int fd : fds) {
    if (fd >= 0) close(fd);
  }
  close(epoll);
}

}  // namespace

int main(int argc, char** argv) {
  int slow = 500, idle = 0, pollers = 500, seconds = 10;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string option = argv[i];
    int value = std::atoi(argv[i + 1]);
    if (option == "--slow") slow = value;
    if (option == "--idle") idle = value;
    if (option == "--pollers") pollers = value;
    if (option == "--seconds") seconds = value;
  }
  int port = tandem::find_free_ports("127.0.0.1", 1).value_or(0);
  ClusterConfig config;
  config.name = "bench";
  config.nodes.push_back({.name = "node1", .data_dir = "/nonexistent/node1", .api_port = port});
  config.nodes.push_back({.name = "node2", .host = "127.0.0.99", .data_dir = "/nonexistent/node2"});
  tandem::SystemClock clock;
  tandem::MemoryStore store(clock);
  tandem::AgentBoard board;
  tandem::AgentSnapshot snapshot{.cycles = 1, .at = clock.steady_now()};
  snapshot.node.state = tandem::PgState::kPrimary;
  board.publish(snapshot, 1000);
  tandem::ApiServer api(config, config.nodes[0], board, store, clock);
  if (auto ok = api.start(); !ok) {
    fmt::print(stderr, "tandem-api-load: {}\n", ok.error().message);
    return 1;
  }
  // The attack: slow sockets (3 s per header line, never done) and idle ones.
  std::vector<int> attackers;
  for (int index = 0; index < slow + idle; ++index) {
    int fd = connect_from(source_address(index), port, true);
    if (fd < 0) continue;
    if (index < slow) {
      std::string start = "GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n";
      send(fd, start.data(), start.size(), MSG_NOSIGNAL);
    }
    attackers.push_back(fd);
  }
  std::atomic<bool> running{true};
  std::atomic<long> answered{0};
  std::thread drip([&] {
    auto next = Clock::now();
    while (running) {
      next += std::chrono::seconds(3);
      while (running && Clock::now() < next)
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
      for (int index = 0; index < slow && index < static_cast<int>(attackers.size()); ++index) {
        std::string line = fmt::format("X-Slow-{}: 1\r\n", index);
        if (send(attackers[index], line.data(), line.size(), MSG_NOSIGNAL) < 0) {
          // Cut by the server's deadline: the attacker comes back at once.
          close(attackers[index]);
          attackers[index] = connect_from(source_address(index), port, true);
          std::string start = "GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n";
          send(attackers[index], start.data(), start.size(), MSG_NOSIGNAL);
        }
      }
    }
  });
  std::thread polling([&] { poll_health(port, pollers, running, answered); });
  std::this_thread::sleep_for(std::chrono::milliseconds(500));  // let the load build up
  std::vector<double> health, ping;
  std::size_t health_failed = 0, ping_failed = 0;
  auto end = Clock::now() + std::chrono::seconds(seconds);
  long answered_before = answered;
  auto measured_from = Clock::now();
  while (Clock::now() < end) {
    int status = 0;
    double took = timed_get(port, "127.0.0.1", "/health", status);
    (took >= 0 && status == 200 ? health.push_back(took) : (void)++health_failed);
    took = timed_get(port, "127.0.0.99", "/ping?from=node2", status);
    (took >= 0 && status == 200 ? ping.push_back(took) : (void)++ping_failed);
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  double elapsed = std::chrono::duration<double>(Clock::now() - measured_from).count();
  long polled = answered - answered_before;
  tandem::HttpServerStats stats = api.stats();
  running = false;
  drip.join();
  polling.join();
  for (int fd : attackers) close(fd);
  api.stop();
  Percentiles h = summarize(health, health_failed), p = summarize(ping, ping_failed);
  fmt::print(
      "API under load for {:.1f} s: {} slow sockets (a header line every 3 s), {} idle, {} "
      "clients polling /health ({:.0f} answers/s)\n",
      elapsed, slow, idle, pollers, polled / elapsed);
  fmt::print(
      "  server: {} connections open at the end, {} refused by the caps, {} cut by the "
      "request deadline\n",
      stats.connections, stats.refused, stats.cut);
  fmt::print(
      "  GET /health (new connection): {} answered, {} failed; p50 {:.1f} ms, p99 {:.1f} "
      "ms, max {:.1f} ms\n",
      h.count, h.failed, h.p50, h.p99, h.max);
  fmt::print(
      "  GET /ping from a peer:        {} answered, {} failed; p50 {:.1f} ms, p99 {:.1f} "
      "ms, max {:.1f} ms\n",
      p.count, p.failed, p.p50, p.p99, p.max);
  return 0;
}
